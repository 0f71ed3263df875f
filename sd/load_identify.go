package sd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// identifySingleFile recognises the model families and file kinds that are
// not SD 1.x checkpoints from their key names alone, before any tensor is
// read.
func identifySingleFile(path string, keys []string) error {
	has := func(pred func(string) bool) (string, bool) {
		for _, k := range keys {
			if pred(k) {
				return k, true
			}
		}
		return "", false
	}
	prefix := func(p string) func(string) bool { return func(k string) bool { return strings.HasPrefix(k, p) } }
	contains := func(s string) func(string) bool { return func(k string) bool { return strings.Contains(k, s) } }
	unsupported := func(found, hint string) error { return &UnsupportedModelError{Path: path, Found: found, Hint: hint} }

	if len(keys) == 0 {
		return unsupported("an empty safetensors file (no tensors)", "")
	}
	for _, p := range []string{"lora_unet_", "lora_te_", "lora_te1_", "lora_te2_"} {
		if k, ok := has(prefix(p)); ok {
			return unsupported(fmt.Sprintf("a LoRA adapter (key %s), not a base model", k), "choose it as a LoRA, and a full SD 1.x checkpoint as the base model")
		}
	}
	for _, s := range []string{".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.", ".hada_w1_a", ".lokr_w1"} {
		if k, ok := has(contains(s)); ok {
			return unsupported(fmt.Sprintf("a LoRA/LyCORIS adapter (key %s), not a base model", k), "choose a full SD 1.x checkpoint as the base model")
		}
	}
	if k, ok := has(func(k string) bool {
		return k == "emb_params" || strings.HasPrefix(k, "string_to_param") || k == "clip_l" || k == "clip_g"
	}); ok {
		return unsupported(fmt.Sprintf("a textual-inversion embedding (key %s)", k), "")
	}
	if k, ok := has(contains("double_blocks.")); ok {
		return unsupported(fmt.Sprintf("a Flux model (key %s)", k), "")
	}
	if k, ok := has(contains("joint_blocks.")); ok {
		return unsupported(fmt.Sprintf("a Stable Diffusion 3 model (key %s)", k), "")
	}
	if k, ok := has(func(k string) bool {
		return strings.HasPrefix(k, "conditioner.embedders.") || strings.HasPrefix(k, ldmUNetPrefix+"label_emb.") || strings.HasPrefix(k, "add_embedding.")
	}); ok {
		return unsupported(fmt.Sprintf("an SDXL model (key %s)", k), "")
	}
	if k, ok := has(prefix("cond_stage_model.model.")); ok {
		return unsupported(fmt.Sprintf("a Stable Diffusion 2.x model (OpenCLIP text encoder, key %s)", k), "")
	}
	if k, ok := has(prefix("down_blocks.")); ok {
		return unsupported(fmt.Sprintf("a diffusers UNet weights file (key %s)", k), "open the diffusers folder that holds unet/, vae/ and text_encoder/ instead")
	}
	if k, ok := has(prefix("text_model.")); ok {
		if _, unet := has(prefix(ldmUNetPrefix)); !unet {
			return unsupported(fmt.Sprintf("a text-encoder-only file (key %s)", k), "")
		}
	}
	if _, ok := has(prefix(ldmUNetPrefix)); !ok {
		if _, vae := has(func(k string) bool {
			return strings.HasPrefix(k, ldmVAEPrefix) || strings.HasPrefix(k, "encoder.") || strings.HasPrefix(k, "decoder.")
		}); vae {
			return nil // a VAE-only file; OpenParts decides whether that is enough
		}
		if _, text := has(prefix(ldmTextPrefix)); text {
			return nil
		}
		return unsupported(fmt.Sprintf("not a Stable Diffusion checkpoint (keys such as %s)", sampleKeys(keys)), "")
	}
	return nil
}

// sampleKeys quotes up to three keys for an error message.
func sampleKeys(keys []string) string {
	n := min(3, len(keys))
	return strings.Join(keys[:n], ", ")
}

// checkSD1UNet recognises UNets of other SD variants by their weight shapes
// (diffusers names), for both layouts.
func checkSD1UNet(path string, p *Part) error {
	unsupported := func(found string) error { return &UnsupportedModelError{Path: path, Found: found} }
	if _, ok := p.Shape("add_embedding.linear_1.weight"); ok {
		return unsupported("an SDXL model (UNet add_embedding)")
	}
	in, ok := p.Shape("conv_in.weight")
	if !ok || len(in) != 4 {
		return fmt.Errorf("open model %s: unet weight conv_in.weight is missing (%s layout)", path, p.layout)
	}
	switch in[1] {
	case 4:
	case 9:
		return unsupported("an inpainting model (its UNet takes 9 input channels: latents, mask and masked image)")
	case 8:
		return unsupported("an InstructPix2Pix model (its UNet takes 8 input channels)")
	default:
		return unsupported(fmt.Sprintf("a model whose UNet takes %d input channels (SD 1.x takes 4)", in[1]))
	}
	if k, ok := p.Shape("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"); ok && len(k) == 2 {
		switch k[1] {
		case 768:
		case 1024:
			return unsupported("a Stable Diffusion 2.x model (the UNet cross-attends to 1024-wide OpenCLIP embeddings)")
		case 2048:
			return unsupported("an SDXL model (the UNet cross-attends to 2048-wide embeddings)")
		}
	}
	if w, ok := p.Shape("down_blocks.0.attentions.0.proj_in.weight"); ok && len(w) == 2 {
		return unsupported("a Stable Diffusion 2.x-style model (linear proj_in in the transformers)")
	}
	return nil
}

// Pipeline classes of diffusers folders that are not SD 1.x text-to-image
// models, with what to call them.
var foreignPipelines = map[string]string{
	"StableDiffusionXLPipeline":              "an SDXL model",
	"StableDiffusionXLImg2ImgPipeline":       "an SDXL refiner",
	"StableDiffusionXLInpaintPipeline":       "an SDXL inpainting model",
	"StableDiffusion3Pipeline":               "a Stable Diffusion 3 model",
	"FluxPipeline":                           "a Flux model",
	"StableDiffusionInpaintPipeline":         "an inpainting model",
	"StableDiffusionUpscalePipeline":         "an upscaler model",
	"StableDiffusionInstructPix2PixPipeline": "an InstructPix2Pix model",
	"StableDiffusionDepth2ImgPipeline":       "a depth-to-image model",
	"StableUnCLIPPipeline":                   "an unCLIP model",
	"KandinskyPipeline":                      "a Kandinsky model",
	"PixArtAlphaPipeline":                    "a PixArt model",
}

// identifyDiffusers reads model_index.json (when present) and the folder
// layout to refuse other pipelines before any weights are opened.
func identifyDiffusers(dir string) error {
	unsupported := func(found string) error { return &UnsupportedModelError{Path: dir, Found: found} }
	raw, err := os.ReadFile(filepath.Join(dir, "model_index.json"))
	switch {
	case err == nil:
		var idx struct {
			Class string `json:"_class_name"`
		}
		if err := json.Unmarshal(raw, &idx); err != nil {
			return fmt.Errorf("open model %s: model_index.json: %w", dir, err)
		}
		if what, ok := foreignPipelines[idx.Class]; ok {
			return unsupported(fmt.Sprintf("%s (diffusers %s)", what, idx.Class))
		}
		if idx.Class != "" && !strings.HasPrefix(idx.Class, "StableDiffusion") {
			return unsupported(fmt.Sprintf("a diffusers %s", idx.Class))
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("open model %s: %w", dir, err)
	}
	for _, sub := range []string{"text_encoder_2", "transformer"} {
		if st, err := os.Stat(filepath.Join(dir, sub)); err == nil && st.IsDir() {
			what := "an SDXL model (it has text_encoder_2/)"
			if sub == "transformer" {
				what = "a transformer-based model such as SD3 or Flux (it has transformer/)"
			}
			return unsupported(what)
		}
	}
	found := false
	for _, sub := range []string{"unet", "vae", "text_encoder"} {
		if st, err := os.Stat(filepath.Join(dir, sub)); err == nil && st.IsDir() {
			found = true
		}
	}
	if !found {
		return unsupported("a folder without unet/, vae/ or text_encoder/ sub-folders (not a diffusers model)")
	}
	return nil
}
