package sd

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"lorastudio/nn"
)

// AUTOMATIC1111 applies a LoRA by converting each kohya module name to the
// name of a layer of its original-LDM model and patching that layer. A name
// that does not resolve is skipped with only a debug message, so a naming
// mistake gives a LoRA that silently does nothing; A1111Check finds them.

var a1111Rules = []struct {
	re      *regexp.Regexp
	convert func(m []string) string
}{
	{regexp.MustCompile(`^lora_unet_conv_in(.*)`), func(m []string) string {
		return "diffusion_model_input_blocks_0_0" + m[1]
	}},
	{regexp.MustCompile(`^lora_unet_conv_out(.*)`), func(m []string) string {
		return "diffusion_model_out_2" + m[1]
	}},
	{regexp.MustCompile(`^lora_unet_time_embedding_linear_(\d+)(.*)`), func(m []string) string {
		return fmt.Sprintf("diffusion_model_time_embed_%d%s", atoi(m[1])*2-2, m[2])
	}},
	{regexp.MustCompile(`^lora_unet_down_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)`), func(m []string) string {
		return fmt.Sprintf("diffusion_model_input_blocks_%d_%d_%s", 1+atoi(m[1])*3+atoi(m[3]), attnIndex(m[2], 0), a1111Suffix(m[2], m[4]))
	}},
	{regexp.MustCompile(`^lora_unet_mid_block_(attentions|resnets)_(\d+)_(.+)`), func(m []string) string {
		return fmt.Sprintf("diffusion_model_middle_block_%d_%s", attnIndex(m[1], atoi(m[2])*2), a1111Suffix(m[1], m[3]))
	}},
	{regexp.MustCompile(`^lora_unet_up_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)`), func(m []string) string {
		return fmt.Sprintf("diffusion_model_output_blocks_%d_%d_%s", atoi(m[1])*3+atoi(m[3]), attnIndex(m[2], 0), a1111Suffix(m[2], m[4]))
	}},
	{regexp.MustCompile(`^lora_unet_down_blocks_(\d+)_downsamplers_0_conv`), func(m []string) string {
		return fmt.Sprintf("diffusion_model_input_blocks_%d_0_op", 3+atoi(m[1])*3)
	}},
	{regexp.MustCompile(`^lora_unet_up_blocks_(\d+)_upsamplers_0_conv`), func(m []string) string {
		i := atoi(m[1])
		j := 1
		if i > 0 {
			j = 2
		}
		return fmt.Sprintf("diffusion_model_output_blocks_%d_%d_conv", 2+i*3, j)
	}},
	{regexp.MustCompile(`^lora_te_text_model_encoder_layers_(\d+)_(.+)`), func(m []string) string {
		return fmt.Sprintf("transformer_text_model_encoder_layers_%s_%s", m[1], m[2])
	}},
}

var a1111ResnetSuffix = map[string]string{
	"conv1":         "in_layers_2",
	"conv2":         "out_layers_3",
	"time_emb_proj": "emb_layers_1",
	"conv_shortcut": "skip_connection",
}

func a1111Suffix(kind, s string) string {
	if kind == "resnets" {
		if r, ok := a1111ResnetSuffix[s]; ok {
			return r
		}
	}
	return s
}

func attnIndex(kind string, resnet int) int {
	if kind == "attentions" {
		return 1
	}
	return resnet
}

// atoi parses the \d+ groups of the rules; an overflowing number gives a name
// that matches nothing, as it would in A1111.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1 << 31
	}
	return n
}

// A1111LayerName converts a kohya module name to AUTOMATIC1111's layer name
// for an SD1.x model, as convert_diffusers_name_to_compvis in
// extensions-builtin/Lora/networks.py does:
// lora_unet_down_blocks_{i}_attentions_{j}_X -> diffusion_model_input_blocks_{1+3i+j}_1_X,
// lora_unet_mid_block_attentions_0_X -> diffusion_model_middle_block_1_X,
// lora_unet_up_blocks_{i}_attentions_{j}_X -> diffusion_model_output_blocks_{3i+j}_1_X,
// lora_te_text_model_encoder_layers_{n}_X -> transformer_text_model_encoder_layers_{n}_X.
// A name no rule matches is returned unchanged.
func A1111LayerName(kohya string) string {
	for _, r := range a1111Rules {
		if m := r.re.FindStringSubmatch(kohya); m != nil {
			return r.convert(m)
		}
	}
	return kohya
}

var a1111XProj = regexp.MustCompile(`^(.*)_([qkv]_proj)$`)

// A1111Layers maps AUTOMATIC1111's layer names to the weight keys of an
// original-LDM (single-file) checkpoint: "model.diffusion_model.P.weight" is
// the layer "diffusion_model_P" and "cond_stage_model.transformer.P.weight"
// the layer "transformer_P", dots replaced by underscores, as
// assign_network_names_to_compvis_modules names the modules.
func A1111Layers(checkpointKeys []string) map[string]string {
	layers := map[string]string{}
	for _, k := range checkpointKeys {
		module, ok := strings.CutSuffix(k, ".weight")
		if !ok {
			continue
		}
		if p, ok := strings.CutPrefix(module, "model."); ok {
			layers[strings.ReplaceAll(p, ".", "_")] = k
		} else if p, ok := strings.CutPrefix(module, "cond_stage_model."); ok {
			layers[strings.ReplaceAll(p, ".", "_")] = k
		}
	}
	return layers
}

// A1111Resolve finds the checkpoint weight a kohya module patches, following
// load_network's lookup order: the converted name, then (for SD2's fused
// attention) the name without a _q/_k/_v_proj suffix, then the SDXL-style
// "lora_unet" -> "diffusion_model" and "lora_te1_text_model" renames.
func A1111Resolve(kohya string, layers map[string]string) (weightKey string, ok bool) {
	key := A1111LayerName(kohya)
	if w, ok := layers[key]; ok {
		return w, true
	}
	if m := a1111XProj.FindStringSubmatch(key); m != nil {
		if w, ok := layers[m[1]]; ok {
			return w, true
		}
	}
	if strings.Contains(kohya, "lora_unet") {
		w, ok := layers[strings.ReplaceAll(kohya, "lora_unet", "diffusion_model")]
		return w, ok
	}
	if strings.Contains(kohya, "lora_te1_text_model") {
		if w, ok := layers[strings.ReplaceAll(kohya, "lora_te1_text_model", "0_transformer_text_model")]; ok {
			return w, true
		}
		w, ok := layers[strings.ReplaceAll(kohya, "lora_te1_text_model", "transformer_text_model")]
		return w, ok
	}
	return "", false
}

// A1111Check verifies that AUTOMATIC1111 would apply every key of a LoRA
// (lora maps its keys to their shapes) to a weight of the checkpoint
// (checkpoint maps original-LDM keys to shapes): each module resolves to a
// layer, and up @ down has the layer's [out, in] shape. The error lists every
// key that would be skipped or fail.
func A1111Check(lora, checkpoint map[string][]int) error {
	layers := A1111Layers(slices.Collect(maps.Keys(checkpoint)))
	type mod struct{ down, up []int }
	mods := map[string]*mod{}
	var problems []error
	for _, key := range slices.Sorted(maps.Keys(lora)) {
		name, part, _ := strings.Cut(key, ".")
		m := mods[name]
		if m == nil {
			m = &mod{}
			mods[name] = m
		}
		switch part {
		case "lora_down.weight":
			m.down = lora[key]
		case "lora_up.weight":
			m.up = lora[key]
		case "alpha":
		default:
			problems = append(problems, fmt.Errorf("%s: not a LoRA key A1111's LoRA type reads", key))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(mods)) {
		m := mods[name]
		w, ok := A1111Resolve(name, layers)
		if !ok {
			problems = append(problems, fmt.Errorf("%s: no checkpoint layer %s (A1111 would skip it)", name, A1111LayerName(name)))
			continue
		}
		if m.down == nil || m.up == nil || len(m.down) < 2 || len(m.up) < 2 {
			problems = append(problems, fmt.Errorf("%s: lora_down %v, lora_up %v: want both, at least 2-D", name, m.down, m.up))
			continue
		}
		ws := checkpoint[w]
		if len(ws) < 2 || m.up[0] != ws[0] || prod(m.down[1:]) != prod(ws[1:]) || m.down[0] != m.up[1] || prod(m.up[2:]) != 1 {
			problems = append(problems, fmt.Errorf("%s: up %v @ down %v does not fit %s %v", name, m.up, m.down, w, ws))
		}
	}
	return errors.Join(problems...)
}

func prod(s []int) int {
	p := 1
	for _, d := range s {
		p *= d
	}
	return p
}

// A1111CheckFiles runs A1111Check on a LoRA file against a single-file
// (original-LDM) checkpoint, the layout AUTOMATIC1111 loads.
func A1111CheckFiles(loraPath, checkpointPath string) error {
	lora, err := safetensorsShapes(loraPath)
	if err != nil {
		return fmt.Errorf("a1111 check: %w", err)
	}
	ckpt, err := safetensorsShapes(checkpointPath)
	if err != nil {
		return fmt.Errorf("a1111 check: %w", err)
	}
	if err := A1111Check(lora, ckpt); err != nil {
		return fmt.Errorf("a1111 check of %s against %s: %w", loraPath, checkpointPath, err)
	}
	return nil
}

func safetensorsShapes(path string) (map[string][]int, error) {
	f, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	shapes := map[string][]int{}
	for _, name := range f.Names() {
		_, shape, _ := f.Info(name)
		shapes[name] = shape
	}
	return shapes, nil
}
