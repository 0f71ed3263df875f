package dataset

import (
	"math"
	"slices"
	"testing"
)

// The expected values below were computed with sd-scripts'
// make_bucket_resolutions and BucketManager.select_bucket logic
// (library/model_util.py, library/train_util.py) for the same inputs.

func TestMakeBucketResos(t *testing.T) {
	tests := []struct {
		name string
		o    BucketOptions
		want []Reso
	}{
		{"512 256..1024", BucketOptions{Resolution: Reso{512, 512}, MinReso: 256, MaxReso: 1024, Step: 64}, []Reso{
			{256, 832}, {256, 896}, {256, 960}, {256, 1024}, {320, 704}, {320, 768}, {384, 640}, {448, 576}, {512, 512},
			{576, 448}, {640, 384}, {704, 320}, {768, 320}, {832, 256}, {896, 256}, {960, 256}, {1024, 256}}},
		{"768x512 256..1024", BucketOptions{Resolution: Reso{768, 512}, MinReso: 256, MaxReso: 1024, Step: 64}, []Reso{
			{256, 1024}, {320, 1024}, {384, 896}, {384, 960}, {384, 1024}, {448, 832}, {512, 704}, {512, 768}, {576, 576},
			{576, 640}, {640, 576}, {704, 512}, {768, 512}, {832, 448}, {896, 384}, {960, 384}, {1024, 256}, {1024, 320}, {1024, 384}}},
	}
	for _, tt := range tests {
		if got := MakeBucketResos(tt.o); !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %v\nwant %v", tt.name, got, tt.want)
		}
	}
	// kohya_ss GUI's 256..2048 gives the same list at 512x512: no side can
	// exceed 1024 within 512x512 pixels when the other is at least 256.
	o := DefaultBucketOptions()
	if n := len(MakeBucketResos(o)); n != 17 {
		t.Errorf("256..2048: %d buckets, want 17", n)
	}
}

func TestSelectBucket(t *testing.T) {
	tests := []struct {
		noUpscale bool
		w, h      int
		bucket    Reso
		resized   Reso
	}{
		{false, 512, 512, Reso{512, 512}, Reso{512, 512}},
		{false, 1024, 768, Reso{576, 448}, Reso{597, 448}},
		{false, 768, 1024, Reso{448, 576}, Reso{448, 597}},
		{false, 3000, 2000, Reso{640, 384}, Reso{640, 427}},
		{false, 2000, 3000, Reso{384, 640}, Reso{427, 640}},
		{false, 640, 480, Reso{576, 448}, Reso{597, 448}},
		{false, 300, 200, Reso{640, 384}, Reso{640, 427}},
		{false, 1920, 1080, Reso{640, 384}, Reso{683, 384}},
		{false, 1080, 1920, Reso{384, 640}, Reso{384, 683}},
		{false, 700, 500, Reso{576, 448}, Reso{627, 448}},
		{false, 500, 700, Reso{448, 576}, Reso{448, 627}},
		{false, 4000, 1000, Reso{1024, 256}, Reso{1024, 256}},
		{false, 123, 457, Reso{256, 960}, Reso{258, 960}},
		{false, 256, 256, Reso{512, 512}, Reso{512, 512}},
		{false, 5000, 5000, Reso{512, 512}, Reso{512, 512}},
		{false, 1000, 1001, Reso{512, 512}, Reso{512, 513}},
		{true, 512, 512, Reso{512, 512}, Reso{512, 512}},
		{true, 1024, 768, Reso{512, 384}, Reso{512, 384}},
		{true, 768, 1024, Reso{384, 512}, Reso{384, 512}},
		{true, 3000, 2000, Reso{576, 384}, Reso{576, 384}},
		{true, 2000, 3000, Reso{384, 576}, Reso{384, 576}},
		{true, 640, 480, Reso{512, 384}, Reso{512, 384}},
		{true, 300, 200, Reso{256, 192}, Reso{300, 200}},
		{true, 1920, 1080, Reso{640, 384}, Reso{683, 384}},
		{true, 1080, 1920, Reso{384, 640}, Reso{384, 683}},
		{true, 700, 500, Reso{512, 384}, Reso{538, 384}},
		{true, 500, 700, Reso{384, 512}, Reso{384, 538}},
		{true, 4000, 1000, Reso{1024, 256}, Reso{1024, 256}},
		{true, 123, 457, Reso{64, 448}, Reso{123, 457}},
		{true, 256, 256, Reso{256, 256}, Reso{256, 256}},
		{true, 5000, 5000, Reso{512, 512}, Reso{512, 512}},
		{true, 1000, 1001, Reso{512, 512}, Reso{512, 513}},
	}
	for _, tt := range tests {
		o := BucketOptions{Resolution: Reso{512, 512}, Enabled: true, MinReso: 256, MaxReso: 1024, Step: 64, NoUpscale: tt.noUpscale}
		b, err := NewBucketer(o)
		if err != nil {
			t.Fatal(err)
		}
		a := b.Select(tt.w, tt.h)
		if a.Bucket != tt.bucket || a.Resized != tt.resized {
			t.Errorf("no_upscale=%v %dx%d: bucket %v resized %v, want %v %v", tt.noUpscale, tt.w, tt.h, a.Bucket, a.Resized, tt.bucket, tt.resized)
		}
		if a.Resized.W < a.Bucket.W || a.Resized.H < a.Bucket.H {
			t.Errorf("%dx%d: resized %v does not cover bucket %v", tt.w, tt.h, a.Resized, a.Bucket)
		}
		if want := float64(a.Bucket.W)/float64(a.Bucket.H) - float64(tt.w)/float64(tt.h); math.Abs(a.ARError-want) > 1e-12 {
			t.Errorf("ar error %v, want %v", a.ARError, want)
		}
	}
}

func TestBucketsDisabled(t *testing.T) {
	b, err := NewBucketer(BucketOptions{Resolution: Reso{512, 512}})
	if err != nil {
		t.Fatal(err)
	}
	a := b.Select(1024, 768)
	if a.Bucket != (Reso{512, 512}) || a.Resized != (Reso{683, 512}) {
		t.Errorf("disabled: %+v", a)
	}
}

func TestPlanBuckets(t *testing.T) {
	o := BucketOptions{Resolution: Reso{512, 512}, Enabled: true, MinReso: 256, MaxReso: 1024, Step: 64}
	items := []BucketItem{
		{512, 512, 10}, {1024, 1024, 10}, {800, 800, 3}, // 512x512: 23
		{1024, 768, 10}, {640, 480, 10}, // 576x448: 20
		{300, 200, 1}, // 640x384: 1
	}
	tests := []struct {
		batch, batches int
	}{
		{1, 44},
		{2, 12 + 10 + 1},
		{4, 6 + 5 + 1},
		{30, 3},
	}
	for _, tt := range tests {
		p, err := PlanBuckets(items, o, tt.batch)
		if err != nil {
			t.Fatal(err)
		}
		if p.BatchesPerEpoch != tt.batches || p.Samples != 44 {
			t.Errorf("batch %d: %d batches, %d samples; want %d, 44", tt.batch, p.BatchesPerEpoch, p.Samples, tt.batches)
		}
		want := []BucketCount{{Reso{512, 512}, 3, 23, (23 + tt.batch - 1) / tt.batch}, {Reso{576, 448}, 2, 20, (20 + tt.batch - 1) / tt.batch}, {Reso{640, 384}, 1, 1, 1}}
		if !slices.Equal(p.Buckets, want) {
			t.Errorf("batch %d: buckets %v, want %v", tt.batch, p.Buckets, want)
		}
	}
	p, _ := PlanBuckets(items, o, 1)
	info := p.KohyaBucketInfo()
	bk := info["buckets"].(map[string]any)
	if len(bk) != 3 || bk["1"].(map[string]any)["count"] != 20 {
		t.Errorf("bucket info %v", info)
	}
	if _, err := PlanBuckets(items, o, 0); err == nil {
		t.Error("batch 0 accepted")
	}
	bad := o
	bad.MinReso = 1024
	if _, err := PlanBuckets(items, bad, 1); err == nil {
		t.Error("min reso above resolution accepted")
	}
}
