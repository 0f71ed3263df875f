package dataset

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Reso is a width x height in pixels.
type Reso struct{ W, H int }

func (r Reso) String() string { return fmt.Sprintf("%dx%d", r.W, r.H) }

// BucketOptions are sd-scripts' bucketing settings.
type BucketOptions struct {
	// Resolution is the training resolution; its area bounds every bucket
	// (kohya's resolution "512,512").
	Resolution Reso
	// Enabled turns aspect-ratio bucketing on; off, every image is
	// scaled to cover Resolution and centre-cropped.
	Enabled bool
	// MinReso and MaxReso bound a bucket's sides (min_bucket_reso,
	// max_bucket_reso); Step is bucket_reso_steps.
	MinReso, MaxReso, Step int
	// NoUpscale (bucket_no_upscale) gives each image a bucket no larger
	// than itself instead of a predefined one; MinReso and MaxReso are
	// then ignored, as in sd-scripts.
	NoUpscale bool
}

// DefaultBucketOptions are kohya_ss GUI's defaults for SD 1.x LoRA:
// 512x512, buckets on, 256..2048 in steps of 64, no upscale.
func DefaultBucketOptions() BucketOptions {
	return BucketOptions{Resolution: Reso{512, 512}, Enabled: true, MinReso: 256, MaxReso: 2048, Step: 64, NoUpscale: true}
}

// Validate reports settings sd-scripts would refuse.
func (o BucketOptions) Validate() error {
	if o.Resolution.W <= 0 || o.Resolution.H <= 0 {
		return fmt.Errorf("buckets: resolution %v must be positive", o.Resolution)
	}
	if !o.Enabled {
		return nil
	}
	if o.Step <= 0 {
		return fmt.Errorf("buckets: bucket_reso_steps %d must be positive", o.Step)
	}
	if o.MinReso <= 0 || o.MaxReso < o.MinReso {
		return fmt.Errorf("buckets: min_bucket_reso %d and max_bucket_reso %d must satisfy 0 < min <= max", o.MinReso, o.MaxReso)
	}
	if min(o.Resolution.W, o.Resolution.H) < o.MinReso {
		return fmt.Errorf("buckets: min_bucket_reso %d is larger than the resolution %v", o.MinReso, o.Resolution)
	}
	if max(o.Resolution.W, o.Resolution.H) > o.MaxReso {
		return fmt.Errorf("buckets: max_bucket_reso %d is smaller than the resolution %v", o.MaxReso, o.Resolution)
	}
	return nil
}

// MakeBucketResos lists the predefined buckets (sd-scripts'
// make_bucket_resolutions): the square of the resolution's area, then for
// each width from MinReso to MaxReso in Steps the largest height (a
// multiple of Step, at most MaxReso) within the area, and its transpose.
// Sorted by width, then height.
func MakeBucketResos(o BucketOptions) []Reso {
	area := o.Resolution.W * o.Resolution.H
	set := map[Reso]bool{}
	side := int(math.Sqrt(float64(area))) / o.Step * o.Step
	set[Reso{side, side}] = true
	for w := o.MinReso; w <= o.MaxReso; w += o.Step {
		h := min(o.MaxReso, area/w/o.Step*o.Step)
		if h >= o.MinReso {
			set[Reso{w, h}] = true
			set[Reso{h, w}] = true
		}
	}
	out := make([]Reso, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Reso) int { return cmp.Or(cmp.Compare(a.W, b.W), cmp.Compare(a.H, b.H)) })
	return out
}

// Assignment is where one image goes: its bucket, the size it is scaled
// to before the centre crop, and the aspect-ratio error kohya logs.
type Assignment struct {
	Bucket  Reso
	Resized Reso
	ARError float64
}

// Bucketer assigns images to buckets like sd-scripts' BucketManager.
type Bucketer struct {
	opts   BucketOptions
	resos  []Reso
	ratios []float64
}

// NewBucketer prepares the predefined buckets for o.
func NewBucketer(o BucketOptions) (*Bucketer, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	b := &Bucketer{opts: o}
	switch {
	case !o.Enabled:
		b.resos = []Reso{o.Resolution}
	case !o.NoUpscale:
		b.resos = MakeBucketResos(o)
	}
	for _, r := range b.resos {
		b.ratios = append(b.ratios, float64(r.W)/float64(r.H))
	}
	return b, nil
}

// Select assigns an image of w x h pixels.
func (b *Bucketer) Select(w, h int) Assignment {
	ar := float64(w) / float64(h)
	var bucket, resized Reso
	if b.resos != nil {
		bucket = Reso{w, h}
		if !slices.Contains(b.resos, bucket) {
			// Nearest aspect ratio; the first of equals wins, as numpy's argmin.
			best := 0
			for i, r := range b.ratios {
				if math.Abs(r-ar) < math.Abs(b.ratios[best]-ar) {
					best = i
				}
			}
			bucket = b.resos[best]
		}
		resized = CoverSize(w, h, bucket)
	} else {
		resized = b.shrinkToArea(w, h, ar)
		step := b.opts.Step
		bucket = Reso{resized.W - resized.W%step, resized.H - resized.H%step}
	}
	return Assignment{Bucket: bucket, Resized: resized, ARError: float64(bucket.W)/float64(bucket.H) - ar}
}

// shrinkToArea is the no-upscale size: the image itself when it fits the
// resolution's area, else scaled down to it with one side on the step
// grid, whichever keeps the aspect ratio better.
func (b *Bucketer) shrinkToArea(w, h int, ar float64) Reso {
	area := b.opts.Resolution.W * b.opts.Resolution.H
	if w*h <= area {
		return Reso{w, h}
	}
	rw := math.Sqrt(float64(area) * ar)
	rh := float64(area) / rw
	round := func(x float64) int {
		n := int(x + 0.5)
		return n - n%b.opts.Step
	}
	bw := round(rw)
	hInW := round(float64(bw) / ar)
	bh := round(rh)
	wInH := round(float64(bh) * ar)
	arW := float64(bw) / float64(hInW)
	arH := float64(wInH) / float64(bh)
	if math.Abs(arW-ar) < math.Abs(arH-ar) {
		return Reso{bw, int(float64(bw)/ar + 0.5)}
	}
	return Reso{int(float64(bh)*ar + 0.5), bh}
}

// CoverSize is the size w x h scales to so that it covers bucket with the
// aspect ratio kept: the side that is relatively shorter matches exactly.
func CoverSize(w, h int, bucket Reso) Reso {
	ar := float64(w) / float64(h)
	var scale float64
	if ar > float64(bucket.W)/float64(bucket.H) {
		scale = float64(bucket.H) / float64(h)
	} else {
		scale = float64(bucket.W) / float64(w)
	}
	return Reso{int(float64(w)*scale + 0.5), int(float64(h)*scale + 0.5)}
}

// BucketItem is one image for planning: its size and repeats.
type BucketItem struct {
	W, H    int
	Repeats int
}

// BucketCount is one bucket in a plan.
type BucketCount struct {
	Reso Reso
	// Images counts distinct images; Count includes repeats (kohya's
	// "count" in ss_bucket_info).
	Images, Count int
	// Batches is ceil(Count / batch size).
	Batches int
}

// BucketPlan is the bucketing of a dataset and the arithmetic of one
// epoch, as sd-scripts computes it.
type BucketPlan struct {
	Options BucketOptions
	Batch   int
	// Buckets are the non-empty buckets, sorted by resolution.
	Buckets []BucketCount
	// Assignments are per item, in input order.
	Assignments []Assignment
	// Samples is the images times repeats (steps per epoch at batch 1).
	Samples int
	// BatchesPerEpoch is the sum over buckets of ceil(count / batch): a
	// batch never mixes buckets.
	BatchesPerEpoch int
	// MeanARError is the mean absolute aspect-ratio error (no repeats).
	MeanARError float64
}

// PlanBuckets assigns items to buckets and counts batches per epoch for
// batch size batch (at least 1).
func PlanBuckets(items []BucketItem, o BucketOptions, batch int) (BucketPlan, error) {
	if batch < 1 {
		return BucketPlan{}, fmt.Errorf("buckets: batch size %d must be at least 1", batch)
	}
	b, err := NewBucketer(o)
	if err != nil {
		return BucketPlan{}, err
	}
	p := BucketPlan{Options: o, Batch: batch, Assignments: make([]Assignment, len(items))}
	byReso := map[Reso]*BucketCount{}
	var arSum float64
	for i, it := range items {
		a := b.Select(it.W, it.H)
		p.Assignments[i] = a
		arSum += math.Abs(a.ARError)
		bc := byReso[a.Bucket]
		if bc == nil {
			bc = &BucketCount{Reso: a.Bucket}
			byReso[a.Bucket] = bc
		}
		bc.Images++
		bc.Count += it.Repeats
		p.Samples += it.Repeats
	}
	for _, bc := range byReso {
		if bc.Count == 0 {
			continue
		}
		bc.Batches = (bc.Count + batch - 1) / batch
		p.BatchesPerEpoch += bc.Batches
		p.Buckets = append(p.Buckets, *bc)
	}
	slices.SortFunc(p.Buckets, func(x, y BucketCount) int {
		return cmp.Or(cmp.Compare(x.Reso.W, y.Reso.W), cmp.Compare(x.Reso.H, y.Reso.H))
	})
	if len(items) > 0 {
		p.MeanARError = arSum / float64(len(items))
	}
	return p, nil
}

// KohyaBucketInfo is ss_bucket_info's value: {"buckets": {"0":
// {"resolution": [w, h], "count": n}, ...}, "mean_img_ar_error": e}; nil
// when bucketing is off, as sd-scripts writes then.
func (p BucketPlan) KohyaBucketInfo() map[string]any {
	if !p.Options.Enabled {
		return nil
	}
	buckets := map[string]any{}
	for i, bc := range p.Buckets {
		buckets[fmt.Sprint(i)] = map[string]any{"resolution": []int{bc.Reso.W, bc.Reso.H}, "count": bc.Count}
	}
	return map[string]any{"buckets": buckets, "mean_img_ar_error": p.MeanARError}
}

// BucketItems lists what training uses, in dataset order: the trainable
// images of folders with at least one repeat (sd-scripts ignores folders
// with fewer), each with its size and repeats, and the images themselves.
func (d *Dataset) BucketItems() ([]BucketItem, []*Image) {
	var items []BucketItem
	var imgs []*Image
	for _, im := range d.Images {
		if !im.Trainable() || im.Folder.Repeats < 1 {
			continue
		}
		items = append(items, BucketItem{W: im.Width, H: im.Height, Repeats: im.Folder.Repeats})
		imgs = append(imgs, im)
	}
	return items, imgs
}
