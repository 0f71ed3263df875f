package trainer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A kohya_ss GUI LoRA configuration in the form its Save button writes
// (numbers sometimes as strings, "" for unset), SD 1.5, GPU settings.
const guiConfig = `{
  "LoRA_type": "Standard",
  "pretrained_model_name_or_path": "/models/sd15.safetensors",
  "train_data_dir": "/data/img",
  "reg_data_dir": "",
  "output_dir": "/data/model",
  "output_name": "my_style",
  "logging_dir": "/data/log",
  "max_resolution": "512,640",
  "learning_rate": "0.0002",
  "unet_lr": 0.0002,
  "text_encoder_lr": "5e-05",
  "lr_scheduler": "cosine_with_restarts",
  "lr_scheduler_num_cycles": "4",
  "lr_scheduler_power": "",
  "lr_warmup": 5,
  "train_batch_size": 2,
  "epoch": 6,
  "max_train_epochs": "",
  "max_train_steps": "",
  "save_every_n_epochs": 2,
  "mixed_precision": "fp16",
  "save_precision": "bf16",
  "seed": "1234",
  "cache_latents": true,
  "cache_latents_to_disk": false,
  "caption_extension": ".txt",
  "enable_bucket": true,
  "min_bucket_reso": 320,
  "max_bucket_reso": 1024,
  "bucket_reso_steps": 64.0,
  "bucket_no_upscale": false,
  "gradient_checkpointing": true,
  "gradient_accumulation_steps": 1.0,
  "network_dim": 32,
  "network_alpha": "16",
  "conv_dim": 1,
  "conv_alpha": 1,
  "clip_skip": "2",
  "shuffle_caption": true,
  "keep_tokens": "1",
  "caption_dropout_rate": 0.05,
  "caption_dropout_every_n_epochs": 0.0,
  "optimizer": "AdamW8bit",
  "optimizer_args": "weight_decay=0.05 betas=0.9,0.99",
  "max_grad_norm": 1,
  "noise_offset_type": "Original",
  "noise_offset": "0.05",
  "min_snr_gamma": 5,
  "flip_aug": true,
  "min_timestep": 100,
  "max_timestep": 1000,
  "xformers": "xformers",
  "max_token_length": "75",
  "sample_every_n_epochs": 1,
  "sample_every_n_steps": 0,
  "sample_sampler": "euler_a",
  "sample_prompts": "a photo of sks dog --w 512 --h 512",
  "v2": false,
  "sdxl": false,
  "num_cpu_threads_per_process": 2,
  "training_comment": "trigger: my_style",
  "additional_parameters": "--debiased_estimation_loss"
}`

func TestImportKohyaGUI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	must(t, os.WriteFile(path, []byte(guiConfig), 0o644))
	im, err := ImportKohyaGUI(path)
	if err != nil {
		t.Fatal(err)
	}
	c := im.Config
	if c.PretrainedModel != "/models/sd15.safetensors" || c.TrainDataDir != "/data/img" || c.OutputName != "my_style" ||
		c.Resolution != "512,640" || c.LearningRate != 2e-4 || *c.UNetLR != 2e-4 || *c.TextEncoderLR != 5e-5 ||
		c.NetworkTrainUNetOnly || c.LRScheduler != "cosine_with_restarts" || c.LRSchedulerCycles != 4 ||
		c.LRSchedulerPower != 1 || c.LRWarmup != (Warmup{Ratio: 0.05}) || c.TrainBatchSize != 2 ||
		c.MaxTrainEpochs != 6 || c.SaveEveryNEpochs != 2 || c.SavePrecision != "bf16" || c.Seed != 1234 ||
		c.MinBucketReso != 320 || c.MaxBucketReso != 1024 || c.BucketNoUpscale || c.NetworkDim != 32 ||
		c.NetworkAlpha != 16 || c.ClipSkip != 2 || !c.ShuffleCaption || c.KeepTokens != 1 ||
		c.CaptionDropoutRate != 0.05 || c.OptimizerType != "AdamW" || c.NoiseOffset != 0.05 || c.MinSNRGamma != 5 ||
		c.TrainingComment != "trigger: my_style" || strings.Join(c.OptimizerArgs, " ") != "weight_decay=0.05 betas=0.9,0.99" {
		t.Errorf("imported %+v", c)
	}
	if im.SamplePromptsText != "a photo of sks dog --w 512 --h 512" || c.SamplePrompts != "" {
		t.Errorf("sample prompts: text %q, file %q", im.SamplePromptsText, c.SamplePrompts)
	}
	ignored := strings.Join(im.Ignored, "\n")
	for _, want := range []string{"mixed_precision = fp16", "flip_aug = true", "min_timestep = 100", "additional_parameters"} {
		if !strings.Contains(ignored, want) {
			t.Errorf("ignored list lacks %q:\n%s", want, ignored)
		}
	}
	for _, quiet := range []string{"conv_dim", "max_timestep", "xformers", "logging_dir", "reg_data_dir", "max_token_length", "cache_latents", "v2"} {
		if strings.Contains(ignored, quiet) {
			t.Errorf("ignored list mentions %s, which changes nothing:\n%s", quiet, ignored)
		}
	}
	if notes := strings.Join(im.Notes, "\n"); !strings.Contains(notes, "AdamW8bit") || !strings.Contains(notes, "sample_prompts") {
		t.Errorf("notes %v", im.Notes)
	}
	if len(im.Mapped) < 30 {
		t.Errorf("only %d fields mapped: %v", len(im.Mapped), im.Mapped)
	}
}

func TestImportKohyaGUIRates(t *testing.T) {
	tests := []struct {
		json      string
		unetOnly  bool
		unet, te  string
		ignoredTE bool
	}{
		{`{"unet_lr": 1e-4, "text_encoder_lr": 0}`, true, "0.0001", "nil", false},
		{`{"unet_lr": "0.0001", "text_encoder_lr": ""}`, true, "0.0001", "nil", false},
		{`{"unet_lr": 0, "text_encoder_lr": 0, "learning_rate": 3e-4}`, false, "nil", "nil", false},
		{`{"unet_lr": 0, "text_encoder_lr": 1e-5}`, true, "nil", "nil", true},
		{`{"unet_lr": 1e-4, "text_encoder_lr": 1e-5}`, false, "0.0001", "1e-05", false},
	}
	for _, tt := range tests {
		im, err := ParseKohyaGUI([]byte(tt.json))
		if err != nil {
			t.Fatalf("%s: %v", tt.json, err)
		}
		c := im.Config
		show := func(p *float64) string {
			if p == nil {
				return "nil"
			}
			return pyFloat(*p)
		}
		if c.NetworkTrainUNetOnly != tt.unetOnly || show(c.UNetLR) != tt.unet || show(c.TextEncoderLR) != tt.te {
			t.Errorf("%s: unet only %v, unet %s, te %s", tt.json, c.NetworkTrainUNetOnly, show(c.UNetLR), show(c.TextEncoderLR))
		}
		if got := strings.Contains(strings.Join(im.Ignored, " "), "text_encoder_lr"); got != tt.ignoredTE {
			t.Errorf("%s: ignored %v", tt.json, im.Ignored)
		}
	}
}

func TestImportKohyaGUILength(t *testing.T) {
	tests := []struct {
		json          string
		epochs, steps int
	}{
		{`{"epoch": 10}`, 10, 1600},
		{`{"epoch": 10, "max_train_steps": "320"}`, 0, 320},
		{`{"epoch": 10, "max_train_steps": "320", "max_train_epochs": "4"}`, 4, 1600},
		{`{"lr_scheduler": "constant", "lr_warmup": 10}`, 1, 1600},
	}
	for _, tt := range tests {
		im, err := ParseKohyaGUI([]byte(tt.json))
		if err != nil {
			t.Fatal(err)
		}
		if im.Config.MaxTrainEpochs != tt.epochs || im.Config.MaxTrainSteps != tt.steps {
			t.Errorf("%s: epochs %d steps %d, want %d %d", tt.json, im.Config.MaxTrainEpochs, im.Config.MaxTrainSteps, tt.epochs, tt.steps)
		}
	}
	im, _ := ParseKohyaGUI([]byte(`{"lr_scheduler": "constant", "lr_warmup": 10}`))
	if im.Config.LRWarmup != (Warmup{}) || len(im.Notes) == 0 {
		t.Errorf("constant schedule keeps warmup %v, notes %v", im.Config.LRWarmup, im.Notes)
	}
}

func TestImportKohyaGUIErrors(t *testing.T) {
	for _, bad := range []string{`[1, 2]`, `not json`, `{"network_dim": "eight"}`, `{"network_dim": 8.5}`, `{"enable_bucket": "yes"}`, `{"lr_warmup": 150}`, `null`} {
		if _, err := ParseKohyaGUI([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := ImportKohyaGUI(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("missing file: no error")
	}
}

func FuzzParseKohyaGUI(f *testing.F) {
	f.Add(guiConfig)
	f.Add(`{"seed": "1e400", "epoch": -3, "optimizer_args": "betas="}`)
	f.Fuzz(func(t *testing.T, s string) {
		im, err := ParseKohyaGUI([]byte(s))
		if err == nil {
			_ = im.Config.Validate()
		}
	})
}
