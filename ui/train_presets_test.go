package ui

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2/widget"

	"lorastudio/trainer"
)

// TestTrainPresetRoundTrip saves the form as a TOML job, changes the
// form, loads the job back, and reads the same file with the trainer's
// loader (the one `lorastudio train --config` uses).
func TestTrainPresetRoundTrip(t *testing.T) {
	_, p := openTrain(t, 2)
	p.model.path.SetText(trainer.DemoModel)
	setEntry(t, p, "network_dim", "16")
	setEntry(t, p, "learning_rate", "5e-5")
	setEntry(t, p, "lr_warmup_steps", "25")
	p.form.byKey["shuffle_caption"].input.(*widget.Check).SetChecked(true)
	p.form.byKey["network_args"].input.(*widget.Select).SetSelectedIndex(1)
	p.form.prompts.SetText("a toy on a table --s 12")

	path := filepath.Join(t.TempDir(), "job.toml")
	if err := p.savePreset(path); err != nil {
		t.Fatal(err)
	}
	cfg, warnings, err := trainer.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("the saved job has warnings: %v", warnings)
	}
	if cfg.NetworkDim != 16 || cfg.LearningRate != 5e-5 || cfg.LRWarmup.Steps != 25 || !cfg.ShuffleCaption || cfg.Targets != "attention" || cfg.PretrainedModel != trainer.DemoModel {
		t.Errorf("saved job: %+v", cfg)
	}
	if got := readPrompts(cfg.SamplePrompts); got != "a toy on a table --s 12" {
		t.Errorf("saved prompts %q (file %s)", got, cfg.SamplePrompts)
	}

	setEntry(t, p, "network_dim", "4")
	p.form.prompts.SetText("")
	warnings, err = p.loadPreset(path)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("load: %v %v", err, warnings)
	}
	if got := p.form.byKey["network_dim"].input.(*widget.Entry).Text; got != "16" {
		t.Errorf("rank after load %q, want 16", got)
	}
	if p.st.cfg.NetworkDim != 16 || p.st.cfg.Targets != "attention" || p.form.prompts.Text != "a toy on a table --s 12" {
		t.Errorf("after load: rank %d, targets %s, prompts %q", p.st.cfg.NetworkDim, p.st.cfg.Targets, p.form.prompts.Text)
	}
	if p.st.cfg.TrainDataDir != p.st.dataDir {
		t.Errorf("a loaded job moved the training data to %s", p.st.cfg.TrainDataDir)
	}
}

// TestTrainSettingsPersist checks a new Train screen (the next launch)
// starts with the settings the last one had.
func TestTrainSettingsPersist(t *testing.T) {
	h, p := openTrain(t, 2)
	setEntry(t, p, "network_dim", "32")
	setEntry(t, p, "noise_offset", "0.05")
	p.saveSettings()

	next := newTrainPanel(h.s, filepath.Dir(h.s.state.settingsPath))
	if next.st.cfg.NetworkDim != 32 || next.st.cfg.NoiseOffset != 0.05 {
		t.Errorf("next launch: rank %d, noise offset %v", next.st.cfg.NetworkDim, next.st.cfg.NoiseOffset)
	}
	if got := next.form.byKey["noise_offset"].input.(*widget.Entry).Text; got != "0.05" {
		t.Errorf("noise offset field %q", got)
	}
}

// TestTrainImportKohya imports a kohya_ss GUI configuration: the settings
// it shares land in the form, the others are listed as ignored.
func TestTrainImportKohya(t *testing.T) {
	_, p := openTrain(t, 2)
	path := filepath.Join(t.TempDir(), "kohya.json")
	json := `{"LoRA_type": "Standard", "network_dim": 32, "network_alpha": 16, "learning_rate": "0.0002",
		"lr_scheduler": "constant_with_warmup", "lr_warmup": 5, "max_resolution": "768,768", "train_batch_size": 2,
		"epoch": 3, "clip_skip": 2, "flip_aug": true, "optimizer": "Prodigy", "output_name": "mychar",
		"sample_prompts": "masterpiece, mychar --w 512 --h 512"}`
	if err := os.WriteFile(path, []byte(json), 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := p.importKohya(path)
	if err != nil {
		t.Fatal(err)
	}
	c := p.st.cfg
	if c.NetworkDim != 32 || c.NetworkAlpha != 16 || c.LearningRate != 2e-4 || c.LRScheduler != "constant_with_warmup" ||
		c.Resolution != "768,768" || c.TrainBatchSize != 2 || c.MaxTrainEpochs != 3 || c.ClipSkip != 2 || c.OutputName != "mychar" {
		t.Errorf("imported settings: %+v", c)
	}
	if got := p.form.byKey["resolution"].input.(*widget.Entry).Text; got != "768,768" {
		t.Errorf("resolution field %q", got)
	}
	if p.form.prompts.Text != "masterpiece, mychar --w 512 --h 512" {
		t.Errorf("prompts %q", p.form.prompts.Text)
	}
	for _, key := range []string{"flip_aug", "optimizer"} {
		if !slices.ContainsFunc(im.Ignored, func(s string) bool { return strings.HasPrefix(s, key+" ") }) {
			t.Errorf("%s is not reported as ignored: %v", key, im.Ignored)
		}
	}
}

func TestParseWarmup(t *testing.T) {
	tests := []struct {
		in   string
		want trainer.Warmup
		bad  bool
	}{
		{"", trainer.Warmup{}, false},
		{"100", trainer.Warmup{Steps: 100}, false},
		{"10%", trainer.Warmup{Ratio: 0.1}, false},
		{" 5 % ", trainer.Warmup{Ratio: 0.05}, false},
		{"0.1", trainer.Warmup{Ratio: 0.1}, false},
		{"-3", trainer.Warmup{}, true},
		{"100%", trainer.Warmup{}, true},
		{"1.5", trainer.Warmup{}, true},
		{"ten", trainer.Warmup{}, true},
	}
	for _, tt := range tests {
		got, err := parseWarmup(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("parseWarmup(%q) = %+v, %v", tt.in, got, err)
		}
		if !tt.bad {
			if back, _ := parseWarmup(formatWarmup(got)); back != got {
				t.Errorf("formatWarmup(%+v) = %q reads back as %+v", got, formatWarmup(got), back)
			}
		}
	}
}
