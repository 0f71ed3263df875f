package trainer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"lorastudio/atomicfile"
	"lorastudio/sd"
)

// The export hands a job to kohya's sd-scripts, for a GPU machine or a
// cluster: dataset_config.toml (sd-scripts' [general] / [[datasets]] /
// [[datasets.subsets]] schema, library/config_util.py) and the
// `accelerate launch train_network.py ...` command for the same settings.

type kohyaDatasetConfig struct {
	General  kohyaGeneral   `toml:"general"`
	Datasets []kohyaDataset `toml:"datasets"`
}

type kohyaGeneral struct {
	CaptionExtension   string  `toml:"caption_extension"`
	ShuffleCaption     bool    `toml:"shuffle_caption"`
	KeepTokens         int     `toml:"keep_tokens"`
	CaptionDropoutRate float64 `toml:"caption_dropout_rate"`
	CaptionPrefix      string  `toml:"caption_prefix,omitempty"`
	CaptionSuffix      string  `toml:"caption_suffix,omitempty"`
}

type kohyaDataset struct {
	Resolution      [2]int        `toml:"resolution"`
	BatchSize       int           `toml:"batch_size"`
	EnableBucket    bool          `toml:"enable_bucket"`
	MinBucketReso   int           `toml:"min_bucket_reso,omitempty"`
	MaxBucketReso   int           `toml:"max_bucket_reso,omitempty"`
	BucketResoSteps int           `toml:"bucket_reso_steps,omitempty"`
	BucketNoUpscale bool          `toml:"bucket_no_upscale"`
	Subsets         []kohyaSubset `toml:"subsets"`
}

type kohyaSubset struct {
	ImageDir    string `toml:"image_dir"`
	NumRepeats  int    `toml:"num_repeats"`
	ClassTokens string `toml:"class_tokens,omitempty"`
}

// Export is what ExportKohya wrote.
type Export struct {
	DatasetConfig string   // path of dataset_config.toml
	Script        string   // path of train_network.sh
	Command       string   // the command line, as in the script
	Warnings      []string // settings that do not carry over exactly
}

// ExportKohya writes dir/dataset_config.toml and dir/train_network.sh (the
// accelerate command, to run from an sd-scripts checkout) for c. plan, when
// not nil, gives the run's length so warmup is written as steps; otherwise
// a warmup ratio is written as a ratio, which sd-scripts since 2024 reads.
// Paths in both files are absolute. c should be valid.
func ExportKohya(c *Config, dir string, plan *Plan) (*Export, error) {
	if c.PretrainedModel == "" || c.PretrainedModel == DemoModel {
		return nil, fmt.Errorf("export: choose a real base model; the demo model exists only in LoRA Studio")
	}
	subsets, err := ScanSubsets(c.TrainDataDir)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	w, h, err := c.ResolutionWH()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	ex := &Export{
		DatasetConfig: filepath.Join(absDir, "dataset_config.toml"),
		Script:        filepath.Join(absDir, "train_network.sh"),
	}

	ds := kohyaDataset{
		Resolution:      [2]int{w, h},
		BatchSize:       c.TrainBatchSize,
		EnableBucket:    c.EnableBucket,
		BucketNoUpscale: c.BucketNoUpscale,
	}
	if c.EnableBucket {
		ds.MinBucketReso, ds.MaxBucketReso, ds.BucketResoSteps = c.MinBucketReso, c.MaxBucketReso, c.BucketResoSteps
	}
	for _, s := range subsets {
		if s.Repeats < 1 || s.Images == 0 {
			ex.Warnings = append(ex.Warnings, fmt.Sprintf("%s: %d images with %d repeats; sd-scripts trains nothing from it", s.Dir, s.Images, s.Repeats))
		}
		ds.Subsets = append(ds.Subsets, kohyaSubset{ImageDir: s.Dir, NumRepeats: s.Repeats, ClassTokens: s.ClassTokens})
	}
	dcfg := kohyaDatasetConfig{
		General: kohyaGeneral{
			CaptionExtension:   c.CaptionExtension,
			ShuffleCaption:     c.ShuffleCaption,
			KeepTokens:         c.KeepTokens,
			CaptionDropoutRate: c.CaptionDropoutRate,
			CaptionPrefix:      c.CaptionPrefix,
			CaptionSuffix:      c.CaptionSuffix,
		},
		Datasets: []kohyaDataset{ds},
	}
	var b bytes.Buffer
	b.WriteString("# sd-scripts dataset config exported by LoRA Studio (train_network.py --dataset_config)\n")
	if err := toml.NewEncoder(&b).Encode(dcfg); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := atomicfile.WriteBytes(ex.DatasetConfig, b.Bytes()); err != nil {
		return nil, fmt.Errorf("export %s: %w", ex.DatasetConfig, err)
	}

	args, warnings, err := kohyaArgs(c, ex.DatasetConfig, plan)
	if err != nil {
		return nil, err
	}
	ex.Warnings = append(ex.Warnings, warnings...)
	ex.Command = "accelerate launch --num_cpu_threads_per_process=2 train_network.py"
	for _, a := range args {
		ex.Command += " \\\n  " + a
	}
	script := "#!/bin/sh\n" +
		"# The LoRA Studio job " + c.OutputName + " for kohya-ss/sd-scripts.\n" +
		"# Run it from an sd-scripts checkout with its environment active.\n"
	for _, w := range ex.Warnings {
		script += "# Note: " + w + "\n"
	}
	script += "exec " + ex.Command + "\n"
	if err := atomicfile.WriteBytes(ex.Script, []byte(script)); err != nil {
		return nil, fmt.Errorf("export %s: %w", ex.Script, err)
	}
	if err := os.Chmod(ex.Script, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return ex, nil
}

// kohyaArgs renders c as train_network.py arguments, shell-quoted.
func kohyaArgs(c *Config, datasetConfig string, plan *Plan) ([]string, []string, error) {
	var args, warnings []string
	flag := func(name string, v any) {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case int:
			s = strconv.Itoa(v)
		case int64:
			s = strconv.FormatInt(v, 10)
		case float64:
			s = pyFloat(v)
		}
		args = append(args, "--"+name+"="+shellQuote(s))
	}
	abs := func(key, p string) (string, error) {
		a, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("export: %s: %w", key, err)
		}
		return a, nil
	}
	model, err := abs("pretrained_model_name_or_path", c.PretrainedModel)
	if err != nil {
		return nil, nil, err
	}
	out, err := abs("output_dir", c.OutputDir)
	if err != nil {
		return nil, nil, err
	}
	flag("pretrained_model_name_or_path", model)
	flag("dataset_config", datasetConfig)
	flag("output_dir", out)
	flag("output_name", c.OutputName)
	flag("save_model_as", "safetensors")
	flag("network_module", "networks.lora")
	flag("network_dim", c.NetworkDim)
	flag("network_alpha", c.NetworkAlpha)
	if c.Targets != "" && c.Targets != sd.LoRAKohyaFull {
		warnings = append(warnings, fmt.Sprintf("targets %s: sd-scripts' networks.lora always adapts every Linear of the transformer blocks (kohya_full), so the exported job trains more layers", c.Targets))
	}
	if c.NetworkWeights != "" {
		w, err := abs("network_weights", c.NetworkWeights)
		if err != nil {
			return nil, nil, err
		}
		flag("network_weights", w)
	}
	flag("learning_rate", c.LearningRate)
	if c.UNetLR != nil {
		flag("unet_lr", *c.UNetLR)
	}
	if c.TrainsTextEncoder() {
		if c.TextEncoderLR != nil {
			flag("text_encoder_lr", *c.TextEncoderLR)
		}
	} else {
		args = append(args, "--network_train_unet_only")
	}
	flag("lr_scheduler", c.LRScheduler)
	switch {
	case c.LRWarmup.Ratio > 0 && plan != nil:
		flag("lr_warmup_steps", c.LRWarmup.StepsOf(plan.TotalSteps))
	case c.LRWarmup.Ratio > 0:
		flag("lr_warmup_steps", c.LRWarmup.Ratio)
	default:
		flag("lr_warmup_steps", c.LRWarmup.Steps)
	}
	if c.LRScheduler == "cosine_with_restarts" {
		flag("lr_scheduler_num_cycles", c.LRSchedulerCycles)
	}
	if c.LRScheduler == "polynomial" {
		flag("lr_scheduler_power", c.LRSchedulerPower)
	}
	if c.MaxTrainEpochs > 0 {
		flag("max_train_epochs", c.MaxTrainEpochs)
	} else {
		flag("max_train_steps", c.MaxTrainSteps)
	}
	flag("gradient_accumulation_steps", c.GradientAccumulationSteps)
	flag("optimizer_type", "AdamW")
	if len(c.OptimizerArgs) > 0 {
		a := "--optimizer_args"
		for _, o := range c.OptimizerArgs {
			a += " " + shellQuote(o)
		}
		args = append(args, a)
	}
	flag("max_grad_norm", c.MaxGradNorm)
	flag("save_every_n_epochs", c.SaveEveryNEpochs)
	prec := strings.ToLower(c.SavePrecision)
	if prec == "" {
		prec = "fp16"
	}
	flag("save_precision", prec)
	// On a GPU sd-scripts trains in fp16 mixed precision (kohya_ss's default).
	flag("mixed_precision", "fp16")
	args = append(args, "--cache_latents")
	flag("seed", c.Seed)
	flag("clip_skip", c.ClipSkip)
	if c.NoiseOffset > 0 {
		flag("noise_offset", c.NoiseOffset)
	}
	if c.MinSNRGamma > 0 {
		flag("min_snr_gamma", c.MinSNRGamma)
	}
	if c.SamplePrompts != "" {
		p, err := abs("sample_prompts", c.SamplePrompts)
		if err != nil {
			return nil, nil, err
		}
		flag("sample_prompts", p)
		if c.SampleEveryNEpochs > 0 {
			flag("sample_every_n_epochs", c.SampleEveryNEpochs)
		}
		if c.SampleEveryNSteps > 0 {
			flag("sample_every_n_steps", c.SampleEveryNSteps)
		}
		s, _ := ParseSampler(c.SampleSampler)
		flag("sample_sampler", s)
	}
	for _, m := range []struct{ name, v string }{
		{"training_comment", c.TrainingComment},
		{"metadata_title", c.MetadataTitle},
		{"metadata_author", c.MetadataAuthor},
		{"metadata_description", c.MetadataDescription},
		{"metadata_license", c.MetadataLicense},
		{"metadata_tags", c.MetadataTags},
	} {
		if m.v != "" {
			flag(m.name, m.v)
		}
	}
	return args, warnings, nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
