package ui

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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

// TestGenerateSettingsPersist checks the next Generate screen (the next
// launch) shows the form the last one had: edits are saved once they
// settle, Generate saves before it checks the form, a half-typed number
// keeps its last good value, and a random seed stays -1.
func TestGenerateSettingsPersist(t *testing.T) {
	h := newHarness(t)
	p := newGeneratePanel(h.s)
	p.persist = newCoalescer(time.Millisecond, h.do, p.saveSettings)
	if _, err := os.Stat(p.settingsPath); !os.IsNotExist(err) {
		t.Fatalf("building the screen wrote %s (%v)", p.settingsPath, err)
	}
	loraDir := t.TempDir()
	p.model.SetText(trainer.DemoModel)
	p.prompt.SetText("a photo of a cat <lora:style:0.6>")
	p.negative.SetText("blurry")
	p.steps.SetText("12")
	p.cfg.SetText("6.5")
	p.sampler.SetSelected("ddim")
	p.seed.SetText("-1")
	p.width.SetText("320")
	p.height.SetText("256")
	p.loraDir.SetText(loraDir)
	h.pump("the settings file", func() bool {
		b, err := os.ReadFile(p.settingsPath)
		return err == nil && bytes.Contains(b, []byte(loraDir))
	})

	want := map[string]string{
		"model": trainer.DemoModel, "prompt": "a photo of a cat <lora:style:0.6>", "negative": "blurry",
		"steps": "12", "cfg": "6.5", "sampler": "ddim", "seed": "-1", "width": "320", "height": "256", "lora dir": loraDir,
	}
	next := newGeneratePanel(h.s)
	if got := generateFields(next); !maps.Equal(got, want) {
		t.Errorf("next launch:\n got %v\nwant %v", got, want)
	}
	if next.status.Text != "" {
		t.Errorf("status %q after a good file", next.status.Text)
	}

	next.steps.SetText("1x")
	next.prompt.SetText("a dog")
	next.cfg.SetText("strong")
	test.Tap(next.run)
	if !strings.Contains(next.status.Text, "Steps") || next.run.Disabled() {
		t.Fatalf("status %q", next.status.Text)
	}
	want["prompt"] = "a dog"
	third := newGeneratePanel(h.s)
	if got := generateFields(third); !maps.Equal(got, want) {
		t.Errorf("after Generate:\n got %v\nwant %v", got, want)
	}
}

// TestGenerateSettingsSavedOnClose edits the form and at once closes the
// window or opens another dataset, before the save after edits settle:
// the edit is on disk all the same.
func TestGenerateSettingsSavedOnClose(t *testing.T) {
	for _, tt := range []struct {
		name  string
		leave func(h *harness)
	}{
		{"close the window", func(h *harness) { h.s.closeWindow() }},
		{"open another dataset", func(h *harness) { h.s.Open(writeDataset(t)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			ws := h.open(writeDataset(t))
			ws.nav.SelectIndex(3)
			p := ws.generate
			if p == nil {
				t.Fatal("showing the Generate tab did not build the screen")
			}
			p.prompt.SetText("typed just before leaving")
			tt.leave(h)
			var g generateSettings
			if err := readJSON(p.settingsPath, &g); err != nil || g.Prompt != "typed just before leaving" {
				t.Errorf("saved prompt %q (%v)", g.Prompt, err)
			}
		})
	}
}

// generateFields is what the Generate form shows.
func generateFields(p *generatePanel) map[string]string {
	return map[string]string{
		"model": p.model.Text, "prompt": p.prompt.Text, "negative": p.negative.Text,
		"steps": p.steps.Text, "cfg": p.cfg.Text, "sampler": p.sampler.Selected, "seed": p.seed.Text,
		"width": p.width.Text, "height": p.height.Text, "lora dir": p.loraDir.Text,
	}
}

// TestGenerateSettingsBroken checks a broken or old settings file: the
// screen builds, each unusable value falls back to its default and the
// rest is kept, the status says what happened, and the file is set aside
// rather than overwritten by the next save.
func TestGenerateSettingsBroken(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		// changed are the fields that differ from the defaults.
		changed map[string]string
		broken  bool
	}{
		{"not JSON", "{\"prompt\": \"a cat\", ", nil, true},
		{"empty", "", nil, true},
		{"array", "[1, 2]", nil, true},
		{"wrong types and ranges", `{"prompt": "kept", "steps": "many", "width": 0, "height": 256, "sampler": "plms", "seed": 7, "cfg_scale": "high"}`,
			map[string]string{"prompt": "kept", "height": "256", "seed": "7"}, true},
		{"older version", `{"prompt": "old", "hires_fix": true}`, map[string]string{"prompt": "old"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			dir := filepath.Dir(h.s.state.settingsPath)
			path := filepath.Join(dir, "generate.json")
			writeFile(t, path, tt.file)

			p := newGeneratePanel(h.s)
			def := defaultGenerateSettings(dir)
			want := map[string]string{
				"model": def.Model, "prompt": "", "negative": "", "steps": "20", "cfg": "7", "sampler": "euler_a",
				"seed": "-1", "width": "512", "height": "512", "lora dir": def.LoRADir,
			}
			maps.Copy(want, tt.changed)
			if got := generateFields(p); !maps.Equal(got, want) {
				t.Errorf("form:\n got %v\nwant %v", got, want)
			}
			kept, err := os.ReadFile(path + ".broken")
			if !tt.broken {
				if p.status.Text != "" || err == nil {
					t.Errorf("a good file was reported (%q) or set aside (%v)", p.status.Text, err)
				}
				return
			}
			if string(kept) != tt.file || err != nil {
				t.Errorf("set-aside file %q (%v), want the original", kept, err)
			}
			if !strings.Contains(p.status.Text, "generate.json.broken") || p.status.Importance != widget.WarningImportance {
				t.Errorf("status %q", p.status.Text)
			}
			p.prompt.SetText("new")
			p.saveSettings()
			if kept, _ := os.ReadFile(path + ".broken"); string(kept) != tt.file {
				t.Error("the next save replaced the set-aside file")
			}
			if next := newGeneratePanel(h.s); next.prompt.Text != "new" || next.status.Text != "" {
				t.Errorf("after a save: prompt %q, status %q", next.prompt.Text, next.status.Text)
			}
		})
	}
}

// FuzzGenerateSettings checks any file gives a usable form.
func FuzzGenerateSettings(f *testing.F) {
	f.Add([]byte(`{"prompt": "a cat", "steps": 30, "cfg_scale": 5.5, "sampler": "ddim", "seed": -1, "width": 64, "height": 64}`))
	f.Add([]byte(`{"steps": -3, "width": "x", "sampler": null}`))
	f.Add([]byte(`nul`))
	def := generateSettings{Steps: 20, CFGScale: 7, Sampler: "euler_a", Seed: -1, Width: 512, Height: 512}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "generate.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		g, _ := loadGenerateSettings(path, def)
		if g.Steps < minSteps || g.Width < minSide || g.Height < minSide || !slices.Contains(trainer.Samplers, g.Sampler) {
			t.Errorf("unusable form %+v", g)
		}
	})
}
