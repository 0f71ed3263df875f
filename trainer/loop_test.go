package trainer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"lorastudio/dataset"
	"lorastudio/nn"
	"lorastudio/sd"
)

// evalLoss is the denoising loss of model m on the images of data at
// fixed noise and timesteps (the same for every call), with no caption
// randomness: the measure of what a LoRA learned.
func evalLoss(t *testing.T, m *sd.Model, data string) float64 {
	t.Helper()
	ds, err := dataset.Open(t.Context(), data, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	j := &job{model: m}
	rng := rand.New(rand.NewPCG(5, 5))
	sched := sd.NewSchedule()
	var total float64
	n := 0
	for _, im := range ds.Images {
		x0, err := j.encodeImage(im, dataset.Reso{W: 64, H: 64}, []int{4, 8, 8})
		if err != nil {
			t.Fatal(err)
		}
		ctx, err := m.EncodePrompts([]string{im.TrainingCaption()}, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range []int{50, 250, 450, 650, 850} {
			noise := sd.Noise(rng, 1, 4, 8, 8)
			noisy, err := sched.AddNoise(x0.Reshape(1, 4, 8, 8), noise, []int{ts})
			if err != nil {
				t.Fatal(err)
			}
			pred, err := m.UNet.Forward(noisy, []float32{float32(ts)}, ctx)
			if err != nil {
				t.Fatal(err)
			}
			total += float64(nn.MSE(pred.Data, noise.Data))
			n++
		}
	}
	return total / float64(n)
}

// TestTrainingLearns trains the demo model's cross-attention LoRA on a few
// real photos: at fixed noise and timesteps the trained LoRA predicts the
// noise of those photos better than the untrained one (which changes
// nothing: its up matrices are zero).
func TestTrainingLearns(t *testing.T) {
	data := demoImages(t, 1, 2, "cat", "teapot")
	cfg := demoJob(t, data, 0)
	cfg.MaxTrainSteps = 0
	cfg.MaxTrainEpochs = 20
	cfg.LearningRate = 2e-3
	cfg.NetworkAlpha = 8
	events := drain(t, startRun(t, cfg))
	if fin, ok := events[len(events)-1].(Finished); !ok {
		t.Fatalf("run ended with %+v", events[len(events)-1])
	} else if fin.Step != 80 {
		t.Fatalf("trained %d steps, want 80", fin.Step)
	}

	m, err := sd.NewRandomModel(sd.TinyConfig(), DemoSeed)
	if err != nil {
		t.Fatal(err)
	}
	before := evalLoss(t, m, data)
	layers, err := sd.LoRALayoutOf(m.Config).AllLayers()
	if err != nil {
		t.Fatal(err)
	}
	f, err := sd.ReadLoRAFile(lastSaved(events).Path)
	if err != nil {
		t.Fatal(err)
	}
	net, err := f.Network(layers)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := net.Attach(m.UNet, nil, 1, false); err != nil {
		t.Fatal(err)
	}
	after := evalLoss(t, m, data)
	t.Logf("denoising loss on the training photos: %.4f untrained, %.4f trained", before, after)
	if !(after < 0.95*before) {
		t.Errorf("loss %.4f after training, %.4f before: not 5%% lower", after, before)
	}
}

// TestEpochBatches checks sd-scripts' batching: each image appears repeats
// times per epoch, batches never mix buckets, only a bucket's last batch is
// short, and the order is fixed by seed and epoch.
func TestEpochBatches(t *testing.T) {
	bucketOf := []int{0, 1, 0, 0, 2, 1}
	repeats := []int{2, 1, 3, 1, 2, 1}
	b := epochBatches(bucketOf, repeats, 3, 2, 7, 0)
	seen := make([]int, len(bucketOf))
	short := map[int]int{}
	for _, x := range b {
		for _, i := range x.images {
			if bucketOf[i] != x.bucket {
				t.Fatalf("batch %+v mixes buckets", x)
			}
			seen[i]++
		}
		if len(x.images) < 2 {
			short[x.bucket]++
		}
	}
	if !slices.Equal(seen, repeats) {
		t.Errorf("images seen %v, want %v", seen, repeats)
	}
	// bucket 0 holds 6 samples, 1 holds 2, 2 holds 2: no short batch.
	if len(b) != 5 || len(short) != 0 {
		t.Errorf("%d batches, short %v", len(b), short)
	}
	if !slices.EqualFunc(b, epochBatches(bucketOf, repeats, 3, 2, 7, 0), batchEqual) {
		t.Error("same seed and epoch, different batches")
	}
	if slices.EqualFunc(b, epochBatches(bucketOf, repeats, 3, 2, 7, 1), batchEqual) {
		t.Error("epochs 0 and 1 have the same batches")
	}
	odd := epochBatches([]int{0, 0, 0}, []int{1, 1, 1}, 1, 2, 1, 0)
	if len(odd) != 2 || len(odd[0].images)+len(odd[1].images) != 3 {
		t.Errorf("3 images in batches of 2: %+v", odd)
	}
}

func batchEqual(a, b batch) bool { return a.bucket == b.bucket && slices.Equal(a.images, b.images) }

func TestCaptionRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	plain := captionRules{prefix: "photo of", suffix: "best"}
	if got := plain.apply("sks dog, grass", rng); got != "photo of sks dog, grass best" {
		t.Errorf("prefix and suffix: %q", got)
	}
	shuffle := captionRules{shuffle: true, keepTokens: 1}
	counts := map[string]int{}
	for range 300 {
		got := shuffle.apply(" sks dog ,grass, sky,  tree ", rng)
		if got[:9] != "sks dog, " {
			t.Fatalf("keep_tokens 1 moved the first tag: %q", got)
		}
		counts[got]++
	}
	if len(counts) != 6 {
		t.Errorf("%d orders of 3 shuffled tags, want all 6: %v", len(counts), counts)
	}
	drop := captionRules{dropout: 0.3}
	dropped := 0
	for range 1000 {
		if drop.apply("sks dog", rng) == "" {
			dropped++
		}
	}
	if dropped < 240 || dropped > 360 {
		t.Errorf("dropout 0.3 dropped %d of 1000", dropped)
	}
	if plain.random() || !shuffle.random() || !drop.random() {
		t.Error("random() is wrong")
	}
}

func TestLossWindow(t *testing.T) {
	w := lossWindow{Size: 3}
	var got []float64
	for i, l := range []float64{3, 1, 2, 6, 1} {
		got = append(got, w.add(i, l))
	}
	if want := []float64{3, 2, 2, 3, 3}; !slices.Equal(got, want) {
		t.Errorf("averages %v, want %v", got, want)
	}
}
