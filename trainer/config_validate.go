package trainer

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"lorastudio/dataset"
	"lorastudio/sd"
)

// FieldError is one invalid setting: its TOML key and what is wrong.
type FieldError struct {
	Key string
	Msg string
}

func (e FieldError) Error() string { return e.Key + ": " + e.Msg }

// ValidationErrors lists every invalid setting of a Config, so a form can
// flag each field at once.
type ValidationErrors []FieldError

func (v ValidationErrors) Error() string {
	msgs := make([]string, len(v))
	for i, e := range v {
		msgs[i] = e.Error()
	}
	return "invalid training settings:\n  " + strings.Join(msgs, "\n  ")
}

// Field returns the message for key, or "".
func (v ValidationErrors) Field(key string) string {
	for _, e := range v {
		if e.Key == key {
			return e.Msg
		}
	}
	return ""
}

// Schedulers are the supported lr_scheduler values.
var Schedulers = []string{"constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial"}

// Samplers are the supported sample_sampler values (kohya's names).
var Samplers = []string{"euler_a", "euler", "ddim"}

// Validate checks every setting before any work starts: numbers in range,
// the model and the dataset folder present, the dataset holding at least
// one `<repeats>_<name>` folder with images. The error, when not nil, is
// ValidationErrors.
func (c *Config) Validate() error {
	var errs ValidationErrors
	add := func(key, format string, args ...any) {
		errs = append(errs, FieldError{key, fmt.Sprintf(format, args...)})
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

	switch {
	case strings.TrimSpace(c.PretrainedModel) == "":
		add("pretrained_model_name_or_path", "no base model chosen (a .safetensors checkpoint, a diffusers folder, or %q)", DemoModel)
	case c.PretrainedModel != DemoModel:
		if _, err := os.Stat(c.PretrainedModel); err != nil {
			add("pretrained_model_name_or_path", "%s: %v", c.PretrainedModel, pathError(err))
		}
	}
	if msg := checkDataDir(c.TrainDataDir); msg != "" {
		add("train_data_dir", "%s", msg)
	}
	if strings.TrimSpace(c.OutputDir) == "" {
		add("output_dir", "no output folder")
	} else if st, err := os.Stat(c.OutputDir); err == nil && !st.IsDir() {
		add("output_dir", "%s is a file, not a folder", c.OutputDir)
	}
	switch {
	case strings.TrimSpace(c.OutputName) == "":
		add("output_name", "empty")
	case strings.ContainsAny(c.OutputName, `/\:*?"<>|`) || c.OutputName == "." || c.OutputName == "..":
		add("output_name", "%q is not a file name (no / \\ : * ? \" < > |)", c.OutputName)
	}
	if c.NetworkWeights != "" {
		if _, err := os.Stat(c.NetworkWeights); err != nil {
			add("network_weights", "%s: %v", c.NetworkWeights, pathError(err))
		}
	}

	if c.NetworkDim < 1 || c.NetworkDim > 1024 {
		add("network_dim", "rank %d: want 1 to 1024", c.NetworkDim)
	}
	if c.NetworkAlpha < 0 || !finite(c.NetworkAlpha) {
		add("network_alpha", "%v: want 0 or more (0 means alpha = rank)", c.NetworkAlpha)
	}
	if _, err := sd.ParseLoRATargets(string(c.Targets)); err != nil {
		add("network_args", "%v", err)
	}

	lr := func(key string, v float64) {
		if v < 0 || !finite(v) {
			add(key, "%v: a learning rate must be 0 or more", v)
		} else if v > 1 {
			add(key, "%v is far too high for LoRA (typical: 1e-4)", v)
		}
	}
	lr("learning_rate", c.LearningRate)
	if c.UNetLR != nil {
		lr("unet_lr", *c.UNetLR)
	}
	if c.TextEncoderLR != nil {
		lr("text_encoder_lr", *c.TextEncoderLR)
	}
	if c.EffectiveUNetLR() == 0 && finite(c.LearningRate) {
		add("unet_lr", "0: the UNet adapters would not train (text-encoder-only training is not supported)")
	}
	if c.TrainsTextEncoder() && c.EffectiveTextEncoderLR() == 0 {
		add("text_encoder_lr", "0 while network_train_unet_only is false: set network_train_unet_only to train the UNet only")
	}

	if !slices.Contains(Schedulers, c.LRScheduler) {
		add("lr_scheduler", "%q: want one of %s", c.LRScheduler, strings.Join(Schedulers, ", "))
	}
	if c.LRWarmup.Steps < 0 || c.LRWarmup.Ratio < 0 || c.LRWarmup.Ratio >= 1 {
		add("lr_warmup_steps", "%v: want a step count, or a ratio in [0, 1)", c.LRWarmup)
	} else if c.LRScheduler == "constant" && (c.LRWarmup.Steps != 0 || c.LRWarmup.Ratio != 0) {
		add("lr_warmup_steps", "the constant schedule has no warmup (sd-scripts refuses it): use constant_with_warmup, or 0")
	}
	if c.LRSchedulerCycles < 1 {
		add("lr_scheduler_num_cycles", "%d: want 1 or more", c.LRSchedulerCycles)
	}
	if c.LRSchedulerPower <= 0 || !finite(c.LRSchedulerPower) {
		add("lr_scheduler_power", "%v: want a positive number", c.LRSchedulerPower)
	}
	if c.LRScheduler == "polynomial" && c.LearningRate <= polynomialEndLR {
		add("learning_rate", "%v: the polynomial schedule decays to %v and needs a larger learning rate", c.LearningRate, polynomialEndLR)
	}

	if c.MaxTrainEpochs < 0 {
		add("max_train_epochs", "%d: want 0 or more", c.MaxTrainEpochs)
	}
	if c.MaxTrainSteps < 0 {
		add("max_train_steps", "%d: want 0 or more", c.MaxTrainSteps)
	}
	if c.MaxTrainEpochs <= 0 && c.MaxTrainSteps <= 0 {
		add("max_train_epochs", "neither epochs nor steps set: nothing to train")
	}

	if w, h, err := c.ResolutionWH(); err != nil {
		add("resolution", "%v", err)
	} else if w < 64 || h < 64 || w%64 != 0 || h%64 != 0 || w > 4096 || h > 4096 {
		add("resolution", "%dx%d: each side must be a multiple of 64 from 64 to 4096", w, h)
	}
	if c.TrainBatchSize < 1 {
		add("train_batch_size", "%d: want 1 or more", c.TrainBatchSize)
	}
	if c.GradientAccumulationSteps < 1 {
		add("gradient_accumulation_steps", "%d: want 1 or more", c.GradientAccumulationSteps)
	}
	if c.EnableBucket {
		if c.BucketResoSteps < 64 || c.BucketResoSteps%64 != 0 {
			add("bucket_reso_steps", "%d: SD 1.x needs a multiple of 64", c.BucketResoSteps)
		}
		if !c.BucketNoUpscale {
			if c.MinBucketReso < 64 || c.MaxBucketReso < c.MinBucketReso {
				add("min_bucket_reso", "%d..%d: want 64 <= min <= max", c.MinBucketReso, c.MaxBucketReso)
			} else if c.BucketResoSteps > 0 && (c.MinBucketReso%c.BucketResoSteps != 0 || c.MaxBucketReso%c.BucketResoSteps != 0) {
				add("min_bucket_reso", "%d..%d: both must be multiples of bucket_reso_steps %d", c.MinBucketReso, c.MaxBucketReso, c.BucketResoSteps)
			}
		}
	}

	if ext := c.CaptionExtension; ext == "" || strings.ContainsAny(ext, `/\`) {
		add("caption_extension", "%q: want an extension such as .txt", ext)
	}
	if c.KeepTokens < 0 {
		add("keep_tokens", "%d: want 0 or more", c.KeepTokens)
	}
	if c.CaptionDropoutRate < 0 || c.CaptionDropoutRate > 1 || !finite(c.CaptionDropoutRate) {
		add("caption_dropout_rate", "%v: want a probability from 0 to 1", c.CaptionDropoutRate)
	}
	if c.ClipSkip < 1 || c.ClipSkip > 12 {
		add("clip_skip", "%d: want 1 (last layer) to 12", c.ClipSkip)
	}
	if c.NoiseOffset < 0 || c.NoiseOffset > 1 || !finite(c.NoiseOffset) {
		add("noise_offset", "%v: want 0 to 1 (typical 0.05-0.1)", c.NoiseOffset)
	}
	if c.MinSNRGamma < 0 || !finite(c.MinSNRGamma) {
		add("min_snr_gamma", "%v: want 0 (off) or more (typical 5)", c.MinSNRGamma)
	}

	if c.SaveEveryNEpochs < 0 {
		add("save_every_n_epochs", "%d: want 0 or more", c.SaveEveryNEpochs)
	}
	if _, err := c.SaveDType(); err != nil {
		add("save_precision", "%q: want fp16, float or bf16", c.SavePrecision)
	}
	if c.SamplePrompts != "" {
		if st, err := os.Stat(c.SamplePrompts); err != nil {
			add("sample_prompts", "%s: %v", c.SamplePrompts, pathError(err))
		} else if st.IsDir() {
			add("sample_prompts", "%s is a folder, want a prompts file", c.SamplePrompts)
		}
	}
	if c.SampleEveryNEpochs < 0 {
		add("sample_every_n_epochs", "%d: want 0 or more", c.SampleEveryNEpochs)
	}
	if c.SampleEveryNSteps < 0 {
		add("sample_every_n_steps", "%d: want 0 or more", c.SampleEveryNSteps)
	}
	if _, err := ParseSampler(c.SampleSampler); err != nil {
		add("sample_sampler", "%v", err)
	}

	if !strings.EqualFold(c.OptimizerType, "AdamW") {
		add("optimizer_type", "%q: only AdamW is supported", c.OptimizerType)
	}
	if _, err := c.AdamWOptions(); err != nil {
		add("optimizer_args", "%v", err)
	}
	if c.MaxGradNorm < 0 || !finite(c.MaxGradNorm) {
		add("max_grad_norm", "%v: want 0 (off) or more", c.MaxGradNorm)
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// ParseSampler normalises kohya's sampler names ("k_euler_a" is "euler_a").
func ParseSampler(name string) (string, error) {
	n := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(name)), "k_")
	if n == "" {
		return "euler_a", nil
	}
	if slices.Contains(Samplers, n) {
		return n, nil
	}
	return "", fmt.Errorf("sampler %q: want one of %s", name, strings.Join(Samplers, ", "))
}

// checkDataDir returns why dir cannot be trained on, or "": it must be a
// folder with at least one image below it. Which images train, and with how
// many repeats, is the dataset package's business.
func checkDataDir(dir string) string {
	if strings.TrimSpace(dir) == "" {
		return "no dataset folder"
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Sprintf("%s: %s", dir, pathError(err))
	}
	if !st.IsDir() {
		return fmt.Sprintf("%s is a file, not a folder", dir)
	}
	// Images sit at most a few levels down (root/10_name/x.png); the bound
	// keeps a mistaken pick such as a home folder from a long walk.
	found, tooMany := errors.New("found"), errors.New("too many")
	root := filepath.Clean(dir)
	seen := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if seen++; seen > 50000 {
			return tooMany
		}
		if d.IsDir() {
			if p != root && strings.Count(p[len(root):], string(filepath.Separator)) > 3 {
				return filepath.SkipDir
			}
			return nil
		}
		if dataset.IsImageFile(d.Name()) {
			return found
		}
		return nil
	})
	if err == tooMany {
		return fmt.Sprintf("%s holds more than 50000 files without an image near the top; choose the folder with the <repeats>_<name> folders", dir)
	}
	if err != found {
		return fmt.Sprintf("%s holds no images (png, jpg, jpeg, webp, bmp); put them in <repeats>_<name> folders such as %s/10_mydog/", dir, filepath.Base(dir))
	}
	return ""
}

// Subset is one `<repeats>_<class tokens>` folder of the training data, as
// sd-scripts reads train_data_dir.
type Subset struct {
	Dir         string // absolute path
	Repeats     int
	ClassTokens string
	Images      int
}

// ScanSubsets lists dir's `<repeats>_<class tokens>` folders and counts
// their images (png, jpg, jpeg, webp, bmp), the way sd-scripts'
// train_data_dir is read: other folders are skipped with their names in
// the returned error only when no folder qualifies.
func ScanSubsets(dir string) ([]Subset, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", dir, pathError(err))
	}
	var subsets []Subset
	var skipped []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		repeats, tokens, ok := dataset.ParseFolderName(e.Name())
		if !ok {
			skipped = append(skipped, e.Name())
			continue
		}
		sub := filepath.Join(abs, e.Name())
		files, err := os.ReadDir(sub)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", sub, pathError(err))
		}
		n := 0
		for _, f := range files {
			if !f.IsDir() && dataset.IsImageFile(f.Name()) {
				n++
			}
		}
		subsets = append(subsets, Subset{Dir: sub, Repeats: repeats, ClassTokens: tokens, Images: n})
	}
	if len(subsets) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("%s has no <repeats>_<name> folders (found %s; rename e.g. to 10_%s)", dir, strings.Join(skipped, ", "), skipped[0])
		}
		return nil, fmt.Errorf("%s has no <repeats>_<name> folders (e.g. %s/10_mydog/)", dir, filepath.Base(dir))
	}
	return subsets, nil
}

func pathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
