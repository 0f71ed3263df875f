package trainer

import (
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lorastudio/dataset"
)

// RunInfo is what a LoRA's metadata records about a run beyond its Config.
type RunInfo struct {
	// SessionID identifies the run (kohya: a random integer below 2^32);
	// every save of the run carries it.
	SessionID uint32
	StartedAt time.Time
	// ModelSHA256 and ModelLegacyHash are the base checkpoint's hashes
	// (sd.FileHashes); empty for the demo model or a diffusers folder.
	ModelSHA256, ModelLegacyHash string
	Plan                         Plan
	// Buckets is the dataset's bucketing (ss_bucket_info).
	Buckets dataset.BucketPlan
	// DatasetDirs (dataset.Dataset.DatasetDirs) maps each folder's base
	// name to its "n_repeats" and "img_count"; TagFrequency
	// (dataset.Dataset.TagFrequency) counts its tags.
	DatasetDirs  map[string]map[string]int
	TagFrequency map[string]map[string]int
}

// Metadata returns the ss_* metadata sd-scripts' train_network.py writes
// for a run from train_data_dir, each value formatted as Python's str() of
// kohya's value (booleans "True"/"False", floats as repr, absent options
// "None", dicts as json.dumps). SaveMetadata adds what changes per save.
func Metadata(c *Config, r RunInfo) map[string]string {
	itoa := strconv.Itoa
	// sd-scripts records the option as given (None when unset); a text
	// encoder that does not train has no rate.
	var te *float64
	if c.TrainsTextEncoder() {
		te = c.TextEncoderLR
	}
	warmup := itoa(c.LRWarmup.Steps)
	if c.LRWarmup.Ratio > 0 {
		warmup = pyFloat(c.LRWarmup.Ratio)
	}
	m := map[string]string{
		"ss_session_id":                     strconv.FormatUint(uint64(r.SessionID), 10),
		"ss_training_started_at":            pyTimestamp(r.StartedAt),
		"ss_output_name":                    c.OutputName,
		"ss_learning_rate":                  pyFloat(c.LearningRate),
		"ss_text_encoder_lr":                pyOptFloat(te),
		"ss_unet_lr":                        pyOptFloat(c.UNetLR),
		"ss_num_train_images":               itoa(r.Plan.ImagesRepeated),
		"ss_num_reg_images":                 "0",
		"ss_num_batches_per_epoch":          itoa(r.Plan.BatchesPerEpoch),
		"ss_num_epochs":                     itoa(r.Plan.Epochs),
		"ss_gradient_checkpointing":         "False",
		"ss_gradient_accumulation_steps":    itoa(c.GradientAccumulationSteps),
		"ss_max_train_steps":                itoa(r.Plan.TotalSteps),
		"ss_lr_warmup_steps":                warmup,
		"ss_lr_scheduler":                   c.LRScheduler,
		"ss_network_module":                 "networks.lora",
		"ss_network_dim":                    itoa(c.NetworkDim),
		"ss_network_alpha":                  pyFloat(c.NetworkAlpha),
		"ss_network_dropout":                "None",
		"ss_network_args":                   pyJSON(networkArgsObject(c)),
		"ss_mixed_precision":                "no",
		"ss_full_fp16":                      "False",
		"ss_v2":                             "False",
		"ss_base_model_version":             "sd_v1",
		"ss_clip_skip":                      itoa(c.ClipSkip),
		"ss_max_token_length":               "None",
		"ss_cache_latents":                  "True",
		"ss_seed":                           strconv.FormatInt(c.Seed, 10),
		"ss_lowram":                         "False",
		"ss_noise_offset":                   pyFloatOrNone(c.NoiseOffset),
		"ss_zero_terminal_snr":              "False",
		"ss_training_comment":               pyOptString(c.TrainingComment),
		"ss_optimizer":                      optimizerName(c),
		"ss_max_grad_norm":                  pyFloat(c.MaxGradNorm),
		"ss_caption_dropout_rate":           pyFloat(c.CaptionDropoutRate),
		"ss_caption_dropout_every_n_epochs": "0",
		"ss_caption_tag_dropout_rate":       "0.0",
		"ss_prior_loss_weight":              "1.0",
		"ss_min_snr_gamma":                  pyFloatOrNone(c.MinSNRGamma),
		"ss_loss_type":                      "l2",
		"ss_debiased_estimation":            "False",

		"ss_batch_size_per_device": itoa(c.TrainBatchSize),
		"ss_total_batch_size":      itoa(c.TrainBatchSize * c.GradientAccumulationSteps),
		"ss_resolution":            pyResolution(c),
		"ss_color_aug":             "False",
		"ss_flip_aug":              "False",
		"ss_random_crop":           "False",
		"ss_shuffle_caption":       pyBool(c.ShuffleCaption),
		"ss_enable_bucket":         pyBool(c.EnableBucket),
		"ss_bucket_no_upscale":     pyBool(c.BucketNoUpscale),
		"ss_min_bucket_reso":       itoa(c.MinBucketReso),
		"ss_max_bucket_reso":       itoa(c.MaxBucketReso),
		"ss_keep_tokens":           itoa(c.KeepTokens),
		"ss_dataset_dirs":          pyJSON(datasetDirsObject(r.DatasetDirs)),
		"ss_reg_dataset_dirs":      "{}",
		"ss_tag_frequency":         pyJSON(tagFrequencyObject(r.TagFrequency)),
		"ss_bucket_info":           pyJSON(bucketInfoObject(r.Buckets)),
		"ss_sd_model_name":         modelName(c.PretrainedModel),
	}
	if r.ModelSHA256 != "" {
		m["ss_new_sd_model_hash"] = r.ModelSHA256
	}
	if r.ModelLegacyHash != "" {
		m["ss_sd_model_hash"] = r.ModelLegacyHash
	}
	return m
}

// SaveMetadata returns a copy of meta with what sd-scripts' save_model adds
// at each save: the epoch (1-based) and step counts, the finishing time,
// and the modelspec.* keys (ModelSpec 1.0.1, as sd_model_spec.py builds
// them for an SD 1.x LoRA).
func SaveMetadata(meta map[string]string, c *Config, epoch, steps int, now time.Time) map[string]string {
	out := maps.Clone(meta)
	out["ss_training_finished_at"] = pyTimestamp(now)
	out["ss_steps"] = strconv.Itoa(steps)
	out["ss_epoch"] = strconv.Itoa(epoch)
	title := c.MetadataTitle
	if title == "" {
		title = c.OutputName
	}
	w, h, err := c.ResolutionWH()
	if err != nil {
		w, h = 512, 512
	}
	out["modelspec.sai_model_spec"] = "1.0.1"
	out["modelspec.architecture"] = "stable-diffusion-v1/lora"
	out["modelspec.implementation"] = "diffusers"
	out["modelspec.title"] = title
	out["modelspec.resolution"] = strconv.Itoa(w) + "x" + strconv.Itoa(h)
	out["modelspec.date"] = now.Truncate(time.Second).Format("2006-01-02T15:04:05")
	out["modelspec.prediction_type"] = "epsilon"
	out["modelspec.encoder_layer"] = strconv.Itoa(c.ClipSkip)
	for key, v := range map[string]string{
		"modelspec.author":      c.MetadataAuthor,
		"modelspec.description": c.MetadataDescription,
		"modelspec.license":     c.MetadataLicense,
		"modelspec.tags":        c.MetadataTags,
	} {
		if v != "" {
			out[key] = v
		}
	}
	return out
}

// pyTimestamp is str(time.time()): seconds since the epoch as a float.
func pyTimestamp(t time.Time) string {
	return pyFloat(float64(t.UnixNano()) / 1e9)
}

func pyOptString(s string) string {
	if s == "" {
		return "None"
	}
	return s
}

// pyResolution is str() of sd-scripts' parsed resolution tuple: "(512, 512)".
func pyResolution(c *Config) string {
	w, h, err := c.ResolutionWH()
	if err != nil {
		return "None"
	}
	return "(" + strconv.Itoa(w) + ", " + strconv.Itoa(h) + ")"
}

// optimizerName is ss_optimizer: the class path, with the arguments as
// sd-scripts prints them after ast.literal_eval ("betas=(0.9, 0.999)").
func optimizerName(c *Config) string {
	name := "torch.optim.adamw.AdamW"
	var args []string
	for _, a := range c.OptimizerArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			continue
		}
		nums, err := parseFloats(v)
		if err != nil {
			continue
		}
		val := pyFloat(nums[0])
		if len(nums) > 1 || strings.Contains(v, ",") {
			parts := make([]string, len(nums))
			for i, n := range nums {
				parts[i] = pyFloat(n)
			}
			val = "(" + strings.Join(parts, ", ") + ")"
		}
		args = append(args, strings.TrimSpace(k)+"="+val)
	}
	if len(args) > 0 {
		name += "(" + strings.Join(args, ",") + ")"
	}
	return name
}

func networkArgsObject(c *Config) pyObject {
	var o pyObject
	for _, a := range c.networkArgs() {
		k, v, _ := strings.Cut(a, "=")
		o = append(o, pyItem{k, v})
	}
	return o
}

// datasetDirsObject orders each folder's entry as kohya does: n_repeats,
// img_count.
func datasetDirsObject(dirs map[string]map[string]int) pyObject {
	o := pyObject{}
	for _, name := range sortedKeys(dirs) {
		d := dirs[name]
		o = append(o, pyItem{name, pyObject{{"n_repeats", d["n_repeats"]}, {"img_count", d["img_count"]}}})
	}
	return o
}

func tagFrequencyObject(tags map[string]map[string]int) pyObject {
	o := pyObject{}
	for _, dir := range sortedKeys(tags) {
		var t pyObject
		for _, tag := range sortedKeys(tags[dir]) {
			t = append(t, pyItem{tag, tags[dir][tag]})
		}
		if t == nil {
			t = pyObject{}
		}
		o = append(o, pyItem{dir, t})
	}
	return o
}

// bucketInfoObject is kohya's bucket_info: None without bucketing, else
// {"buckets": {index: {"resolution": [w, h], "count": n}}, "mean_img_ar_error": e}.
func bucketInfoObject(b dataset.BucketPlan) any {
	if !b.Options.Enabled {
		return nil
	}
	buckets := pyObject{}
	for i, bc := range b.Buckets {
		buckets = append(buckets, pyItem{strconv.Itoa(i), pyObject{{"resolution", []int{bc.Reso.W, bc.Reso.H}}, {"count", bc.Count}}})
	}
	return pyObject{{"buckets", buckets}, {"mean_img_ar_error", b.MeanARError}}
}

// modelName is ss_sd_model_name: the checkpoint's file name (a diffusers
// folder's name), as sd-scripts records os.path.basename of it.
func modelName(path string) string {
	if path == "" || path == DemoModel {
		return path
	}
	return filepath.Base(filepath.Clean(path))
}
