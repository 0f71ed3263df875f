package sd

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"lorastudio/nn"
)

var (
	demoOnce  sync.Once
	demoModel *Model
	demoErr   error
)

// demo is the tiny random model, built once per test binary.
func demo(t testing.TB) *Model {
	t.Helper()
	demoOnce.Do(func() { demoModel, demoErr = NewRandomModel(TinyConfig(), 7) })
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	return demoModel
}

func TestLoadModel(t *testing.T) {
	m, err := LoadModel("testdata/tiny_sd1_ldm.fp16.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "tiny_sd1_ldm.fp16.safetensors" || m.Config.CLIP.VocabSize != 1024 || m.UNet == nil || m.VAE == nil {
		t.Fatalf("model %+v", m)
	}
	// The fixture's 1,024-token vocabulary cannot take real prompts; the error says why.
	if _, err := m.EncodePrompts([]string{"a photo of a cat"}, 1); err == nil || !strings.Contains(err.Error(), "1024-token vocabulary") {
		t.Errorf("encode with the small vocabulary: %v", err)
	}
	if _, err := LoadModel("testdata/golden_vae.safetensors"); err == nil {
		t.Error("golden file loaded as a model")
	}
}

func TestEncodePrompts(t *testing.T) {
	m := demo(t)
	both, err := m.EncodePrompts([]string{"a photo of a cat", "sks dog"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	one, err := m.EncodePrompts([]string{"sks dog"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(both.Shape, []int{2, 77, 32}) {
		t.Fatalf("shape %v", both.Shape)
	}
	checkClose(t, "second of a batch vs alone", nn.FromData(both.Data[77*32:], 1, 77, 32), one, 1e-5)
	if _, err := m.EncodePrompts(nil, 1); err == nil {
		t.Error("no prompts accepted")
	}
}

func TestTxt2ImgDemo(t *testing.T) {
	m := demo(t)
	o := DefaultGenerateOptions()
	o.Width, o.Height, o.Steps, o.Prompt, o.Seed = 128, 64, 2, "a photo of sks dog", 11
	for _, sampler := range SamplerNames {
		o.Sampler = sampler
		calls := 0
		a, err := m.Txt2Img(context.Background(), o, func(step, total int) { calls++ })
		if err != nil {
			t.Fatal(err)
		}
		if a.Rect.Dx() != 128 || a.Rect.Dy() != 64 || calls != 2 {
			t.Fatalf("%s: image %v, %d progress calls", sampler, a.Rect, calls)
		}
		if sampler != "euler_a" {
			continue
		}
		b, _ := m.Txt2Img(context.Background(), o, nil)
		if !slices.Equal(a.Pix, b.Pix) {
			t.Errorf("%s: same seed, different images", sampler)
		}
		// Encoded up front, with the text encoder gone: the same image.
		cond, err := m.EncodeConditioning(o.Prompt, o.NegativePrompt, o.ClipSkip)
		if err != nil {
			t.Fatal(err)
		}
		text := m.Text
		m.Text = nil
		pre := o
		pre.Conditioning = cond
		d, err := m.Txt2Img(context.Background(), pre, nil)
		m.Text = text
		if err != nil || !slices.Equal(a.Pix, d.Pix) {
			t.Errorf("with the prompt encoded up front: %v, same image %v", err, err == nil && slices.Equal(a.Pix, d.Pix))
		}
		o.Seed++
		c, _ := m.Txt2Img(context.Background(), o, nil)
		o.Seed--
		if slices.Equal(a.Pix, c.Pix) {
			t.Error("different seeds, same image")
		}
	}
	o.Prompt = strings.Repeat("a photo of a cat, ", 30) // 180 tokens: three chunks
	o.Width, o.Height = 64, 64
	if _, err := m.Txt2Img(context.Background(), o, nil); err != nil {
		t.Errorf("long prompt: %v", err)
	}
	for _, bad := range []GenerateOptions{
		{Width: 100, Height: 64, Steps: 3, Sampler: "euler", ClipSkip: 1},
		{Width: 64, Height: 4096, Steps: 3, Sampler: "euler", ClipSkip: 1},
		{Width: 64, Height: 64, Steps: 0, Sampler: "euler", ClipSkip: 1},
		{Width: 64, Height: 64, Steps: 3, Sampler: "heun", ClipSkip: 1},
		{Width: 64, Height: 64, Steps: 3, Sampler: "euler", ClipSkip: 5},
	} {
		if _, err := m.Txt2Img(context.Background(), bad, nil); err == nil {
			t.Errorf("options %+v accepted", bad)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Txt2Img(ctx, o, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
}
