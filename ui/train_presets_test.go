package ui

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	if got, err := readPrompts(cfg.SamplePrompts); got != "a toy on a table --s 12" || err != nil {
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

// TestTrainPresetPrompts loads settings whose sample prompts are in each
// of sd-scripts' formats, from a job file and from a kohya_ss
// configuration: the form gets text lines, a file that cannot be read is
// reported (in the load's notes and under the preset buttons) and leaves
// the prompts empty, and a missing one named by a job is no problem.
func TestTrainPresetPrompts(t *testing.T) {
	_, p := openTrain(t, 2)
	for _, tt := range []struct {
		name, file, content string
		want                string
		problem             string
	}{
		{"text", "p.txt", "a toy --w 256\n# comment\n", "a toy --w 256\n# comment", ""},
		{"TOML", "p.toml", "[prompt]\nwidth = 256\n[[prompt.subset]]\nprompt = \"a toy\"\nsample_steps = 12\n[[prompt.subset]]\nprompt = \"a cat\"\nnegative_prompt = \"blurry\"\nseed = 3\n",
			"a toy --w 256 --h 512 --s 12 --l 7.5\na cat --n blurry --w 256 --h 512 --s 30 --l 7.5 --d 3", ""},
		{"JSON", "p.json", `[{"prompt": "a toy", "width": 320, "scale": 5.5}]`, "a toy --w 320 --h 512 --s 30 --l 5.5", ""},
		{"broken TOML", "p.toml", "[prompt]\nwidth = 512\n", "", "p.toml: no [[prompt.subset]] tables"},
		{"broken JSON", "p.json", `{"prompt": `, "", "p.json"},
		{"missing", "p.txt", "", "", ""},
	} {
		for _, from := range []string{"job", "kohya_ss"} {
			if tt.name == "missing" && from == "kohya_ss" {
				// kohya_ss's sample_prompts holds prompt text unless it
				// names a file.
				continue
			}
			t.Run(tt.name+" from "+from, func(t *testing.T) {
				dir := t.TempDir()
				prompts := filepath.Join(dir, tt.file)
				if tt.content != "" {
					writeFile(t, prompts, tt.content)
				}
				p.form.prompts.SetText("old prompts")
				var notes []string
				if from == "job" {
					cfg := trainer.Defaults()
					cfg.SamplePrompts = prompts
					job := filepath.Join(dir, "job.toml")
					if err := cfg.WriteFile(job); err != nil {
						t.Fatal(err)
					}
					var err error
					if notes, err = p.loadPreset(job); err != nil {
						t.Fatal(err)
					}
				} else {
					path := filepath.Join(dir, "kohya.json")
					b, _ := json.Marshal(map[string]string{"sample_prompts": prompts})
					writeFile(t, path, string(b))
					im, err := p.importKohya(path)
					if err != nil {
						t.Fatal(err)
					}
					notes = im.Notes
				}
				if p.form.prompts.Text != tt.want {
					t.Errorf("prompts %q, want %q", p.form.prompts.Text, tt.want)
				}
				reported := slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, "sample prompts") })
				if tt.problem == "" {
					if p.notice.Visible() || (from == "job" && len(notes) > 0) || reported {
						t.Errorf("a problem was reported: notice %q, notes %q", p.notice.Text, notes)
					}
					return
				}
				if !reported || !slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, tt.problem) }) {
					t.Errorf("notes %q do not say %q", notes, tt.problem)
				}
				if !p.notice.Visible() || !strings.Contains(p.notice.Text, tt.problem) {
					t.Errorf("notice %q (shown %v) does not say %q", p.notice.Text, p.notice.Visible(), tt.problem)
				}
			})
		}
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

// TestTrainSettingsBroken checks a train.toml that cannot be read: the
// screen starts from the defaults, says what happened under the preset
// buttons, and sets the file aside rather than letting the next save
// overwrite it. A prompts file that cannot be read is reported, and the
// settings that name it stay where they are.
func TestTrainSettingsBroken(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		// prompts, when set, is written to a broken prompts file the
		// settings name.
		prompts string
		problem string
		broken  bool
	}{
		{"not TOML", "network_dim = \n", "", "train.toml.broken", true},
		{"wrong type", "network_dim = \"many\"\n", "", "train.toml.broken", true},
		{"prompts not readable", "network_dim = 16\n", "[prompt]\n", "no [[prompt.subset]] tables", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := openTrain(t, 2)
			dir := filepath.Dir(h.s.state.settingsPath)
			path := filepath.Join(dir, "train.toml")
			file := tt.file
			if tt.prompts != "" {
				prompts := filepath.Join(t.TempDir(), "prompts.toml")
				writeFile(t, prompts, tt.prompts)
				file += "sample_prompts = " + strconv.Quote(prompts) + "\n"
			}
			writeFile(t, path, file)

			next := newTrainPanel(h.s, dir)
			if !next.notice.Visible() || !strings.Contains(next.notice.Text, tt.problem) || next.notice.Importance != widget.WarningImportance {
				t.Errorf("notice %q (shown %v), want it to say %q", next.notice.Text, next.notice.Visible(), tt.problem)
			}
			if next.form.prompts.Text != "" {
				t.Errorf("prompts %q", next.form.prompts.Text)
			}
			kept, err := os.ReadFile(path + ".broken")
			if !tt.broken {
				if next.st.cfg.NetworkDim != 16 || err == nil {
					t.Errorf("rank %d, set aside: %v", next.st.cfg.NetworkDim, err == nil)
				}
				return
			}
			if string(kept) != file || err != nil {
				t.Errorf("set-aside file %q (%v), want the original", kept, err)
			}
			if want := trainer.Defaults().NetworkDim; next.st.cfg.NetworkDim != want {
				t.Errorf("rank %d, want the default %d", next.st.cfg.NetworkDim, want)
			}
			setEntry(t, next, "network_dim", "24")
			next.saveSettings()
			if kept, _ := os.ReadFile(path + ".broken"); string(kept) != file {
				t.Error("the next save replaced the set-aside file")
			}
			if third := newTrainPanel(h.s, dir); third.st.cfg.NetworkDim != 24 || third.notice.Visible() {
				t.Errorf("after a save: rank %d, notice %q", third.st.cfg.NetworkDim, third.notice.Text)
			}
		})
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
