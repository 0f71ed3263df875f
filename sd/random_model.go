package sd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"lorastudio/atomicfile"
	"lorastudio/nn"
)

// WriteRandomModel writes the model NewRandomModel(cfg, seed) builds as a
// diffusers folder at dir, its weights stored as dtype ("F32", "F16" or
// "BF16"). No real SD weights can be shipped or downloaded, so benchmarks
// of whole runs (loading, caching, training, previews) and anyone timing
// the app on their machine use a full-size model of random weights that
// loads through exactly the path a user's checkpoint takes. One part is
// held in memory at a time.
func WriteRandomModel(dir string, cfg ModelConfig, seed uint64, dtype string) error {
	parts := []struct {
		sub, file string
		build     func(WeightSource) error
	}{
		{"unet", "diffusion_pytorch_model.safetensors", func(w WeightSource) error { _, err := LoadUNet(w, cfg.UNet); return err }},
		{"vae", "diffusion_pytorch_model.safetensors", func(w WeightSource) error { _, err := LoadVAE(w, cfg.VAE); return err }},
		{"text_encoder", "model.safetensors", func(w WeightSource) error { _, err := LoadCLIPTextModel(w, cfg.CLIP); return err }},
	}
	for _, p := range parts {
		rec := recordingSource{src: RandomWeights(seed), got: map[string]*nn.Tensor{}}
		if err := p.build(rec); err != nil {
			return fmt.Errorf("random model %s: %w", p.sub, err)
		}
		if err := os.MkdirAll(filepath.Join(dir, p.sub), 0o755); err != nil {
			return fmt.Errorf("random model: %w", err)
		}
		if err := nn.WriteSafetensors(filepath.Join(dir, p.sub, p.file), rec.got, dtype, nil); err != nil {
			return fmt.Errorf("random model %s: %w", p.sub, err)
		}
	}
	configs := map[string]any{
		"model_index.json":         map[string]any{"_class_name": "StableDiffusionPipeline"},
		"text_encoder/config.json": map[string]any{"architectures": []string{"CLIPTextModel"}, "num_attention_heads": cfg.CLIP.Heads},
	}
	for name, v := range configs {
		raw, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(dir, name), raw); err != nil {
			return fmt.Errorf("random model: %w", err)
		}
	}
	return nil
}

// recordingSource hands out src's weights and keeps each one it handed out.
type recordingSource struct {
	src WeightSource
	got map[string]*nn.Tensor
}

func (r recordingSource) Tensor(name string, want ...int) (*nn.Tensor, error) {
	t, err := r.src.Tensor(name, want...)
	if err == nil {
		r.got[name] = t
	}
	return t, err
}
