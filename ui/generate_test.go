package ui

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"lorastudio/sd"
	"lorastudio/trainer"
)

// writeGenerateLoRA saves a LoRA for the demo model.
func writeGenerateLoRA(t *testing.T, path string) {
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
	if err := n.Save(path, "F16", map[string]string{"ss_output_name": "aliased"}); err != nil {
		t.Fatal(err)
	}
}

// TestGenerateScreen runs the demo model at 64x64 for 2 steps through the
// screen: the LoRA list inserts a tag, progress shows steps and s/step,
// the result carries its parameters and saves as a PNG; bad input and an
// unknown LoRA are reported; a run can be cancelled.
func TestGenerateScreen(t *testing.T) {
	h := newHarness(t)
	h.open(writeDataset(t))
	if n := len(h.s.ws.nav.Items); n != 4 || h.s.ws.nav.Items[3].Text != "Generate" {
		t.Fatalf("navigation has %d items, want Generate as the 4th", n)
	}
	p := newGeneratePanel(h.s)
	h.win.SetContent(p.object())

	dir := t.TempDir()
	writeGenerateLoRA(t, filepath.Join(dir, "style.safetensors"))
	p.loraDir.SetText(dir)
	if p.loraList.Length() != 1 || !strings.Contains(p.loraNote.Text, "1 LoRA") {
		t.Fatalf("LoRA list has %d items (%s)", p.loraList.Length(), p.loraNote.Text)
	}
	p.model.SetText(trainer.DemoModel)
	p.prompt.SetText("a photo of a cat")
	p.loraList.Select(0)
	if p.prompt.Text != "a photo of a cat <lora:style:0.7>" {
		t.Fatalf("prompt after a click %q", p.prompt.Text)
	}
	p.negative.SetText("blurry")
	p.steps.SetText("2")
	p.width.SetText("64")
	p.height.SetText("64")
	p.seed.SetText("5")
	p.sampler.SetSelected("ddim")

	test.Tap(p.run)
	if !p.run.Disabled() || p.cancel.Disabled() {
		t.Error("Generate should be disabled and Cancel enabled while running")
	}
	h.pump("the image", func() bool { return p.cancel.Disabled() && p.last != nil })
	if p.result.Image == nil || p.result.Image.Bounds().Dx() != 64 {
		t.Fatalf("result image %v (status %q)", p.result.Image, p.status.Text)
	}
	if p.bar.Value != 2 || p.bar.Max != 2 || !strings.Contains(p.barText.Text, "Step 2/2") || !strings.Contains(p.barText.Text, "s/step") {
		t.Errorf("progress %v/%v %q", p.bar.Value, p.bar.Max, p.barText.Text)
	}
	want := "a photo of a cat <lora:style:0.7>\nNegative prompt: blurry\nSteps: 2, Sampler: DDIM, CFG scale: 7, Seed: 5, Size: 64x64, Model: demo, Lora hashes: \"style: "
	if !strings.HasPrefix(p.params.Text, want) {
		t.Errorf("parameters %q", p.params.Text)
	}
	if p.save.Disabled() {
		t.Error("Save disabled after a run")
	}
	out := filepath.Join(t.TempDir(), "x.png")
	if err := p.saveTo(out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil || !bytes.Contains(data, []byte(want)) {
		t.Errorf("saved PNG lacks its parameters (%v)", err)
	}
	first := p.loaded

	for _, tt := range []struct {
		field *widget.Entry
		value string
		msg   string
	}{
		{p.steps, "0", "Steps"},
		{p.cfg, "strong", "CFG scale"},
		{p.prompt, "<lora:style:x>", "not a number"},
	} {
		old := tt.field.Text
		tt.field.SetText(tt.value)
		test.Tap(p.run)
		if !strings.Contains(p.status.Text, tt.msg) || p.run.Disabled() {
			t.Errorf("%s %q: status %q", tt.msg, tt.value, p.status.Text)
		}
		tt.field.SetText(old)
	}

	p.prompt.SetText("<lora:missing:1>")
	test.Tap(p.run)
	h.pump("the error", func() bool { return !p.run.Disabled() })
	if !strings.Contains(p.status.Text, `lora "missing"`) {
		t.Errorf("unknown LoRA: status %q", p.status.Text)
	}
	if p.loaded != first {
		t.Error("the model was loaded again for the same choice")
	}

	p.prompt.SetText("a cat")
	p.steps.SetText("200")
	test.Tap(p.run)
	test.Tap(p.cancel)
	h.pump("the cancel", func() bool { return !p.run.Disabled() })
	if !strings.Contains(p.status.Text, "Cancelled") {
		t.Errorf("after cancel: status %q", p.status.Text)
	}
}
