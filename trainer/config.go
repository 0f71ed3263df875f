// Package trainer trains LoRA adapters for Stable Diffusion 1.x: the job
// configuration (a TOML file with kohya sd-scripts' option names), the plan
// of a run (kohya's epoch and step arithmetic), learning-rate schedules, the
// AdamW optimizer with gradient clipping, the ss_* metadata kohya writes into
// a LoRA file, and the export of a job to sd-scripts.
package trainer

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"lorastudio/atomicfile"
	"lorastudio/sd"
)

// Config is a training job. The TOML keys are sd-scripts' argument names
// (train_network.py), so a kohya job file reads unchanged; Defaults are the
// kohya_ss GUI's LoRA defaults except where they make no sense on a CPU
// (AdamW instead of AdamW8bit, no fp16 mixed precision) and where noted.
type Config struct {
	// PretrainedModel is a single-file checkpoint, a diffusers folder, or
	// DemoModel.
	PretrainedModel string `toml:"pretrained_model_name_or_path"`
	// TrainDataDir holds `<repeats>_<name>` folders of images and captions.
	TrainDataDir string `toml:"train_data_dir"`
	OutputDir    string `toml:"output_dir"`
	OutputName   string `toml:"output_name"`
	// NetworkWeights is a LoRA file to continue training from.
	NetworkWeights string `toml:"network_weights,omitempty"`

	NetworkDim   int     `toml:"network_dim"`
	NetworkAlpha float64 `toml:"network_alpha"`
	// Targets picks the adapted UNet layers; in TOML it is the
	// "targets=<name>" entry of network_args.
	Targets sd.LoRATargets `toml:"-"`
	// NetworkTrainUNetOnly leaves the text encoder without adapters. It
	// defaults to true here (sd-scripts: false): text-encoder LoRA forbids
	// caching the text embeddings and costs a CLIP backward pass per step.
	NetworkTrainUNetOnly bool `toml:"network_train_unet_only"`

	LearningRate float64 `toml:"learning_rate"`
	// UNetLR and TextEncoderLR override LearningRate for their adapters;
	// nil means LearningRate, as in sd-scripts.
	UNetLR        *float64 `toml:"unet_lr,omitempty"`
	TextEncoderLR *float64 `toml:"text_encoder_lr,omitempty"`
	LRScheduler   string   `toml:"lr_scheduler"`
	// LRWarmup is lr_warmup_steps: a step count, or a ratio of the total
	// steps when written as a fraction (0.1), as sd-scripts reads it.
	LRWarmup          Warmup  `toml:"lr_warmup_steps"`
	LRSchedulerCycles int     `toml:"lr_scheduler_num_cycles"`
	LRSchedulerPower  float64 `toml:"lr_scheduler_power"`

	// MaxTrainEpochs, when above 0, sets the length of the run and
	// overrides MaxTrainSteps, as in sd-scripts.
	MaxTrainEpochs int `toml:"max_train_epochs"`
	MaxTrainSteps  int `toml:"max_train_steps"`

	// Resolution is "width,height" or "size".
	Resolution                string `toml:"resolution"`
	TrainBatchSize            int    `toml:"train_batch_size"`
	GradientAccumulationSteps int    `toml:"gradient_accumulation_steps"`
	EnableBucket              bool   `toml:"enable_bucket"`
	MinBucketReso             int    `toml:"min_bucket_reso"`
	MaxBucketReso             int    `toml:"max_bucket_reso"`
	BucketResoSteps           int    `toml:"bucket_reso_steps"`
	BucketNoUpscale           bool   `toml:"bucket_no_upscale"`

	CaptionExtension   string  `toml:"caption_extension"`
	ShuffleCaption     bool    `toml:"shuffle_caption"`
	KeepTokens         int     `toml:"keep_tokens"`
	CaptionDropoutRate float64 `toml:"caption_dropout_rate"`
	CaptionPrefix      string  `toml:"caption_prefix,omitempty"`
	CaptionSuffix      string  `toml:"caption_suffix,omitempty"`
	ClipSkip           int     `toml:"clip_skip"`

	NoiseOffset float64 `toml:"noise_offset"`
	MinSNRGamma float64 `toml:"min_snr_gamma"`
	// Seed makes a run reproducible; every run has one (0 is a seed).
	Seed int64 `toml:"seed"`

	SaveEveryNEpochs int `toml:"save_every_n_epochs"`
	// SavePrecision is "fp16" (default), "float" or "bf16".
	SavePrecision string `toml:"save_precision"`

	// SamplePrompts is a prompts file in one of sd-scripts' formats: text
	// (one prompt per line, kohya's --w --h --s --l --d --n --ss flags),
	// .toml ([prompt] with [[prompt.subset]] tables) or .json (a list).
	SamplePrompts      string `toml:"sample_prompts,omitempty"`
	SampleEveryNEpochs int    `toml:"sample_every_n_epochs"`
	SampleEveryNSteps  int    `toml:"sample_every_n_steps"`
	SampleSampler      string `toml:"sample_sampler"`

	OptimizerType string `toml:"optimizer_type"`
	// OptimizerArgs are "key=value" entries: weight_decay, betas, eps.
	OptimizerArgs []string `toml:"optimizer_args"`
	MaxGradNorm   float64  `toml:"max_grad_norm"`

	TrainingComment     string `toml:"training_comment,omitempty"`
	MetadataTitle       string `toml:"metadata_title,omitempty"`
	MetadataAuthor      string `toml:"metadata_author,omitempty"`
	MetadataDescription string `toml:"metadata_description,omitempty"`
	MetadataLicense     string `toml:"metadata_license,omitempty"`
	MetadataTags        string `toml:"metadata_tags,omitempty"`
}

// DemoModel as PretrainedModel asks for the built-in tiny demo model.
const DemoModel = "demo"

// Defaults returns the kohya_ss GUI LoRA defaults: rank 8, alpha 1,
// learning rate 1e-4 for UNet and text encoder (UNetLR and TextEncoderLR
// unset, so they follow LearningRate), cosine schedule with 10% warmup, 1 epoch, 512x512,
// buckets 256..2048 in steps of 64 without upscaling, batch 1, fp16 saves,
// max grad norm 1. Departures: AdamW (not the 8-bit AdamW, which needs
// CUDA), cross-attention targets and no text-encoder LoRA (see
// NetworkTrainUNetOnly), and seed 0 kept as a fixed seed.
func Defaults() Config {
	return Config{
		OutputName:                "last",
		NetworkDim:                8,
		NetworkAlpha:              1,
		Targets:                   sd.LoRACrossAttention,
		NetworkTrainUNetOnly:      true,
		LearningRate:              1e-4,
		LRScheduler:               "cosine",
		LRWarmup:                  Warmup{Ratio: 0.1},
		LRSchedulerCycles:         1,
		LRSchedulerPower:          1,
		MaxTrainEpochs:            1,
		MaxTrainSteps:             1600,
		Resolution:                "512,512",
		TrainBatchSize:            1,
		GradientAccumulationSteps: 1,
		EnableBucket:              true,
		MinBucketReso:             256,
		MaxBucketReso:             2048,
		BucketResoSteps:           64,
		BucketNoUpscale:           true,
		CaptionExtension:          ".txt",
		ClipSkip:                  1,
		SaveEveryNEpochs:          1,
		SavePrecision:             "fp16",
		SampleSampler:             "euler_a",
		OptimizerType:             "AdamW",
		MaxGradNorm:               1,
	}
}

// Warmup is lr_warmup_steps: Steps, or Ratio of the total steps when Ratio > 0.
type Warmup struct {
	Steps int
	Ratio float64
}

// StepsOf is the warmup length for a run of total steps; a ratio is
// truncated, as sd-scripts' int(ratio * steps).
func (w Warmup) StepsOf(total int) int {
	if w.Ratio > 0 {
		return int(w.Ratio * float64(total))
	}
	return w.Steps
}

// MarshalTOML writes a step count as an integer and a ratio as a float.
func (w Warmup) MarshalTOML() ([]byte, error) {
	if w.Ratio > 0 {
		return []byte(strconv.FormatFloat(w.Ratio, 'g', -1, 64)), nil
	}
	return []byte(strconv.Itoa(w.Steps)), nil
}

func (w Warmup) String() string {
	if w.Ratio > 0 {
		return strconv.FormatFloat(w.Ratio*100, 'g', -1, 64) + "% of the steps"
	}
	return strconv.Itoa(w.Steps) + " steps"
}

// EffectiveUNetLR is the UNet adapters' learning rate.
func (c *Config) EffectiveUNetLR() float64 {
	if c.UNetLR != nil {
		return *c.UNetLR
	}
	return c.LearningRate
}

// TrainsTextEncoder reports whether the text encoder gets adapters.
func (c *Config) TrainsTextEncoder() bool { return !c.NetworkTrainUNetOnly }

// EffectiveTextEncoderLR is the text-encoder adapters' learning rate.
func (c *Config) EffectiveTextEncoderLR() float64 {
	if c.TextEncoderLR != nil {
		return *c.TextEncoderLR
	}
	return c.LearningRate
}

// ResolutionWH parses Resolution ("512,512" or "512") into width and height.
func (c *Config) ResolutionWH() (w, h int, err error) {
	parts := strings.Split(c.Resolution, ",")
	if len(parts) > 2 || strings.TrimSpace(c.Resolution) == "" {
		return 0, 0, fmt.Errorf("resolution %q: want \"width,height\" or \"size\"", c.Resolution)
	}
	var v [2]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return 0, 0, fmt.Errorf("resolution %q: want \"width,height\" or \"size\"", c.Resolution)
		}
		v[i] = n
	}
	if len(parts) == 1 {
		v[1] = v[0]
	}
	return v[0], v[1], nil
}

// SaveDType is the safetensors dtype of SavePrecision.
func (c *Config) SaveDType() (string, error) {
	switch strings.ToLower(c.SavePrecision) {
	case "", "fp16", "float16":
		return "F16", nil
	case "float", "fp32", "float32":
		return "F32", nil
	case "bf16", "bfloat16":
		return "BF16", nil
	}
	return "", fmt.Errorf("save_precision %q: want fp16, float or bf16", c.SavePrecision)
}

// networkArgs renders Targets as network_args.
func (c *Config) networkArgs() []string {
	t := c.Targets
	if t == "" {
		t = sd.LoRACrossAttention
	}
	return []string{"targets=" + string(t)}
}

// Encode writes c as TOML that LoadConfig reads back to the same Config.
func (c *Config) Encode() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# LoRA Studio training job. Keys are kohya sd-scripts' train_network.py options.\n")
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	// network_args is not a struct field (Targets is): append it.
	args, err := toml.Marshal(map[string][]string{"network_args": c.networkArgs()})
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	b.Write(args)
	return b.Bytes(), nil
}

// WriteFile saves c as TOML at path, atomically.
func (c *Config) WriteFile(path string) error {
	data, err := c.Encode()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(path, data); err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	return nil
}

// LoadConfig reads a TOML job file over Defaults. sd-scripts' section
// tables ([model_arguments] ...) are flattened as sd-scripts does. Keys LoRA
// Studio does not support come back as warnings, one per key, saying what
// happens instead; wrong value types are errors naming the key. The result
// is not validated: call Validate.
func LoadConfig(path string) (Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("load config: %w", err)
	}
	cfg, warnings, err := ParseConfig(data)
	if err != nil {
		return Config{}, nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return cfg, warnings, nil
}

// ParseConfig is LoadConfig on the file's content.
func ParseConfig(data []byte) (Config, []string, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return Config{}, nil, err
	}
	flat := map[string]any{}
	var order []string
	for _, k := range sortedKeys(raw) {
		if sub, ok := raw[k].(map[string]any); ok {
			for _, sk := range sortedKeys(sub) {
				flat[sk] = sub[sk]
				order = append(order, sk)
			}
			continue
		}
		flat[k] = raw[k]
		order = append(order, k)
	}
	cfg := Defaults()
	fields := configFields()
	var warnings []string
	for _, key := range order {
		v := flat[key]
		switch key {
		case "network_args":
			w, err := cfg.setNetworkArgs(v)
			if err != nil {
				return Config{}, nil, err
			}
			warnings = append(warnings, w...)
			continue
		case "text_encoder_lr":
			// sd-scripts accepts a list (one rate per text encoder); SD 1.x has one.
			if list, ok := v.([]any); ok {
				if len(list) != 1 {
					return Config{}, nil, fmt.Errorf("text_encoder_lr: %d values, SD 1.x has one text encoder", len(list))
				}
				v = list[0]
			}
		}
		f, ok := fields[key]
		if !ok {
			if w := unsupportedWarning(key, v); w != "" {
				warnings = append(warnings, w)
			}
			continue
		}
		if err := setField(reflect.ValueOf(&cfg).Elem().FieldByIndex(f), key, v); err != nil {
			return Config{}, nil, err
		}
	}
	// A job that sets only max_train_steps means steps, as in sd-scripts
	// (where max_train_epochs has no default).
	if _, steps := flat["max_train_steps"]; steps {
		if _, epochs := flat["max_train_epochs"]; !epochs {
			cfg.MaxTrainEpochs = 0
		}
	}
	if strings.EqualFold(cfg.OptimizerType, "AdamW8bit") {
		warnings = append(warnings, "optimizer_type = \"AdamW8bit\": 8-bit AdamW needs CUDA; using AdamW (same update, full-precision state)")
		cfg.OptimizerType = "AdamW"
	}
	return cfg, warnings, nil
}

func (c *Config) setNetworkArgs(v any) ([]string, error) {
	var list []string
	switch v := v.(type) {
	case string:
		list = strings.Fields(v)
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("network_args: entry %v is not a \"key=value\" string", e)
			}
			list = append(list, s)
		}
	default:
		return nil, fmt.Errorf("network_args: want a list of \"key=value\" strings, got %T", v)
	}
	var warnings []string
	for _, arg := range list {
		k, val, ok := strings.Cut(arg, "=")
		k = strings.TrimSpace(k)
		val = strings.Trim(strings.TrimSpace(val), `"'`)
		if !ok {
			return nil, fmt.Errorf("network_args: entry %q is not \"key=value\"", arg)
		}
		if k == "targets" {
			t, err := sd.ParseLoRATargets(val)
			if err != nil {
				return nil, fmt.Errorf("network_args: %w", err)
			}
			c.Targets = t
			continue
		}
		warnings = append(warnings, fmt.Sprintf("network_args %q: not supported (plain LoRA only: no conv_dim, block dims, dropout or LoRA+); ignored", arg))
	}
	return warnings, nil
}

// configFields maps TOML keys to Config field indexes.
func configFields() map[string][]int {
	m := map[string][]int{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name != "" && name != "-" {
			m[name] = t.Field(i).Index
		}
	}
	return m
}

// setField stores a decoded TOML value in a Config field, converting
// between TOML's integers and floats where the meaning is clear.
func setField(f reflect.Value, key string, v any) error {
	wrong := func(want string) error {
		return fmt.Errorf("%s: want %s, got %s", key, want, describe(v))
	}
	if f.Type() == reflect.TypeFor[Warmup]() {
		switch v := v.(type) {
		case int64:
			if v < 0 {
				return fmt.Errorf("%s: %d steps", key, v)
			}
			f.Set(reflect.ValueOf(Warmup{Steps: int(v)}))
		case float64:
			if v < 0 || v >= 1 {
				return fmt.Errorf("%s: %v: a fraction is a ratio of the total steps and must be in [0, 1); write whole steps without a decimal point", key, v)
			}
			f.Set(reflect.ValueOf(Warmup{Ratio: v}))
		default:
			return wrong("a step count or a ratio")
		}
		return nil
	}
	if f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Float64 {
		x, ok := toFloat(v)
		if !ok {
			return wrong("a number")
		}
		f.Set(reflect.ValueOf(&x))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		switch v := v.(type) {
		case string:
			f.SetString(v)
		case int64:
			// resolution = 512
			f.SetString(strconv.FormatInt(v, 10))
		case []any:
			// resolution = [512, 768], as in sd-scripts' dataset configs
			var parts []string
			for _, e := range v {
				n, ok := e.(int64)
				if !ok {
					return wrong("a string")
				}
				parts = append(parts, strconv.FormatInt(n, 10))
			}
			f.SetString(strings.Join(parts, ","))
		default:
			return wrong("a string")
		}
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return wrong("true or false")
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		switch x := v.(type) {
		case int64:
			f.SetInt(x)
		case float64:
			if x != float64(int64(x)) {
				return wrong("a whole number")
			}
			f.SetInt(int64(x))
		default:
			return wrong("a whole number")
		}
	case reflect.Float64:
		x, ok := toFloat(v)
		if !ok {
			return wrong("a number")
		}
		f.SetFloat(x)
	case reflect.Slice:
		switch x := v.(type) {
		case string:
			f.Set(reflect.ValueOf([]string{x}))
		case []any:
			var list []string
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return wrong("a list of strings")
				}
				list = append(list, s)
			}
			f.Set(reflect.ValueOf(list))
		default:
			return wrong("a list of strings")
		}
	default:
		return fmt.Errorf("%s: field of kind %s", key, f.Kind())
	}
	return nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case string:
		// kohya_ss writes some numbers as strings ("0.0001").
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprint(v)
}

// compatible lists sd-scripts options LoRA Studio accepts without a
// warning when their value is what it does anyway.
var compatible = map[string]func(any) bool{
	"network_module":                 func(v any) bool { return v == "networks.lora" },
	"save_model_as":                  func(v any) bool { return v == "safetensors" },
	"cache_latents":                  func(v any) bool { return v == true },
	"cache_latents_to_disk":          func(v any) bool { return v == true },
	"mixed_precision":                func(v any) bool { return v == "no" },
	"max_token_length":               func(v any) bool { return v == int64(75) },
	"v2":                             func(v any) bool { return v == false },
	"v_parameterization":             func(v any) bool { return v == false },
	"prior_loss_weight":              func(v any) bool { f, ok := toFloat(v); return ok && f == 1 },
	"save_state":                     func(v any) bool { return true },
	"loss_type":                      func(v any) bool { return v == "l2" },
	"noise_offset_type":              func(v any) bool { return v == "Original" },
	"persistent_data_loader_workers": func(any) bool { return true },
	"max_data_loader_n_workers":      func(any) bool { return true },
	"gradient_checkpointing":         func(any) bool { return true },
	"xformers":                       func(v any) bool { return v == false },
	"sdpa":                           func(v any) bool { return v == false },
	"mem_eff_attn":                   func(v any) bool { return v == false },
}

// unsupportedWarning explains what happens to a key LoRA Studio does not
// read; "" when the key is compatible as it stands.
func unsupportedWarning(key string, v any) string {
	if ok := compatible[key]; ok != nil && ok(v) {
		return ""
	}
	why := "not a LoRA Studio option"
	switch key {
	case "mixed_precision", "full_fp16", "full_bf16", "fp8_base":
		why = "training runs in float32 on the CPU"
	case "xformers", "sdpa", "mem_eff_attn", "lowram", "vae_batch_size", "gradient_checkpointing":
		why = "a GPU memory or speed option; the CPU engine has its own"
	case "reg_data_dir", "prior_loss_weight":
		why = "regularisation images are not supported"
	case "v2", "v_parameterization", "sdxl":
		why = "only Stable Diffusion 1.x is supported"
	case "network_module":
		why = "only networks.lora is supported"
	case "resume":
		why = "resume unfinished runs from LoRA Studio's own state files"
	case "flip_aug", "color_aug", "random_crop", "face_crop_aug_range":
		why = "augmentations are not supported"
	case "max_token_length":
		why = "prompts are 75 tokens (77 with start and end)"
	case "conv_dim", "conv_alpha", "network_dropout", "scale_weight_norms":
		why = "plain LoRA on Linear layers only"
	}
	return fmt.Sprintf("%s = %s: %s; ignored", key, describe(v), why)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
