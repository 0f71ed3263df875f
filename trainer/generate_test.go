package trainer

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lorastudio/sd"
)

// demoLoRA saves a LoRA for the demo model whose up matrices are not zero,
// so it changes the image.
func demoLoRA(t testing.TB, path string) {
	t.Helper()
	layers, err := sd.LoRALayoutOf(sd.TinyConfig()).AllLayers()
	if err != nil {
		t.Fatal(err)
	}
	n, err := sd.NewLoRANetwork(layers, 2, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range n.Modules {
		for i := range m.Up.Data {
			m.Up.Data[i] = 0.5 * float32(i%5-2)
		}
	}
	if err := n.Save(path, "F32", map[string]string{"ss_output_name": "alias"}); err != nil {
		t.Fatal(err)
	}
}

func TestGenerate(t *testing.T) {
	m, err := sd.NewRandomModel(sd.TinyConfig(), DemoSeed)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	demoLoRA(t, filepath.Join(dir, "style.safetensors"))
	run := func(prompt string) (*Generated, error) {
		o := sd.DefaultGenerateOptions()
		o.Width, o.Height, o.Steps, o.Seed, o.Prompt, o.NegativePrompt = 64, 64, 2, 3, prompt, "blurry"
		var steps []int
		g, err := Generate(context.Background(), m, GenerateRequest{GenerateOptions: o, LoRADir: dir, Model: DemoModel},
			func(step, total int) { steps = append(steps, step*10+total) })
		if err == nil && (len(steps) != 2 || steps[1] != 22) {
			t.Errorf("%q: progress %v, want steps 1 and 2 of 2", prompt, steps)
		}
		return g, err
	}
	plain, err := run("a photo")
	if err != nil {
		t.Fatal(err)
	}
	zero, err := run("a photo<lora:style:0>")
	if err != nil {
		t.Fatal(err)
	}
	styled, err := run("a photo<lora:alias:1:0.8>")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.Image.Pix, zero.Image.Pix) {
		t.Error("a LoRA at multiplier 0 changed the image")
	}
	if bytes.Equal(plain.Image.Pix, styled.Image.Pix) {
		t.Error("the LoRA did not change the image")
	}
	again, err := run("a photo")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.Image.Pix, again.Image.Pix) {
		t.Error("the LoRA stayed attached after its run")
	}
	want := "a photo<lora:alias:1:0.8>\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 3, Size: 64x64, Model: demo, Lora hashes: \"alias: "
	if !strings.HasPrefix(styled.Parameters, want) || !strings.HasSuffix(styled.Parameters, "\", Version: LoRA Studio") {
		t.Errorf("parameters\n%s\nwant prefix\n%s", styled.Parameters, want)
	}

	path := filepath.Join(t.TempDir(), "out.png")
	if err := WritePNG(path, styled.Image, styled.Parameters); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := pngText(t, data)["parameters"]; got != styled.Parameters {
		t.Errorf("PNG parameters %q, want %q", got, styled.Parameters)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil || img.Bounds() != image.Rect(0, 0, 64, 64) {
		t.Errorf("PNG decodes to %v, %v", img.Bounds(), err)
	}

	for prompt, msg := range map[string]string{
		"<lora:nope:1>":  `lora "nope": no such file in the LoRA folder (have style)`,
		"<lora:style:x>": `te multiplier "x" is not a number`,
	} {
		if _, err := run(prompt); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want %q", prompt, err, msg)
		}
	}
	o := sd.DefaultGenerateOptions()
	o.Prompt = "<lora:style:1>"
	if _, err := Generate(context.Background(), m, GenerateRequest{GenerateOptions: o}, nil); err == nil || !strings.Contains(err.Error(), "no LoRA folder") {
		t.Errorf("no folder: %v", err)
	}
	o.Prompt, o.NegativePrompt = "x", "<lora:style:1>"
	if _, err := Generate(context.Background(), m, GenerateRequest{GenerateOptions: o, LoRADir: dir}, nil); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("lora in negative: %v", err)
	}
}

// BenchmarkGenerate is a 20-step euler_a run of the demo model at 256x256,
// plain and with a LoRA on every layer (UNet and text encoder) attached;
// s/step is the sampling time per step.
func BenchmarkGenerate(b *testing.B) {
	m, err := sd.NewRandomModel(sd.TinyConfig(), DemoSeed)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	demoLoRA(b, filepath.Join(dir, "style.safetensors"))
	for _, prompt := range []string{"a photo", "a photo <lora:style:0.7>"} {
		name := "plain"
		if strings.Contains(prompt, "lora") {
			name = "lora"
		}
		b.Run(name, func(b *testing.B) {
			o := sd.DefaultGenerateOptions()
			o.Width, o.Height, o.Prompt = 256, 256, prompt
			for b.Loop() {
				if _, err := Generate(context.Background(), m, GenerateRequest{GenerateOptions: o, LoRADir: dir, Model: DemoModel}, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N*o.Steps), "s/step")
		})
	}
}
