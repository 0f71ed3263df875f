package sd

import (
	"fmt"
	"strings"
)

// LoRATargets names which UNet layers get adapters.
type LoRATargets string

const (
	// LoRACrossAttention adapts attn2's to_q, to_k, to_v and to_out.0 in every
	// transformer block: the layers that read the prompt. The default.
	LoRACrossAttention LoRATargets = "cross_attention"
	// LoRAAttention adapts attn1 (self-attention) and attn2.
	LoRAAttention LoRATargets = "attention"
	// LoRAKohyaFull adapts every Linear and 1x1 convolution inside the
	// transformer blocks, as sd-scripts' networks.lora does: proj_in,
	// attn1, attn2, ff.net.0.proj, ff.net.2 and proj_out.
	LoRAKohyaFull LoRATargets = "kohya_full"
)

// ParseLoRATargets accepts the canonical names and their common spellings
// ("cross-attention", "attn2", "kohya full", "full").
func ParseLoRATargets(s string) (LoRATargets, error) {
	norm := strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToLower(strings.TrimSpace(s)))
	switch norm {
	case "", "cross_attention", "crossattention", "attn2":
		return LoRACrossAttention, nil
	case "attention", "attn", "attn1_attn2", "self_and_cross_attention":
		return LoRAAttention, nil
	case "kohya_full", "kohya", "full", "all":
		return LoRAKohyaFull, nil
	}
	return "", fmt.Errorf("lora targets %q: want cross_attention, attention or kohya_full", s)
}

// LoRALayer is a Linear layer or a 1x1 convolution that can carry an adapter.
type LoRALayer struct {
	// Module is the layer's diffusers path, without ".weight":
	// "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q", or for
	// the text encoder "text_model.encoder.layers.0.self_attn.q_proj".
	Module      string
	TextEncoder bool
	In, Out     int
	Conv        bool // a 1x1 convolution (SD1.x proj_in/proj_out)
}

// KohyaName is the layer's key prefix in a kohya LoRA file:
// "lora_unet_" or "lora_te_" + the module path with '.' -> '_'.
func (l LoRALayer) KohyaName() string {
	if l.TextEncoder {
		return kohyaName("lora_te", l.Module)
	}
	return kohyaName("lora_unet", l.Module)
}

// LoRALayout is what is needed to list an SD1.x model's adaptable layers:
// the UNet's configuration and the text encoder's sizes.
type LoRALayout struct {
	UNet       UNetConfig
	TextLayers int // CLIP encoder layers
	TextWidth  int
	TextMLP    int
}

// SD15LoRALayout is Stable Diffusion 1.x's layout (16 transformer blocks,
// CLIP ViT-L/14 text encoder).
func SD15LoRALayout() LoRALayout {
	return LoRALayout{UNet: SD15UNetConfig(), TextLayers: 12, TextWidth: 768, TextMLP: 3072}
}

// LoRALayoutOf is the layout of a model configuration.
func LoRALayoutOf(cfg ModelConfig) LoRALayout {
	return LoRALayout{UNet: cfg.UNet, TextLayers: cfg.CLIP.Layers, TextWidth: cfg.CLIP.Width, TextMLP: cfg.CLIP.MLP}
}

func (lay LoRALayout) check() error {
	u := lay.UNet
	switch {
	case len(u.Channels) == 0 || len(u.Attention) != len(u.Channels):
		return fmt.Errorf("lora layout: %d UNet levels and %d attention flags", len(u.Channels), len(u.Attention))
	case u.LayersPerBlock < 1 || u.TransformerDepth < 1 || u.ContextDim < 1:
		return fmt.Errorf("lora layout: layers per block %d, transformer depth %d, context %d", u.LayersPerBlock, u.TransformerDepth, u.ContextDim)
	}
	for _, c := range u.Channels {
		if c < 1 {
			return fmt.Errorf("lora layout: UNet channels %v", u.Channels)
		}
	}
	return nil
}

// transformers lists each Transformer2DModel of the UNet (its diffusers
// path and channels): down levels, then the mid block, then up levels.
func (lay LoRALayout) transformers() []struct {
	path     string
	channels int
} {
	type tr = struct {
		path     string
		channels int
	}
	var out []tr
	u := lay.UNet
	n := len(u.Channels)
	for i, c := range u.Channels {
		if !u.Attention[i] {
			continue
		}
		for j := range u.LayersPerBlock {
			out = append(out, tr{fmt.Sprintf("down_blocks.%d.attentions.%d", i, j), c})
		}
	}
	out = append(out, tr{"mid_block.attentions.0", u.Channels[n-1]})
	for i := range n {
		level := n - 1 - i
		if !u.Attention[level] {
			continue
		}
		for j := range u.LayersPerBlock + 1 {
			out = append(out, tr{fmt.Sprintf("up_blocks.%d.attentions.%d", i, j), u.Channels[level]})
		}
	}
	return out
}

// Layers lists the layers a LoRA with these targets adapts, UNet first; with
// textEncoder also the text encoder's q/k/v/out_proj, fc1 and fc2 of every
// layer. The order is stable.
func (lay LoRALayout) Layers(targets LoRATargets, textEncoder bool) ([]LoRALayer, error) {
	if err := lay.check(); err != nil {
		return nil, err
	}
	var self, cross, full bool
	switch targets {
	case LoRACrossAttention:
		cross = true
	case LoRAAttention:
		self, cross = true, true
	case LoRAKohyaFull:
		self, cross, full = true, true, true
	default:
		return nil, fmt.Errorf("lora targets %q: want cross_attention, attention or kohya_full", targets)
	}
	var out []LoRALayer
	add := func(path string, in, o int, conv bool) {
		out = append(out, LoRALayer{Module: path, In: in, Out: o, Conv: conv})
	}
	for _, t := range lay.transformers() {
		c := t.channels
		if full {
			add(t.path+".proj_in", c, c, true)
		}
		for d := range lay.UNet.TransformerDepth {
			b := fmt.Sprintf("%s.transformer_blocks.%d.", t.path, d)
			if self {
				for _, p := range []string{"to_q", "to_k", "to_v", "to_out.0"} {
					add(b+"attn1."+p, c, c, false)
				}
			}
			if cross {
				add(b+"attn2.to_q", c, c, false)
				add(b+"attn2.to_k", lay.UNet.ContextDim, c, false)
				add(b+"attn2.to_v", lay.UNet.ContextDim, c, false)
				add(b+"attn2.to_out.0", c, c, false)
			}
			if full {
				add(b+"ff.net.0.proj", c, 8*c, false)
				add(b+"ff.net.2", 4*c, c, false)
			}
		}
		if full {
			add(t.path+".proj_out", c, c, true)
		}
	}
	if textEncoder {
		if lay.TextLayers < 1 || lay.TextWidth < 1 || lay.TextMLP < 1 {
			return nil, fmt.Errorf("lora layout: text encoder %d layers, width %d, mlp %d", lay.TextLayers, lay.TextWidth, lay.TextMLP)
		}
		w, h := lay.TextWidth, lay.TextMLP
		for n := range lay.TextLayers {
			b := fmt.Sprintf("text_model.encoder.layers.%d.", n)
			for _, p := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
				out = append(out, LoRALayer{Module: b + "self_attn." + p, TextEncoder: true, In: w, Out: w})
			}
			out = append(out, LoRALayer{Module: b + "mlp.fc1", TextEncoder: true, In: w, Out: h})
			out = append(out, LoRALayer{Module: b + "mlp.fc2", TextEncoder: true, In: h, Out: w})
		}
	}
	return out, nil
}

// AllLayers lists every layer a kohya SD1.x LoRA (networks.lora without
// conv_dim) can adapt: the kohya_full UNet set and the text encoder.
func (lay LoRALayout) AllLayers() ([]LoRALayer, error) {
	return lay.Layers(LoRAKohyaFull, true)
}
