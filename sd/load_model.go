package sd

import (
	"fmt"
	"path/filepath"

	"lorastudio/nn"
)

// Model is a complete SD 1.x model in memory: tokenizer, text encoder, VAE
// and UNet, all weights float32. One Model serves generation and training.
type Model struct {
	Name      string // the checkpoint's file or folder name, or "random seed N"
	Path      string // empty for a model made from a seed
	Config    ModelConfig
	Tokenizer *Tokenizer
	Text      *CLIPTextModel
	VAE       *VAE
	UNet      *UNet
}

// LoadModel opens, identifies and loads the checkpoint at path (see Open).
// The files are unmapped again before it returns.
func LoadModel(path string) (*Model, error) {
	c, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return LoadModelFrom(c)
}

// LoadModelFrom loads every part of an open checkpoint into memory.
func LoadModelFrom(c *Checkpoint) (*Model, error) {
	if missing := AllParts &^ c.Parts(); missing != 0 {
		return nil, fmt.Errorf("load model %s: no %s", c.Path, missing)
	}
	m, err := buildModel(c.Config, c.UNet, c.VAE, c.TextEncoder)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", c.Path, err)
	}
	m.Name, m.Path = filepath.Base(c.Path), c.Path
	return m, nil
}

// NewRandomModel builds a model of cfg with RandomWeights(seed): SD15Config
// for benchmarks, TinyConfig for the demo. It is untrained: its images are
// noise, but it trains and samples through exactly the code a real
// checkpoint does.
func NewRandomModel(cfg ModelConfig, seed uint64) (*Model, error) {
	src := RandomWeights(seed)
	m, err := buildModel(cfg, src, src, src)
	if err != nil {
		return nil, fmt.Errorf("random model: %w", err)
	}
	m.Name = fmt.Sprintf("random seed %d", seed)
	return m, nil
}

func buildModel(cfg ModelConfig, unet, vae, text WeightSource) (*Model, error) {
	tok, err := NewTokenizer()
	if err != nil {
		return nil, err
	}
	t, err := LoadCLIPTextModel(text, cfg.CLIP)
	if err != nil {
		return nil, err
	}
	v, err := LoadVAE(vae, cfg.VAE)
	if err != nil {
		return nil, err
	}
	u, err := LoadUNet(unet, cfg.UNet)
	if err != nil {
		return nil, fmt.Errorf("unet: %w", err)
	}
	return &Model{Config: cfg, Tokenizer: tok, Text: t, VAE: v, UNet: u}, nil
}

// EncodePrompts returns the text conditioning [len(prompts), 77, width] of
// the prompts, each cut to 75 tokens as kohya's trainer does. clipSkip is
// 1 for the last layer, 2 for the penultimate (see CLIPTextModel.Forward).
func (m *Model) EncodePrompts(prompts []string, clipSkip int) (*nn.Tensor, error) {
	if len(prompts) == 0 {
		return nil, fmt.Errorf("encode prompts: no prompts")
	}
	ids := make([]int, 0, len(prompts)*ContextLength)
	for _, p := range prompts {
		ids = append(ids, m.Tokenizer.Encode(p)...)
	}
	return m.Text.Forward(ids, len(prompts), clipSkip)
}
