package ui

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainModelPicker chooses a real checkpoint (the loader's fixture),
// a LoRA file (which the loader refuses) and a missing file.
func TestTrainModelPicker(t *testing.T) {
	h, p := openTrain(t, 2)
	ckpt, err := filepath.Abs("../sd/testdata/tiny_sd1_ldm.fp16.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	p.model.path.SetText(ckpt)
	h.pump("the checkpoint's description", func() bool { return strings.Contains(p.model.info.Text, "hash ") })
	for _, want := range []string{"✓ SD 1.x single-file checkpoint", "fp16", "MB"} {
		if !strings.Contains(p.model.info.Text, want) {
			t.Errorf("model info %q lacks %q", p.model.info.Text, want)
		}
	}

	lora, _ := filepath.Abs("../sd/testdata/lora_tiny_kohya.safetensors")
	p.model.path.SetText(lora)
	h.pump("the loader's error", func() bool { return strings.HasPrefix(p.model.info.Text, "✗") })
	if !strings.Contains(strings.ToLower(p.model.info.Text), "lora") {
		t.Errorf("the error does not say it is a LoRA: %q", p.model.info.Text)
	}
	h.pump("Start disabled by the plan", func() bool { return p.monitor.start.Disabled() && p.monitor.reason.Visible() })

	p.model.path.SetText(filepath.Join(t.TempDir(), "missing.safetensors"))
	if !p.model.problem.Visible() || !strings.Contains(p.model.problem.Text, "no such file") {
		t.Errorf("missing model: problem %q", p.model.problem.Text)
	}
	if !p.monitor.start.Disabled() || !strings.Contains(p.monitor.reason.Text, "Base model") {
		t.Errorf("missing model: reason %q", p.monitor.reason.Text)
	}
}
