package trainer

import (
	"fmt"
	"strings"

	"lorastudio/dataset"
)

// Plan is the arithmetic of a run, as sd-scripts' train_network.py does it:
// a batch never mixes buckets, so an epoch is the sum over buckets of
// ceil(images x repeats / batch) batches; gradient accumulation divides that
// into optimizer steps; max_train_epochs, when set, overrides
// max_train_steps.
type Plan struct {
	Images         int // trainable images
	ImagesRepeated int // images times their folder's repeats (ss_num_train_images)
	BatchSize      int
	GradAccum      int
	Buckets        []dataset.BucketCount
	// BatchesPerEpoch is len(train_dataloader) in sd-scripts.
	BatchesPerEpoch int
	// StepsPerEpoch is optimizer steps per epoch: ceil(batches / accumulation).
	StepsPerEpoch int
	Epochs        int // num_train_epochs
	TotalSteps    int // max_train_steps, after the epoch override
	WarmupSteps   int
}

// BucketOptions are c's bucketing settings for the dataset package.
func (c *Config) BucketOptions() (dataset.BucketOptions, error) {
	w, h, err := c.ResolutionWH()
	if err != nil {
		return dataset.BucketOptions{}, err
	}
	return dataset.BucketOptions{
		Resolution: dataset.Reso{W: w, H: h},
		Enabled:    c.EnableBucket,
		MinReso:    c.MinBucketReso,
		MaxReso:    c.MaxBucketReso,
		Step:       c.BucketResoSteps,
		NoUpscale:  c.BucketNoUpscale,
	}, nil
}

// NewPlan computes the plan of c over a bucketing made with c's batch size
// (dataset.PlanBuckets(items, opts, c.TrainBatchSize)).
func NewPlan(c *Config, b dataset.BucketPlan) (Plan, error) {
	if c.TrainBatchSize < 1 || c.GradientAccumulationSteps < 1 {
		return Plan{}, fmt.Errorf("plan: batch size %d, gradient accumulation %d", c.TrainBatchSize, c.GradientAccumulationSteps)
	}
	if b.Batch != c.TrainBatchSize {
		return Plan{}, fmt.Errorf("plan: buckets were planned for batch size %d, the job uses %d", b.Batch, c.TrainBatchSize)
	}
	p := Plan{
		ImagesRepeated:  b.Samples,
		BatchSize:       c.TrainBatchSize,
		GradAccum:       c.GradientAccumulationSteps,
		Buckets:         b.Buckets,
		BatchesPerEpoch: b.BatchesPerEpoch,
	}
	for _, bc := range b.Buckets {
		p.Images += bc.Images
	}
	if p.BatchesPerEpoch == 0 {
		return p, fmt.Errorf("plan: no trainable images (check the folders' repeats and the image problems)")
	}
	p.StepsPerEpoch = ceilDiv(p.BatchesPerEpoch, p.GradAccum)
	switch {
	case c.MaxTrainEpochs > 0:
		p.TotalSteps = c.MaxTrainEpochs * p.StepsPerEpoch
	case c.MaxTrainSteps > 0:
		p.TotalSteps = c.MaxTrainSteps
	default:
		return p, fmt.Errorf("plan: neither max_train_epochs nor max_train_steps is set")
	}
	p.Epochs = ceilDiv(p.TotalSteps, p.StepsPerEpoch)
	p.WarmupSteps = c.LRWarmup.StepsOf(p.TotalSteps)
	return p, nil
}

// String explains the plan in one line, the numbers kohya users ask about.
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d images x repeats = %d samples", p.Images, p.ImagesRepeated)
	if len(p.Buckets) > 1 {
		fmt.Fprintf(&b, " in %d buckets", len(p.Buckets))
	}
	fmt.Fprintf(&b, "; batch %d", p.BatchSize)
	if p.GradAccum > 1 {
		fmt.Fprintf(&b, ", accumulating %d", p.GradAccum)
	}
	fmt.Fprintf(&b, ": %d steps per epoch, %d epochs = %d steps", p.StepsPerEpoch, p.Epochs, p.TotalSteps)
	if p.WarmupSteps > 0 {
		fmt.Fprintf(&b, " (%d warmup)", p.WarmupSteps)
	}
	return b.String()
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
