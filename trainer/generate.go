package trainer

import (
	"context"
	"fmt"
	"image"
	"path/filepath"
	"strconv"
	"strings"

	"lorastudio/sd"
)

// GenerateRequest is one text-to-image run as a user types it: the prompt
// may carry AUTOMATIC1111 <lora:name:te:unet> tags, resolved in LoRADir.
type GenerateRequest struct {
	sd.GenerateOptions
	LoRADir string
	// Model names the base model in the parameters text: a checkpoint path
	// or DemoModel; ModelHash is its SHA-256, when known.
	Model, ModelHash string
}

// Generated is a finished run: the image and AUTOMATIC1111's parameters
// text for its PNG.
type Generated struct {
	Image      *image.NRGBA
	Options    sd.GenerateOptions // as requested, the prompt with its LoRA tags
	Parameters string
	LoRAs      []string // the files applied, in prompt order
	// LoRAHashes are "name: short hash" for the parameters text.
	LoRAHashes []string
}

// Generate strips the LoRA tags from the prompt, attaches the LoRA files
// they name to m for the run (detached again before it returns) and
// generates the image. Not safe for concurrent use on the same model.
func Generate(ctx context.Context, m *sd.Model, r GenerateRequest, progress func(step, total int)) (*Generated, error) {
	clean, refs, err := sd.ParsePromptLoRAs(r.Prompt)
	if err != nil {
		return nil, err
	}
	if _, negRefs, err := sd.ParsePromptLoRAs(r.NegativePrompt); err != nil {
		return nil, fmt.Errorf("negative %w", err)
	} else if len(negRefs) > 0 {
		return nil, fmt.Errorf("negative prompt: <lora:%s:…> belongs in the prompt", negRefs[0].Name)
	}
	paths := make([]string, len(refs))
	hashes := make([]string, len(refs))
	if len(refs) > 0 {
		if r.LoRADir == "" {
			return nil, fmt.Errorf("the prompt uses %s and no LoRA folder is set", "<lora:"+refs[0].Name+":…>")
		}
		entries, err := sd.FindLoRAs(r.LoRADir)
		if err != nil {
			return nil, err
		}
		for i, ref := range refs {
			if paths[i], err = sd.ResolveLoRA(entries, ref.Name); err != nil {
				return nil, err
			}
			h, err := sd.SafetensorsDataHash(paths[i])
			if err != nil {
				return nil, fmt.Errorf("lora %s: %w", paths[i], err)
			}
			// AUTOMATIC1111 drops ':' and ',' from the name, which
			// would break its list.
			hashes[i] = strings.NewReplacer(":", "", ",", "").Replace(ref.Name) + ": " + h[:min(12, len(h))]
		}
	}
	detach, err := m.ApplyLoRAs(refs, paths)
	defer detach()
	if err != nil {
		return nil, err
	}
	o := r.GenerateOptions
	o.Prompt = clean
	img, err := m.Txt2Img(ctx, o, progress)
	if err != nil {
		return nil, err
	}
	return &Generated{Image: img, Options: r.GenerateOptions, Parameters: Parameters(r.GenerateOptions, r.Model, r.ModelHash, hashes), LoRAs: paths, LoRAHashes: hashes}, nil
}

// Parameters is the generation info AUTOMATIC1111 writes into a PNG's
// "parameters" text for o (its prompt as typed, LoRA tags included); model
// is the checkpoint path or DemoModel, hash its SHA-256 or "";
// loraHashes are "name: short hash" of the LoRAs applied.
func Parameters(o sd.GenerateOptions, model, hash string, loraHashes []string) string {
	var b strings.Builder
	b.WriteString(o.Prompt)
	if o.NegativePrompt != "" {
		b.WriteString("\nNegative prompt: " + o.NegativePrompt)
	}
	sampler := a1111Samplers[o.Sampler]
	if sampler == "" {
		sampler = o.Sampler
	}
	fmt.Fprintf(&b, "\nSteps: %d, Sampler: %s, CFG scale: %s, Seed: %d, Size: %dx%d",
		o.Steps, sampler, strconv.FormatFloat(float64(o.CFGScale), 'g', -1, 32), o.Seed, o.Width, o.Height)
	if len(hash) >= 10 {
		fmt.Fprintf(&b, ", Model hash: %s", hash[:10])
	}
	if name := modelName(model); name != "" {
		fmt.Fprintf(&b, ", Model: %s", strings.TrimSuffix(name, filepath.Ext(name)))
	}
	if o.ClipSkip > 1 {
		fmt.Fprintf(&b, ", Clip skip: %d", o.ClipSkip)
	}
	if len(loraHashes) > 0 {
		b.WriteString(`, Lora hashes: "` + strings.Join(loraHashes, ", ") + `"`)
	}
	b.WriteString(", Version: LoRA Studio")
	return b.String()
}

// WritePNG saves img atomically as a PNG whose "parameters" text chunk
// holds params, where AUTOMATIC1111's PNG Info tab reads it.
func WritePNG(path string, img image.Image, params string) error {
	if err := writePNG(path, img, params); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}
