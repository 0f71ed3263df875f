package trainer

import (
	"strings"
	"testing"

	"lorastudio/dataset"
)

func TestPlan(t *testing.T) {
	square := func(n, repeats int) []dataset.BucketItem {
		items := make([]dataset.BucketItem, n)
		for i := range items {
			items[i] = dataset.BucketItem{W: 512, H: 512, Repeats: repeats}
		}
		return items
	}
	mixed := append(append(square(3, 1), // 512x512
		dataset.BucketItem{W: 512, H: 768, Repeats: 1},
		dataset.BucketItem{W: 512, H: 768, Repeats: 1}),
		dataset.BucketItem{W: 768, H: 512, Repeats: 1})
	tests := []struct {
		name                     string
		items                    []dataset.BucketItem
		batch, accum             int
		epochs, steps            int
		warmup                   Warmup
		bucket                   bool
		images, samples, batches int
		perEpoch, total, nEpochs int
		warmupSteps              int
	}{
		// 10 images x 10 repeats = 100 samples, batch 2: 50 batches per epoch.
		{"epochs", square(10, 10), 2, 1, 3, 1600, Warmup{Ratio: 0.1}, true, 10, 100, 50, 50, 150, 3, 15},
		// Accumulation divides batches into optimizer steps, rounding up.
		{"accumulation", square(10, 10), 2, 3, 2, 0, Warmup{Steps: 7}, true, 10, 100, 50, 17, 34, 2, 7},
		// Steps only: epochs follow from the steps.
		{"steps", square(10, 10), 1, 1, 0, 250, Warmup{}, true, 10, 100, 100, 100, 250, 3, 0},
		// Batches never mix buckets: 3 square (1 batch of 4), 2 portrait
		// and 1 landscape (1 batch each) = 3 batches, not ceil(6/4) = 2.
		{"buckets", mixed, 4, 1, 2, 0, Warmup{}, true, 6, 6, 3, 3, 6, 2, 0},
		// Without buckets everything is one size.
		{"no buckets", mixed, 4, 1, 2, 0, Warmup{}, false, 6, 6, 2, 2, 4, 2, 0},
		// A folder with 0 repeats trains nothing.
		{"zero repeats", append(square(2, 5), square(3, 0)...), 1, 1, 1, 0, Warmup{}, true, 2, 10, 10, 10, 10, 1, 0},
	}
	for _, tt := range tests {
		c := Defaults()
		c.TrainBatchSize, c.GradientAccumulationSteps = tt.batch, tt.accum
		c.MaxTrainEpochs, c.MaxTrainSteps = tt.epochs, tt.steps
		c.LRWarmup = tt.warmup
		c.EnableBucket = tt.bucket
		opts, err := c.BucketOptions()
		if err != nil {
			t.Fatal(err)
		}
		var items []dataset.BucketItem
		for _, it := range tt.items {
			if it.Repeats > 0 {
				items = append(items, it)
			}
		}
		b, err := dataset.PlanBuckets(items, opts, c.TrainBatchSize)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		p, err := NewPlan(&c, b)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got := []int{p.Images, p.ImagesRepeated, p.BatchesPerEpoch, p.StepsPerEpoch, p.TotalSteps, p.Epochs, p.WarmupSteps}
		want := []int{tt.images, tt.samples, tt.batches, tt.perEpoch, tt.total, tt.nEpochs, tt.warmupSteps}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: images, samples, batches, steps/epoch, total, epochs, warmup = %v, want %v", tt.name, got, want)
				break
			}
		}
		if s := p.String(); !strings.Contains(s, "steps per epoch") {
			t.Errorf("%s: %q", tt.name, s)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	c := Defaults()
	opts, _ := c.BucketOptions()
	b, _ := dataset.PlanBuckets([]dataset.BucketItem{{W: 512, H: 512, Repeats: 1}}, opts, 1)
	c.TrainBatchSize = 2
	if _, err := NewPlan(&c, b); err == nil {
		t.Error("bucket plan for another batch size: no error")
	}
	c.TrainBatchSize = 1
	empty, _ := dataset.PlanBuckets(nil, opts, 1)
	if _, err := NewPlan(&c, empty); err == nil {
		t.Error("no images: no error")
	}
}
