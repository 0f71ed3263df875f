package trainer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"lorastudio/sd"
)

func TestExportKohya(t *testing.T) {
	c := testJob(t)
	c.ShuffleCaption = true
	c.KeepTokens = 1
	c.CaptionPrefix = "photo of "
	c.OptimizerArgs = []string{"weight_decay=0.1", "betas=0.9,0.99"}
	c.MinSNRGamma = 5
	c.OutputName = "it's mine"
	unet := 1e-4
	c.UNetLR = &unet
	dir := filepath.Join(t.TempDir(), "export")
	plan := &Plan{TotalSteps: 220}
	ex, err := ExportKohya(&c, dir, plan)
	if err != nil {
		t.Fatal(err)
	}

	var dc struct {
		General struct {
			CaptionExtension string  `toml:"caption_extension"`
			ShuffleCaption   bool    `toml:"shuffle_caption"`
			KeepTokens       int     `toml:"keep_tokens"`
			CaptionDropout   float64 `toml:"caption_dropout_rate"`
			CaptionPrefix    string  `toml:"caption_prefix"`
		} `toml:"general"`
		Datasets []struct {
			Resolution      []int `toml:"resolution"`
			BatchSize       int   `toml:"batch_size"`
			EnableBucket    bool  `toml:"enable_bucket"`
			MinBucketReso   int   `toml:"min_bucket_reso"`
			MaxBucketReso   int   `toml:"max_bucket_reso"`
			BucketResoSteps int   `toml:"bucket_reso_steps"`
			BucketNoUpscale bool  `toml:"bucket_no_upscale"`
			Subsets         []struct {
				ImageDir    string `toml:"image_dir"`
				NumRepeats  int    `toml:"num_repeats"`
				ClassTokens string `toml:"class_tokens"`
			} `toml:"subsets"`
		} `toml:"datasets"`
	}
	md, err := toml.DecodeFile(ex.DatasetConfig, &dc)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("keys outside the expected schema: %v", u)
	}
	if dc.General.CaptionExtension != ".txt" || !dc.General.ShuffleCaption || dc.General.KeepTokens != 1 || dc.General.CaptionPrefix != "photo of " {
		t.Errorf("general %+v", dc.General)
	}
	if len(dc.Datasets) != 1 {
		t.Fatalf("%d datasets", len(dc.Datasets))
	}
	d := dc.Datasets[0]
	if len(d.Resolution) != 2 || d.Resolution[0] != 512 || d.BatchSize != 1 || !d.EnableBucket || d.MinBucketReso != 256 ||
		d.MaxBucketReso != 2048 || d.BucketResoSteps != 64 || !d.BucketNoUpscale || len(d.Subsets) != 2 {
		t.Fatalf("dataset %+v", d)
	}
	if s := d.Subsets[0]; s.ImageDir != filepath.Join(c.TrainDataDir, "10_sks dog") || s.NumRepeats != 10 || s.ClassTokens != "sks dog" {
		t.Errorf("subset %+v", s)
	}

	script, err := os.ReadFile(ex.Script)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(ex.Script); st.Mode()&0o111 == 0 {
		t.Errorf("script mode %v, want executable", st.Mode())
	}
	for _, want := range []string{
		"accelerate launch --num_cpu_threads_per_process=2 train_network.py",
		"--pretrained_model_name_or_path=" + c.PretrainedModel,
		"--dataset_config=" + ex.DatasetConfig,
		"--output_name='it'\\''s mine'",
		"--network_module=networks.lora",
		"--network_dim=8",
		"--network_alpha=1.0",
		"--learning_rate=0.0001",
		"--unet_lr=0.0001",
		"--network_train_unet_only",
		"--lr_scheduler=cosine",
		"--lr_warmup_steps=22",
		"--max_train_epochs=1",
		"--optimizer_type=AdamW",
		"--optimizer_args weight_decay=0.1 betas=0.9,0.99",
		"--max_grad_norm=1.0",
		"--save_precision=fp16",
		"--min_snr_gamma=5.0",
		"--seed=0",
		"--save_model_as=safetensors",
	} {
		if !strings.Contains(string(script), want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if !strings.Contains(ex.Command, "--network_dim=8") || len(ex.Warnings) != 1 || !strings.Contains(ex.Warnings[0], "kohya_full") {
		t.Errorf("command %q warnings %v", ex.Command, ex.Warnings)
	}

	// Without a plan a warmup ratio stays a ratio; kohya_full needs no warning.
	c.Targets = sd.LoRAKohyaFull
	ex, err = ExportKohya(&c, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ex.Command, "--lr_warmup_steps=0.1") || len(ex.Warnings) != 0 {
		t.Errorf("command %q warnings %v", ex.Command, ex.Warnings)
	}

	c.PretrainedModel = DemoModel
	if _, err := ExportKohya(&c, dir, nil); err == nil {
		t.Error("demo model: no error")
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain/path-1.0":  "plain/path-1.0",
		"":                "''",
		"with space":      "'with space'",
		"it's":            `'it'\''s'`,
		"$HOME":           "'$HOME'",
		"betas=0.9,0.999": "betas=0.9,0.999",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
