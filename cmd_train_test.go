package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lorastudio/dataset"
)

// TestRunTrain covers the train command's modes and exit codes: a short demo
// run, a job file with a warning, an invalid job, the kohya export, and
// usage errors.
func TestRunTrain(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	demoDir := filepath.Join(dir, "demo")
	job := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	data, err := dataset.ExtractDemo(filepath.Join(demoDir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	few := filepath.Join(dir, "few")
	if err := os.MkdirAll(filepath.Join(few, "1_cat"), 0o755); err != nil {
		t.Fatal(err)
	}
	cats, _ := filepath.Glob(filepath.Join(data, "10_cat", "*.jpg"))
	for _, c := range cats[:2] {
		img, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		job(filepath.Join("few", "1_cat", filepath.Base(c)), string(img))
	}
	good := job("good.toml", `pretrained_model_name_or_path = "demo"
train_data_dir = "`+few+`"
output_dir = "`+filepath.Join(dir, "out")+`"
output_name = "cats"
resolution = "64"
enable_bucket = false
max_train_steps = 2
xformers = true
`)
	bad := job("bad.toml", `pretrained_model_name_or_path = "demo"
train_data_dir = "`+data+`"
output_dir = "`+filepath.Join(dir, "out")+`"
network_dim = 0
`)
	model, err := filepath.Abs(filepath.Join("sd", "testdata", "tiny_sd1_ldm.fp16.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	export := job("export.toml", `pretrained_model_name_or_path = "`+model+`"
train_data_dir = "`+data+`"
output_dir = "`+filepath.Join(dir, "out")+`"
resolution = "256"
`)
	tests := []struct {
		name string
		args []string
		code int
		file string // a file the command must have written
	}{
		{"demo", []string{"-demo", "-demo-dir", demoDir, "-demo-steps", "2"}, 0, filepath.Join(demoDir, "demo_lora.safetensors")},
		{"job with an unsupported key", []string{"-config", good}, 0, filepath.Join(dir, "out", "cats.safetensors")},
		{"invalid job", []string{"-config", bad}, 1, ""},
		{"export", []string{"-config", export, "-export-kohya", filepath.Join(dir, "kohya")}, 0, filepath.Join(dir, "kohya", "dataset_config.toml")},
		{"missing state", []string{"-resume", filepath.Join(dir, "nope.lorastate")}, 1, ""},
		{"no mode", nil, 2, ""},
		{"two modes", []string{"-demo", "-config", good}, 2, ""},
		{"export without a job", []string{"-demo", "-export-kohya", dir}, 2, ""},
	}
	stdout, stderr := os.Stdout, os.Stderr
	defer func() { os.Stdout, os.Stderr = stdout, stderr }()
	for _, tt := range tests {
		out, err := os.Create(filepath.Join(t.TempDir(), "out.txt"))
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout, os.Stderr = out, out
		code := runTrain(tt.args)
		os.Stdout, os.Stderr = stdout, stderr
		out.Close()
		log, _ := os.ReadFile(out.Name())
		if code != tt.code {
			t.Errorf("%s: exit %d, want %d\n%s", tt.name, code, tt.code, log)
		}
		if tt.file != "" {
			if _, err := os.Stat(tt.file); err != nil {
				t.Errorf("%s: %v\n%s", tt.name, err, log)
			}
		}
		if tt.name == "job with an unsupported key" && !strings.Contains(string(log), "warning: xformers") {
			t.Errorf("no warning about xformers:\n%s", log)
		}
		if tt.name == "invalid job" && !strings.Contains(string(log), "network_dim") {
			t.Errorf("the error does not name network_dim:\n%s", log)
		}
	}
}
