package trainer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// GUIImport is the result of reading a kohya_ss GUI configuration.
type GUIImport struct {
	Config Config
	// Mapped lists the GUI fields that set a LoRA Studio setting.
	Mapped []string
	// Ignored lists GUI fields with a value LoRA Studio does not use,
	// "field = value: why".
	Ignored []string
	// Notes explain settings that were adapted rather than copied.
	Notes []string
	// SamplePromptsText is the GUI's sample prompts (text, not a file;
	// kohya_ss writes it to a file at training time). Save it to a file
	// and set Config.SamplePrompts to use it.
	SamplePromptsText string
}

// ImportKohyaGUI reads a kohya_ss GUI LoRA configuration (the JSON its
// "Save" button and its presets write) over Defaults.
func ImportKohyaGUI(path string) (*GUIImport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("import kohya_ss config: %w", err)
	}
	im, err := ParseKohyaGUI(data)
	if err != nil {
		return nil, fmt.Errorf("import kohya_ss config %s: %w", path, err)
	}
	return im, nil
}

// guiHarmless are kohya_ss GUI fields about the GUI itself, processes,
// logging or other model families: they change nothing LoRA Studio trains.
var guiHarmless = map[string]bool{
	"training_preset": true, "model_list": true, "save_as": true, "file_path": true, "apply_preset": true,
	"num_cpu_threads_per_process": true, "num_processes": true, "num_machines": true, "multi_gpu": true,
	"gpu_ids": true, "main_process_port": true, "dynamo_backend": true, "dynamo_mode": true,
	"logging_dir": true, "log_tracker_name": true, "log_tracker_config": true, "log_with": true,
	"use_wandb": true, "wandb_api_key": true, "wandb_run_name": true, "log_config": true,
	"max_data_loader_n_workers": true, "persistent_data_loader_workers": true, "vae_batch_size": true,
	"save_state": true, "save_state_on_train_end": true, "save_model_as": true,
	"cache_latents": true, "cache_latents_to_disk": true, "caption_metadata_filename": true,
	"sdxl_cache_text_encoder_outputs": true, "sdxl_no_half_vae": true, "no_half_vae": true,
	"dim_from_weights": true, "LyCORIS_preset": true, "unit": true, "factor": true,
	"use_cp": true, "use_tucker": true, "use_scalar": true, "rank_dropout_scale": true,
	"constrain": true, "rescaled": true, "train_norm": true, "decompose_both": true, "train_on_input": true,
	"conv_dim": true, "conv_alpha": true, "block_lr_zero_threshold": true,
	"noise_offset_type": true, "loss_type": true, "huber_schedule": true, "huber_c": true,
	"mem_eff_attn": true, "xformers": true, "sdpa": true, "gradient_checkpointing": true,
	"lowram": true, "highvram": true, "prior_loss_weight": true, "caption_metadata": true,
}

// ParseKohyaGUI is ImportKohyaGUI on the file's content. kohya_ss writes
// numbers as numbers or strings ("0.0001", "" for unset); both are read.
func ParseKohyaGUI(data []byte) (*GUIImport, error) {
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	im := &GUIImport{Config: Defaults()}
	c := &im.Config
	var problems []string
	used := map[string]bool{}
	get := func(key string) (any, bool) {
		v, ok := raw[key]
		used[key] = true
		if !ok || guiEmpty(v) {
			return nil, false
		}
		return v, true
	}
	mapped := func(key string) { im.Mapped = append(im.Mapped, key) }
	ignore := func(key string, v any, why string) {
		im.Ignored = append(im.Ignored, fmt.Sprintf("%s = %s: %s", key, guiString(v), why))
	}
	str := func(key string, dst *string) {
		if v, ok := get(key); ok {
			*dst = guiString(v)
			mapped(key)
		}
	}
	num := func(key string, dst *float64) {
		if v, ok := get(key); ok {
			f, err := guiFloat(v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", key, err))
				return
			}
			*dst = f
			mapped(key)
		}
	}
	integer := func(key string, dst *int) {
		if v, ok := get(key); ok {
			f, err := guiFloat(v)
			if err != nil || f != math.Trunc(f) || math.Abs(f) > 1e9 {
				problems = append(problems, fmt.Sprintf("%s: %s is not a whole number", key, guiString(v)))
				return
			}
			*dst = int(f)
			mapped(key)
		}
	}
	boolean := func(key string, dst *bool) {
		if v, ok := raw[key]; ok {
			used[key] = true
			b, ok := v.(bool)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: %s is not true or false", key, guiString(v)))
				return
			}
			*dst = b
			mapped(key)
		}
	}

	str("pretrained_model_name_or_path", &c.PretrainedModel)
	str("train_data_dir", &c.TrainDataDir)
	str("output_dir", &c.OutputDir)
	str("output_name", &c.OutputName)
	str("lora_network_weights", &c.NetworkWeights)
	str("max_resolution", &c.Resolution)
	integer("network_dim", &c.NetworkDim)
	num("network_alpha", &c.NetworkAlpha)
	num("learning_rate", &c.LearningRate)
	str("lr_scheduler", &c.LRScheduler)
	integer("lr_scheduler_num_cycles", &c.LRSchedulerCycles)
	num("lr_scheduler_power", &c.LRSchedulerPower)
	integer("train_batch_size", &c.TrainBatchSize)
	integer("gradient_accumulation_steps", &c.GradientAccumulationSteps)
	boolean("enable_bucket", &c.EnableBucket)
	integer("min_bucket_reso", &c.MinBucketReso)
	integer("max_bucket_reso", &c.MaxBucketReso)
	integer("bucket_reso_steps", &c.BucketResoSteps)
	boolean("bucket_no_upscale", &c.BucketNoUpscale)
	str("caption_extension", &c.CaptionExtension)
	boolean("shuffle_caption", &c.ShuffleCaption)
	integer("keep_tokens", &c.KeepTokens)
	num("caption_dropout_rate", &c.CaptionDropoutRate)
	str("caption_prefix", &c.CaptionPrefix)
	str("caption_suffix", &c.CaptionSuffix)
	integer("clip_skip", &c.ClipSkip)
	num("min_snr_gamma", &c.MinSNRGamma)
	integer("save_every_n_epochs", &c.SaveEveryNEpochs)
	str("save_precision", &c.SavePrecision)
	integer("sample_every_n_epochs", &c.SampleEveryNEpochs)
	integer("sample_every_n_steps", &c.SampleEveryNSteps)
	str("sample_sampler", &c.SampleSampler)
	num("max_grad_norm", &c.MaxGradNorm)
	str("training_comment", &c.TrainingComment)
	str("metadata_title", &c.MetadataTitle)
	str("metadata_author", &c.MetadataAuthor)
	str("metadata_description", &c.MetadataDescription)
	str("metadata_license", &c.MetadataLicense)
	str("metadata_tags", &c.MetadataTags)

	if v, ok := get("seed"); ok {
		f, err := guiFloat(v)
		switch {
		case err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53:
			problems = append(problems, fmt.Sprintf("seed: %s is not a whole number", guiString(v)))
		case f == 0:
			im.Notes = append(im.Notes, "seed 0 means a random seed in kohya_ss; LoRA Studio keeps 0 as a fixed seed so the run is reproducible")
		default:
			c.Seed = int64(f)
			mapped("seed")
		}
	}

	// Learning rates: kohya_ss passes a rate only when it is not 0; a 0
	// text-encoder rate trains the UNet only, a 0 UNet rate the text
	// encoder only.
	var unet, te float64
	if v, ok := get("unet_lr"); ok {
		if unet, _ = guiFloat(v); unet > 0 {
			c.UNetLR = &unet
			mapped("unet_lr")
		}
	}
	if v, ok := get("text_encoder_lr"); ok {
		te, _ = guiFloat(v)
	}
	switch {
	case te == 0 && unet == 0:
		c.UNetLR, c.TextEncoderLR = nil, nil
		c.NetworkTrainUNetOnly = false
		im.Notes = append(im.Notes, "unet_lr and text_encoder_lr are 0: both use learning_rate, the text encoder trains too (as in kohya_ss)")
	case te == 0:
		c.TextEncoderLR = nil
		c.NetworkTrainUNetOnly = true
		mapped("text_encoder_lr")
	case unet == 0:
		ignore("text_encoder_lr", te, "text-encoder-only training is not supported; the UNet trains at learning_rate and the text encoder is left alone")
		c.UNetLR, c.TextEncoderLR = nil, nil
		c.NetworkTrainUNetOnly = true
	default:
		c.TextEncoderLR = &te
		c.NetworkTrainUNetOnly = false
		mapped("text_encoder_lr")
	}

	// kohya_ss' warmup is a percentage of the steps; newer versions also
	// have an lr_warmup_steps override.
	if v, ok := get("lr_warmup_steps"); ok {
		if f, err := guiFloat(v); err == nil && f > 0 && f == math.Trunc(f) {
			c.LRWarmup = Warmup{Steps: int(f)}
			mapped("lr_warmup_steps")
		}
	} else if v, ok := get("lr_warmup"); ok {
		f, err := guiFloat(v)
		if err != nil || f < 0 || f >= 100 {
			problems = append(problems, fmt.Sprintf("lr_warmup: %s is not a percentage below 100", guiString(v)))
		} else {
			c.LRWarmup = Warmup{Ratio: f / 100}
			mapped("lr_warmup")
		}
	} else if _, present := raw["lr_warmup"]; present {
		c.LRWarmup = Warmup{}
	}
	if c.LRScheduler == "constant" && (c.LRWarmup.Steps > 0 || c.LRWarmup.Ratio > 0) {
		im.Notes = append(im.Notes, fmt.Sprintf("the constant schedule has no warmup: dropped the %v warmup", c.LRWarmup))
		c.LRWarmup = Warmup{}
	}

	// Length: max_train_epochs overrides; else a step count; else "epoch"
	// (kohya_ss computes the steps from it).
	var epochs, steps, epoch int
	integer("max_train_epochs", &epochs)
	integer("max_train_steps", &steps)
	integer("epoch", &epoch)
	switch {
	case epochs > 0:
		c.MaxTrainEpochs = epochs
	case steps > 0:
		c.MaxTrainEpochs, c.MaxTrainSteps = 0, steps
	case epoch > 0:
		c.MaxTrainEpochs = epoch
	}

	if v, ok := get("noise_offset"); ok {
		typ := "Original"
		if t, ok := raw["noise_offset_type"].(string); ok && t != "" {
			typ = t
		}
		f, err := guiFloat(v)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("noise_offset: %v", err))
		case typ != "Original" && f != 0:
			ignore("noise_offset", v, "only the Original noise offset is supported, not "+typ)
		default:
			c.NoiseOffset = f
			mapped("noise_offset")
		}
	}
	if v, ok := get("optimizer"); ok {
		switch s := guiString(v); {
		case strings.EqualFold(s, "AdamW"):
			mapped("optimizer")
		case strings.EqualFold(s, "AdamW8bit"):
			mapped("optimizer")
			im.Notes = append(im.Notes, "optimizer AdamW8bit needs CUDA: using AdamW (same update, full-precision state)")
		default:
			ignore("optimizer", v, "only AdamW is supported; using AdamW")
		}
	}
	if v, ok := get("optimizer_args"); ok {
		c.OptimizerArgs = strings.Fields(guiString(v))
		if _, err := c.AdamWOptions(); err != nil {
			ignore("optimizer_args", v, err.Error()+"; using AdamW's defaults")
			c.OptimizerArgs = nil
		} else {
			mapped("optimizer_args")
		}
	}
	if v, ok := get("sample_prompts"); ok {
		s := guiString(v)
		if st, err := os.Stat(s); err == nil && !st.IsDir() {
			c.SamplePrompts = s
			mapped("sample_prompts")
		} else {
			im.SamplePromptsText = s
			im.Notes = append(im.Notes, "sample_prompts holds prompt text: save it to a prompts file to make samples")
		}
	}
	if v, ok := get("LoRA_type"); ok && guiString(v) != "Standard" {
		ignore("LoRA_type", v, "only standard LoRA is trained")
	}
	if v, ok := get("mixed_precision"); ok && guiString(v) != "no" {
		ignore("mixed_precision", v, "training runs in float32 on the CPU")
	}
	if v, ok := get("max_token_length"); ok && guiString(v) != "75" {
		ignore("max_token_length", v, "prompts are 75 tokens")
	}
	if v, ok := get("full_fp16"); ok && v != false {
		ignore("full_fp16", v, "training runs in float32 on the CPU")
	}

	for _, key := range sortedKeys(raw) {
		v := raw[key]
		if used[key] || guiHarmless[key] || guiEmpty(v) || guiDefaultValue(key, v) {
			continue
		}
		ignore(key, v, guiWhy(key))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return im, nil
}

// guiEmpty reports the values kohya_ss uses for "not set": "", 0, false, null.
func guiEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(v) == ""
	case bool:
		return !v
	case json.Number:
		f, err := v.Float64()
		return err == nil && f == 0
	}
	return false
}

// guiDefaultValue reports GUI fields whose value does what LoRA Studio does.
func guiDefaultValue(key string, v any) bool {
	f, err := guiFloat(v)
	switch key {
	case "max_timestep":
		return err == nil && f == 1000
	case "prior_loss_weight", "huber_scale":
		return err == nil && f == 1
	case "multires_noise_discount":
		return true // only matters with multires_noise_iterations
	case "v2", "v_parameterization", "sdxl", "flux1_checkbox", "sd3_checkbox":
		return v == false
	}
	return false
}

func guiWhy(key string) string {
	switch key {
	case "reg_data_dir":
		return "regularisation images are not supported"
	case "v2", "v_parameterization", "sdxl", "flux1_checkbox", "sd3_checkbox":
		return "only Stable Diffusion 1.x is supported"
	case "flip_aug", "color_aug", "random_crop":
		return "augmentations are not supported"
	case "min_timestep", "max_timestep":
		return "timesteps are drawn from the full range 0..999"
	case "stop_text_encoder_training":
		return "the text encoder trains for the whole run or not at all"
	case "network_dropout", "rank_dropout", "module_dropout", "scale_weight_norms":
		return "plain LoRA without dropout or norm scaling"
	case "down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas":
		return "per-block ranks and learning rates are not supported"
	case "full_bf16", "fp8_base":
		return "training runs in float32 on the CPU"
	case "resume":
		return "LoRA Studio resumes its own unfinished runs"
	case "additional_parameters":
		return "extra sd-scripts arguments are not read"
	}
	return "not supported by LoRA Studio"
}

func guiFloat(v any) (float64, error) {
	switch v := v.(type) {
	case json.Number:
		return v.Float64()
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", v)
		}
		return f, nil
	case bool:
		return 0, fmt.Errorf("%v is not a number", v)
	}
	return 0, fmt.Errorf("%v is not a number", v)
}

func guiString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}
