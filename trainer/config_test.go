package trainer

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"lorastudio/sd"
)

// testJob makes a model file and a kohya dataset folder and returns a valid
// Config using them.
func testJob(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	model := filepath.Join(dir, "model.safetensors")
	must(t, os.WriteFile(model, []byte("checkpoint"), 0o644))
	data := filepath.Join(dir, "img")
	for _, f := range []string{"10_sks dog/a.png", "10_sks dog/b.JPG", "10_sks dog/b.txt", "2_cat/c.webp", "notes/readme.md"} {
		p := filepath.Join(data, filepath.FromSlash(f))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte("x"), 0o644))
	}
	c := Defaults()
	c.PretrainedModel = model
	c.TrainDataDir = data
	c.OutputDir = filepath.Join(dir, "out")
	c.OutputName = "sks_dog"
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDefaultsAreKohyaGUI(t *testing.T) {
	c := Defaults()
	if c.NetworkDim != 8 || c.NetworkAlpha != 1 || c.LearningRate != 1e-4 || c.EffectiveUNetLR() != 1e-4 || c.EffectiveTextEncoderLR() != 1e-4 ||
		c.LRScheduler != "cosine" || c.LRWarmup.Ratio != 0.1 || c.Resolution != "512,512" || !c.EnableBucket ||
		c.MinBucketReso != 256 || c.MaxBucketReso != 2048 || c.BucketResoSteps != 64 || !c.BucketNoUpscale ||
		c.TrainBatchSize != 1 || c.MaxTrainEpochs != 1 || c.SavePrecision != "fp16" || c.MaxGradNorm != 1 ||
		c.OptimizerType != "AdamW" || c.CaptionExtension != ".txt" || c.ClipSkip != 1 || c.Targets != sd.LoRACrossAttention {
		t.Errorf("defaults %+v", c)
	}
	valid := testJob(t)
	if err := valid.Validate(); err != nil {
		t.Errorf("defaults with a model and data: %v", err)
	}
}

func TestConfigRoundTrip(t *testing.T) {
	c := testJob(t)
	te := 5e-5
	c.TextEncoderLR = &te
	c.NetworkTrainUNetOnly = false
	c.Targets = sd.LoRAKohyaFull
	c.LRWarmup = Warmup{Steps: 25}
	c.OptimizerArgs = []string{"weight_decay=0.1", "betas=0.9,0.99"}
	c.SamplePrompts = "prompts.txt"
	c.MetadataAuthor = "me"
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, warnings, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings reading our own file: %v", warnings)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v\n%s", back, c, data)
	}
	// Unset per-part rates stay unset (they follow learning_rate).
	c.UNetLR, c.TextEncoderLR, c.LearningRate = nil, nil, 3e-4
	data, _ = c.Encode()
	if back, _, err := ParseConfig(data); err != nil || back.UNetLR != nil || back.TextEncoderLR != nil || back.EffectiveUNetLR() != 3e-4 {
		t.Errorf("unset rates read back as %v %v, %v", back.UNetLR, back.TextEncoderLR, err)
	}
	for _, w := range []Warmup{{Ratio: 0.05}, {}} {
		c.LRWarmup = w
		data, _ := c.Encode()
		back, _, err := ParseConfig(data)
		if err != nil || back.LRWarmup != w {
			t.Errorf("warmup %+v read back as %+v, %v", w, back.LRWarmup, err)
		}
	}
	path := filepath.Join(t.TempDir(), "job.toml")
	must(t, c.WriteFile(path))
	if back, _, err := LoadConfig(path); err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("LoadConfig after WriteFile: %v", err)
	}
}

// A job file as kohya users write them for sd-scripts' --config_file:
// sections, GPU options, an 8-bit optimizer.
const kohyaJob = `
[model_arguments]
pretrained_model_name_or_path = "/models/v1-5-pruned-emaonly.safetensors"
v2 = false

[additional_network_arguments]
network_module = "networks.lora"
network_dim = 32
network_alpha = 16
network_args = ["conv_dim=4", "targets=attention"]
network_train_unet_only = false
text_encoder_lr = [5e-5]
unet_lr = 1e-4

[optimizer_arguments]
optimizer_type = "AdamW8bit"
learning_rate = 1e-4
lr_scheduler = "cosine_with_restarts"
lr_warmup_steps = 0.05
lr_scheduler_num_cycles = 3
max_grad_norm = 1.0

[dataset_arguments]
train_data_dir = "/data/img"
resolution = 768
caption_extension = ".caption"
shuffle_caption = true
keep_tokens = 1
enable_bucket = true

[training_arguments]
output_dir = "/out"
output_name = "style"
max_train_steps = 2000
train_batch_size = 2
mixed_precision = "fp16"
xformers = true
seed = 42
clip_skip = 2
noise_offset = 0.05
save_precision = "fp16"
cache_latents = true
some_future_option = 3
`

func TestParseKohyaJob(t *testing.T) {
	c, warnings, err := ParseConfig([]byte(kohyaJob))
	if err != nil {
		t.Fatal(err)
	}
	if c.PretrainedModel != "/models/v1-5-pruned-emaonly.safetensors" || c.NetworkDim != 32 || c.NetworkAlpha != 16 ||
		c.Targets != sd.LoRAAttention || c.NetworkTrainUNetOnly || *c.TextEncoderLR != 5e-5 || *c.UNetLR != 1e-4 ||
		c.OptimizerType != "AdamW" || c.LRScheduler != "cosine_with_restarts" || c.LRWarmup != (Warmup{Ratio: 0.05}) ||
		c.LRSchedulerCycles != 3 || c.Resolution != "768" || c.CaptionExtension != ".caption" || !c.ShuffleCaption ||
		c.KeepTokens != 1 || c.MaxTrainSteps != 2000 || c.MaxTrainEpochs != 0 || c.TrainBatchSize != 2 ||
		c.Seed != 42 || c.ClipSkip != 2 || c.NoiseOffset != 0.05 {
		t.Errorf("parsed %+v", c)
	}
	if w, h, _ := c.ResolutionWH(); w != 768 || h != 768 {
		t.Errorf("resolution %dx%d", w, h)
	}
	joined := strings.Join(warnings, "\n")
	for _, want := range []string{"conv_dim=4", "AdamW8bit", "mixed_precision", "xformers", "some_future_option"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no warning about %s in:\n%s", want, joined)
		}
	}
	for _, quiet := range []string{"network_module", "cache_latents", "v2 ="} {
		if strings.Contains(joined, quiet) {
			t.Errorf("warning about %s, which matches what LoRA Studio does:\n%s", quiet, joined)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct{ toml, key string }{
		{`network_dim = "eight"`, "network_dim"},
		{`network_dim = 8.5`, "network_dim"},
		{`learning_rate = true`, "learning_rate"},
		{`enable_bucket = "yes"`, "enable_bucket"},
		{`lr_warmup_steps = 1.5`, "lr_warmup_steps"},
		{`lr_warmup_steps = "10"`, "lr_warmup_steps"},
		{`network_args = "targets=conv"`, "network_args"},
		{`network_args = ["targets"]`, "network_args"},
		{`text_encoder_lr = [1e-4, 2e-4]`, "text_encoder_lr"},
		{`optimizer_args = [1, 2]`, "optimizer_args"},
		{`output_name = `, ""},
		{`resolution = [512, "x"]`, "resolution"},
	}
	for _, tt := range tests {
		_, _, err := ParseConfig([]byte(tt.toml))
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%q: error %v, want one naming %q", tt.toml, err, tt.key)
		}
	}
	if c, _, err := ParseConfig([]byte(`resolution = [512, 768]`)); err != nil || c.Resolution != "512,768" {
		t.Errorf("resolution array: %q, %v", c.Resolution, err)
	}
	if _, _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		key  string
	}{
		{"rank 0", func(c *Config) { c.NetworkDim = 0 }, "network_dim"},
		{"negative alpha", func(c *Config) { c.NetworkAlpha = -1 }, "network_alpha"},
		{"negative lr", func(c *Config) { c.LearningRate = -1e-4 }, "learning_rate"},
		{"negative unet lr", func(c *Config) { v := -1.0; c.UNetLR = &v }, "unet_lr"},
		{"zero unet lr", func(c *Config) { v := 0.0; c.UNetLR = &v }, "unet_lr"},
		{"huge lr", func(c *Config) { c.LearningRate = 3 }, "learning_rate"},
		{"te lr 0 with te on", func(c *Config) { v := 0.0; c.TextEncoderLR = &v; c.NetworkTrainUNetOnly = false }, "text_encoder_lr"},
		{"no model", func(c *Config) { c.PretrainedModel = "" }, "pretrained_model_name_or_path"},
		{"missing model", func(c *Config) { c.PretrainedModel = "/nonexistent/model.safetensors" }, "pretrained_model_name_or_path"},
		{"no dataset", func(c *Config) { c.TrainDataDir = "" }, "train_data_dir"},
		{"missing dataset", func(c *Config) { c.TrainDataDir = "/nonexistent/img" }, "train_data_dir"},
		{"empty dataset", func(c *Config) { c.TrainDataDir = t.TempDir() }, "train_data_dir"},
		{"no output", func(c *Config) { c.OutputDir = "" }, "output_dir"},
		{"bad output name", func(c *Config) { c.OutputName = "a/b" }, "output_name"},
		{"bad resolution", func(c *Config) { c.Resolution = "512x512" }, "resolution"},
		{"odd resolution", func(c *Config) { c.Resolution = "500,512" }, "resolution"},
		{"batch 0", func(c *Config) { c.TrainBatchSize = 0 }, "train_batch_size"},
		{"accum 0", func(c *Config) { c.GradientAccumulationSteps = 0 }, "gradient_accumulation_steps"},
		{"no length", func(c *Config) { c.MaxTrainEpochs, c.MaxTrainSteps = 0, 0 }, "max_train_epochs"},
		{"bad scheduler", func(c *Config) { c.LRScheduler = "adafactor" }, "lr_scheduler"},
		{"constant with warmup", func(c *Config) { c.LRScheduler = "constant" }, "lr_warmup_steps"},
		{"bad bucket step", func(c *Config) { c.BucketResoSteps = 32 }, "bucket_reso_steps"},
		{"bucket range", func(c *Config) { c.BucketNoUpscale = false; c.MinBucketReso = 1024; c.MaxBucketReso = 512 }, "min_bucket_reso"},
		{"clip skip", func(c *Config) { c.ClipSkip = 0 }, "clip_skip"},
		{"dropout", func(c *Config) { c.CaptionDropoutRate = 1.5 }, "caption_dropout_rate"},
		{"noise offset", func(c *Config) { c.NoiseOffset = -0.1 }, "noise_offset"},
		{"save precision", func(c *Config) { c.SavePrecision = "fp8" }, "save_precision"},
		{"optimizer", func(c *Config) { c.OptimizerType = "Prodigy" }, "optimizer_type"},
		{"optimizer args", func(c *Config) { c.OptimizerArgs = []string{"momentum=0.9"} }, "optimizer_args"},
		{"sampler", func(c *Config) { c.SampleSampler = "dpm++" }, "sample_sampler"},
		{"prompts", func(c *Config) { c.SamplePrompts = "/nonexistent/prompts.txt" }, "sample_prompts"},
		{"network weights", func(c *Config) { c.NetworkWeights = "/nonexistent/lora.safetensors" }, "network_weights"},
		{"targets", func(c *Config) { c.Targets = "conv" }, "network_args"},
	}
	for _, tt := range tests {
		c := testJob(t)
		tt.edit(&c)
		err := c.Validate()
		var ve ValidationErrors
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		ve, ok := err.(ValidationErrors)
		if !ok || ve.Field(tt.key) == "" {
			t.Errorf("%s: %v, want an error for %s", tt.name, err, tt.key)
		}
		if len(ve) != 1 {
			t.Errorf("%s: %d errors, want 1: %v", tt.name, len(ve), err)
		}
	}
	c := testJob(t)
	c.PretrainedModel = DemoModel
	if err := c.Validate(); err != nil {
		t.Errorf("demo model: %v", err)
	}
}

func TestScanSubsets(t *testing.T) {
	c := testJob(t)
	subsets, err := ScanSubsets(c.TrainDataDir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Subset{
		{Dir: filepath.Join(c.TrainDataDir, "10_sks dog"), Repeats: 10, ClassTokens: "sks dog", Images: 2},
		{Dir: filepath.Join(c.TrainDataDir, "2_cat"), Repeats: 2, ClassTokens: "cat", Images: 1},
	}
	if !reflect.DeepEqual(subsets, want) {
		t.Errorf("subsets %+v, want %+v (notes/ is not a kohya folder)", subsets, want)
	}
	plain := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(plain, "dogs"), 0o755))
	if _, err := ScanSubsets(plain); err == nil || !strings.Contains(err.Error(), "10_dogs") {
		t.Errorf("no kohya folders: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(kohyaJob)
	c := Defaults()
	data, _ := c.Encode()
	f.Add(string(data))
	f.Add("[a]\nb = [1, {c = 2}]\nlr_warmup_steps = -3\n")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, warnings, err := ParseConfig([]byte(s))
		if err != nil {
			return
		}
		_ = slices.Clone(warnings)
		_ = cfg.Validate()
	})
}
