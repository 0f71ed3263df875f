package sd

import (
	"fmt"
	"strconv"
	"strings"
)

// Key prefixes of original-layout (LDM / AUTOMATIC1111) single-file checkpoints.
const (
	ldmUNetPrefix = "model.diffusion_model."
	ldmVAEPrefix  = "first_stage_model."
	ldmTextPrefix = "cond_stage_model.transformer."
)

// ldmResBlockNames renames a UNet ResBlock's LDM parts to diffusers'.
var ldmResBlockNames = strings.NewReplacer(
	"in_layers.0.", "norm1.",
	"in_layers.2.", "conv1.",
	"emb_layers.1.", "time_emb_proj.",
	"out_layers.0.", "norm2.",
	"out_layers.3.", "conv2.",
	"skip_connection.", "conv_shortcut.",
)

// ldmUNetLayout is what the LDM UNet block numbering depends on.
type ldmUNetLayout struct {
	levels int // len(channel_mult)
	layers int // res blocks per down level (up levels have one more)
}

// detectLDMUNetLayout counts the levels and res blocks of an LDM UNet from
// its keys (prefix stripped): there are levels*(layers+1) output blocks and
// a downsampler ("input_blocks.N.0.op.") on every level but the last.
func detectLDMUNetLayout(keys []string) (ldmUNetLayout, error) {
	ops := map[int]bool{}
	outputs := map[int]bool{}
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, "input_blocks."); ok {
			n, tail, _ := strings.Cut(rest, ".")
			if strings.HasPrefix(tail, "0.op.") {
				if i, err := strconv.Atoi(n); err == nil {
					ops[i] = true
				}
			}
		}
		if rest, ok := strings.CutPrefix(k, "output_blocks."); ok {
			n, _, _ := strings.Cut(rest, ".")
			if i, err := strconv.Atoi(n); err == nil {
				outputs[i] = true
			}
		}
	}
	levels := len(ops) + 1
	if len(outputs) == 0 || len(outputs)%levels != 0 || len(outputs)/levels < 2 {
		return ldmUNetLayout{}, fmt.Errorf("unet: %d output blocks do not fit %d levels (%d downsamplers)", len(outputs), levels, len(ops))
	}
	return ldmUNetLayout{levels: levels, layers: len(outputs)/levels - 1}, nil
}

// diffusers returns the diffusers name of an LDM UNet key (prefix stripped),
// or false for a key that is not part of the UNet.
func (l ldmUNetLayout) diffusers(key string) (string, bool) {
	per := l.layers + 1
	for _, r := range []struct{ ldm, diffusers string }{
		{"time_embed.0.", "time_embedding.linear_1."},
		{"time_embed.2.", "time_embedding.linear_2."},
		{"input_blocks.0.0.", "conv_in."},
		{"out.0.", "conv_norm_out."},
		{"out.2.", "conv_out."},
	} {
		if rest, ok := strings.CutPrefix(key, r.ldm); ok {
			return r.diffusers + rest, true
		}
	}
	p := strings.SplitN(key, ".", 4)
	switch {
	case strings.HasPrefix(key, "middle_block."):
		m, rest, _ := strings.Cut(strings.TrimPrefix(key, "middle_block."), ".")
		switch m {
		case "0", "2":
			return fmt.Sprintf("mid_block.resnets.%d.%s", int(m[0]-'0')/2, ldmResBlockNames.Replace(rest)), true
		case "1":
			return "mid_block.attentions.0." + rest, true
		}
		return "", false
	case len(p) < 4:
		return "", false
	}
	n, err1 := strconv.Atoi(p[1])
	m, err2 := strconv.Atoi(p[2])
	if err1 != nil || err2 != nil {
		return "", false
	}
	rest := p[3]
	switch p[0] {
	case "input_blocks":
		i, j := (n-1)/per, (n-1)%per
		switch {
		case n < 1 || i >= l.levels:
			return "", false
		case j == l.layers && m == 0 && strings.HasPrefix(rest, "op."):
			return fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", i, strings.TrimPrefix(rest, "op.")), true
		case j < l.layers && m == 0:
			return fmt.Sprintf("down_blocks.%d.resnets.%d.%s", i, j, ldmResBlockNames.Replace(rest)), true
		case j < l.layers && m == 1:
			return fmt.Sprintf("down_blocks.%d.attentions.%d.%s", i, j, rest), true
		}
	case "output_blocks":
		i, j := n/per, n%per
		switch {
		case n < 0 || i >= l.levels:
			return "", false
		case m == 0:
			return fmt.Sprintf("up_blocks.%d.resnets.%d.%s", i, j, ldmResBlockNames.Replace(rest)), true
		case strings.HasPrefix(rest, "conv.") && j == l.layers && i < l.levels-1:
			// The upsampler follows the res block, and the transformer when the level has one.
			return fmt.Sprintf("up_blocks.%d.upsamplers.0.%s", i, rest), true
		case m == 1:
			return fmt.Sprintf("up_blocks.%d.attentions.%d.%s", i, j, rest), true
		}
	}
	return "", false
}

// ldmVAEResBlockNames renames VAE ResnetBlock parts.
var ldmVAEResBlockNames = strings.NewReplacer("nin_shortcut.", "conv_shortcut.")

// ldmVAEAttention renames the mid-block attention's parts, from both LDM
// and the diffusers names before v0.14 (query/key/value/proj_attn).
var ldmVAEAttention = map[string]string{
	"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0",
	"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0",
}

// detectLDMVAELevels counts the decoder's levels ("decoder.up.N."), whose
// numbering diffusers reverses.
func detectLDMVAELevels(keys []string) int {
	seen := map[int]bool{}
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, "decoder.up."); ok {
			n, _, _ := strings.Cut(rest, ".")
			if i, err := strconv.Atoi(n); err == nil {
				seen[i] = true
			}
		}
	}
	return len(seen)
}

// ldmVAEToDiffusers returns the diffusers name of an LDM VAE key (prefix
// stripped). levels is the decoder's level count.
func ldmVAEToDiffusers(key string, levels int) (string, bool) {
	side, rest, ok := strings.Cut(key, ".")
	if !ok {
		return "", false
	}
	switch side {
	case "quant_conv", "post_quant_conv":
		return key, true
	case "encoder", "decoder":
	default:
		return "", false
	}
	p := strings.Split(rest, ".")
	tail := func(from int) string { return strings.Join(p[from:], ".") }
	switch {
	case p[0] == "conv_in" || p[0] == "conv_out":
		return key, true
	case p[0] == "norm_out":
		return side + ".conv_norm_out." + tail(1), true
	case p[0] == "mid" && len(p) >= 3 && (p[1] == "block_1" || p[1] == "block_2"):
		n := 0
		if p[1] == "block_2" {
			n = 1
		}
		return fmt.Sprintf("%s.mid_block.resnets.%d.%s", side, n, ldmVAEResBlockNames.Replace(tail(2))), true
	case p[0] == "mid" && len(p) == 4 && p[1] == "attn_1":
		part, ok := ldmVAEAttention[p[2]]
		if !ok {
			return "", false
		}
		return fmt.Sprintf("%s.mid_block.attentions.0.%s.%s", side, part, p[3]), true
	case (p[0] == "down" || p[0] == "up") && len(p) >= 4:
		i, err := strconv.Atoi(p[1])
		if err != nil {
			return "", false
		}
		blocks := "down_blocks"
		if p[0] == "up" {
			if i >= levels {
				return "", false
			}
			blocks, i = "up_blocks", levels-1-i
		}
		switch p[2] {
		case "block":
			j, err := strconv.Atoi(p[3])
			if err != nil || len(p) < 5 {
				return "", false
			}
			return fmt.Sprintf("%s.%s.%d.resnets.%d.%s", side, blocks, i, j, ldmVAEResBlockNames.Replace(tail(4))), true
		case "downsample", "upsample":
			s := "downsamplers"
			if p[2] == "upsample" {
				s = "upsamplers"
			}
			return fmt.Sprintf("%s.%s.%d.%s.0.%s", side, blocks, i, s, tail(3)), true
		}
	}
	return "", false
}

// diffusersVAEAliases renames pre-v0.14 diffusers VAE attention names (still
// found in many published folders) to the current ones.
func diffusersVAEAlias(key string) string {
	for _, side := range []string{"encoder", "decoder"} {
		pre := side + ".mid_block.attentions.0."
		if rest, ok := strings.CutPrefix(key, pre); ok {
			part, param, ok := strings.Cut(rest, ".")
			if n, known := ldmVAEAttention[part]; ok && known && part != "norm" {
				return pre + n + "." + param
			}
		}
	}
	return key
}

// textToDiffusers maps a key under cond_stage_model.transformer. (prefix
// stripped) to transformers' name; checkpoints made with transformers before
// 4.x lack the "text_model." level.
func textToDiffusers(key string) string {
	if strings.HasPrefix(key, "text_model.") {
		return key
	}
	return "text_model." + key
}
