package trainer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"lorastudio/dataset"
	"lorastudio/nn"
	"lorastudio/sd"
)

// DemoSeed is the seed of the demo model's weights (DemoModel): every demo
// run trains the same untrained model.
const DemoSeed = 1

// job is a prepared run: what Start checked and planned, and what the
// training goroutine builds from it.
type job struct {
	cfg     Config
	plan    Plan
	buckets dataset.BucketPlan
	ds      *dataset.Dataset
	// images are the trainable images in the bucket plan's order; repeats
	// and bucketOf (an index into buckets.Buckets) are per image.
	images   []*dataset.Image
	repeats  []int
	bucketOf []int
	prompts  []samplePrompt
	// sampleConds are the prompts' encodings when the text encoder was
	// freed (see dropUnused), else nil.
	sampleConds []*sd.Conditioning
	init        *sd.LoRAFile // network_weights, when continuing from a LoRA
	resume      *runState    // nil for a new run
	run         *Run

	model   *sd.Model
	vaeID   string // hash of the VAE's weights (latent cache, resume check)
	net     *sd.LoRANetwork
	params  [][]float32 // net.Params' data, the optimizer's order
	grads   [][]float32 // accumulated gradients, same order
	baseLR  []float64   // each parameter's learning rate before the schedule
	order   map[*sd.Adapter]int
	opt     *AdamW
	sched   *Schedule
	src     *rand.PCG // the run's random stream: captions, timesteps, noise
	rng     *rand.Rand
	latents []*nn.Tensor // per image, [4, h/8, w/8]
	texts   *textCache
	graphs  []*stepGraph // most recently used first

	step      int // optimizer steps taken
	losses    lossWindow
	info      RunInfo
	meta      map[string]string
	lastSave  string // the LoRA file saved last
	savedStep int    // the step of the last resume state (-1: none)
	elapsed   time.Duration
}

// PlanJob checks cfg as Start does and returns the run's plan without
// starting it: what a settings form shows before the user presses Start.
func PlanJob(ctx context.Context, cfg Config) (Plan, error) {
	j, err := prepare(ctx, cfg, nil)
	if err != nil {
		return Plan{}, err
	}
	return j.plan, nil
}

// prepare validates cfg and everything it names, opens the dataset and plans
// the run. Problems come back together as ValidationErrors.
func prepare(ctx context.Context, cfg Config, resume *runState) (*job, error) {
	var errs ValidationErrors
	if err := cfg.Validate(); err != nil {
		var v ValidationErrors
		if !errors.As(err, &v) {
			return nil, err
		}
		errs = append(errs, v...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	add := func(key string, err error) { errs = append(errs, FieldError{key, err.Error()}) }

	j := &job{cfg: cfg, resume: resume, savedStep: -1}
	if cfg.PretrainedModel != DemoModel {
		c, err := sd.Open(cfg.PretrainedModel)
		if err != nil {
			add("pretrained_model_name_or_path", err)
		} else {
			c.Close()
		}
	}
	if cfg.NetworkWeights != "" && resume == nil {
		f, err := sd.ReadLoRAFile(cfg.NetworkWeights)
		if err != nil {
			add("network_weights", err)
		}
		j.init = f
	}
	if cfg.SamplePrompts != "" {
		p, err := readSamplePrompts(cfg.SamplePrompts)
		if err != nil {
			add("sample_prompts", err)
		}
		j.prompts = p
	}
	opts, err := cfg.BucketOptions()
	if err == nil {
		err = opts.Validate()
	}
	if err != nil {
		add("min_bucket_reso", err)
	} else if err := j.planDataset(ctx, opts); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		add("train_data_dir", err)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if resume != nil {
		if fp := j.ds.Fingerprint(); fp != resume.Fingerprint {
			return nil, fmt.Errorf("continue %s: the dataset %s changed since the run started (images, captions or repeats differ); restore it or start a new run", resume.path, cfg.TrainDataDir)
		}
		if resume.Step > j.plan.TotalSteps {
			return nil, fmt.Errorf("continue %s: step %d is past the run's %d steps", resume.path, resume.Step, j.plan.TotalSteps)
		}
	}
	return j, nil
}

// planDataset opens the training folder and makes the bucket plan.
func (j *job) planDataset(ctx context.Context, opts dataset.BucketOptions) error {
	ds, err := dataset.Open(ctx, j.cfg.TrainDataDir, dataset.Options{CaptionExt: j.cfg.CaptionExtension})
	if err != nil {
		return err
	}
	items, imgs := ds.BucketItems()
	if len(items) == 0 {
		var why []string
		for _, im := range ds.Images {
			if len(im.Problems) > 0 && len(why) < 3 {
				why = append(why, im.Rel+": "+im.Problems[0].String())
			}
		}
		if len(why) == 0 {
			why = append(why, "every folder has 0 repeats")
		}
		return fmt.Errorf("%s: no trainable images (%s)", j.cfg.TrainDataDir, strings.Join(why, "; "))
	}
	bp, err := dataset.PlanBuckets(items, opts, j.cfg.TrainBatchSize)
	if err != nil {
		return err
	}
	plan, err := NewPlan(&j.cfg, bp)
	if err != nil {
		return err
	}
	j.ds, j.buckets, j.plan, j.images = ds, bp, plan, imgs
	j.repeats = make([]int, len(items))
	j.bucketOf = make([]int, len(items))
	for i, it := range items {
		j.repeats[i] = it.Repeats
		j.bucketOf[i] = slices.IndexFunc(bp.Buckets, func(b dataset.BucketCount) bool { return b.Reso == bp.Assignments[i].Bucket })
	}
	return nil
}

// loadModel loads the base model (or builds the demo model) and hashes its
// file for the metadata.
func (j *job) loadModel() error {
	if j.cfg.PretrainedModel == DemoModel {
		m, err := sd.NewRandomModel(sd.TinyConfig(), DemoSeed)
		if err != nil {
			return err
		}
		j.model = m
		return nil
	}
	m, err := sd.LoadModel(j.cfg.PretrainedModel)
	if err != nil {
		return err
	}
	j.model = m
	c, err := sd.OpenParts(j.cfg.PretrainedModel, sd.PartVAE)
	if err != nil {
		return err
	}
	defer c.Close()
	h, err := c.Hash()
	if err != nil {
		return err
	}
	j.info.ModelSHA256, j.info.ModelLegacyHash = h.SHA256, h.Legacy
	return nil
}

// setupNetwork makes the LoRA network (fresh, from network_weights, or
// from the resume state), attaches it to the UNet and sets up the optimizer
// and schedule.
func (j *job) setupNetwork() error {
	layers, err := sd.LoRALayoutOf(j.model.Config).Layers(j.cfg.Targets, j.cfg.TrainsTextEncoder())
	if err != nil {
		return err
	}
	net, err := sd.NewLoRANetwork(layers, j.cfg.NetworkDim, float32(j.cfg.NetworkAlpha), uint64(j.cfg.Seed))
	if err != nil {
		return err
	}
	if j.init != nil {
		if err := copyWeights(net, j.init, layers); err != nil {
			return err
		}
	}
	sizes := make([]int, 0, 2*len(net.Modules))
	for _, p := range net.Params() {
		sizes = append(sizes, len(p.Data))
	}
	opts, err := j.cfg.AdamWOptions()
	if err != nil {
		return err
	}
	j.opt = NewAdamW(opts, sizes)
	j.net = net
	if j.resume != nil {
		if err := j.resume.restore(j); err != nil {
			return err
		}
	}
	var text *sd.CLIPTextModel
	if j.cfg.TrainsTextEncoder() {
		text = j.model.Text
	}
	adapters, err := net.Attach(j.model.UNet, text, 1, true)
	if err != nil {
		return err
	}
	j.order = map[*sd.Adapter]int{}
	for i, a := range adapters {
		j.order[a] = i
	}
	// The clip skip leaves the last text-encoder layers out: their
	// adapters never get a gradient, and a rate of 0 leaves them (and
	// their optimizer state) untouched, as torch skips parameters without
	// gradients.
	usedLayers := j.model.Config.CLIP.Layers - j.cfg.ClipSkip + 1
	for i, p := range net.Params() {
		m := net.Modules[i/2]
		lr := j.cfg.EffectiveUNetLR()
		if m.TextEncoder {
			lr = j.cfg.EffectiveTextEncoderLR()
			if textLayer(m.Module) >= usedLayers {
				lr = 0
			}
		}
		j.params = append(j.params, p.Data)
		j.grads = append(j.grads, make([]float32, len(p.Data)))
		j.baseLR = append(j.baseLR, lr)
	}
	j.sched, err = j.cfg.Schedule(j.plan.TotalSteps)
	return err
}

// copyWeights loads a LoRA file's matrices into net (network_weights): the
// file must adapt only layers of the chosen targets, with the same rank and
// alpha.
func copyWeights(net *sd.LoRANetwork, f *sd.LoRAFile, layers []sd.LoRALayer) error {
	from, err := f.Network(layers)
	if err != nil {
		return fmt.Errorf("network_weights: %w (are the targets the ones it was trained with?)", err)
	}
	for _, m := range from.Modules {
		dst := net.Module(m.KohyaName())
		if m.Rank != dst.Rank || m.Alpha != dst.Alpha {
			return fmt.Errorf("network_weights %s: %s has rank %d and alpha %v, the job sets network_dim %d and network_alpha %v", f.Path, m.KohyaName(), m.Rank, m.Alpha, dst.Rank, dst.Alpha)
		}
		copy(dst.Down.Data, m.Down.Data)
		copy(dst.Up.Data, m.Up.Data)
	}
	return nil
}

// textLayer is the encoder layer index of a text-encoder module path
// ("text_model.encoder.layers.11.mlp.fc1" is 11), or -1.
func textLayer(module string) int {
	rest, ok := strings.CutPrefix(module, "text_model.encoder.layers.")
	if !ok {
		return -1
	}
	n, _, _ := strings.Cut(rest, ".")
	i, err := strconv.Atoi(n)
	if err != nil {
		return -1
	}
	return i
}
