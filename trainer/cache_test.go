package trainer

import (
	"os"
	"path/filepath"
	"testing"

	"lorastudio/dataset"
	"lorastudio/nn"
	"lorastudio/sd"
)

func lastCaching(events []Event, what string) Caching {
	var c Caching
	for _, e := range events {
		if x, ok := e.(Caching); ok && x.What == what {
			c = x
		}
	}
	return c
}

// TestLatentCacheReused runs twice on the same images: the second run
// encodes nothing and reads every latent from the disk cache, keyed by the
// image content and the bucket, and trains the same.
func TestLatentCacheReused(t *testing.T) {
	data := demoImages(t, 1, 2, "cat", "dog")
	cfg := demoJob(t, data, 3)
	first := drain(t, startRun(t, cfg))
	if c := lastCaching(first, "latents"); c.Done != 4 || c.Total != 4 || c.Reused != 0 {
		t.Fatalf("first run cached %+v", c)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(cache, "lorastudio", "latents", "*", "*_64x64.safetensors"))
	if len(files) != 4 {
		t.Fatalf("%d cache files, want 4: %v", len(files), files)
	}

	cfg.OutputDir = filepath.Join(t.TempDir(), "out")
	second := drain(t, startRun(t, cfg))
	if c := lastCaching(second, "latents"); c.Done != 4 || c.Reused != 4 {
		t.Errorf("second run cached %+v, want all 4 reused", c)
	}
	for i, s := range steps(second) {
		if s.Loss != steps(first)[i].Loss {
			t.Errorf("step %d: loss %v from cached latents, %v from encoded ones", i+1, s.Loss, steps(first)[i].Loss)
		}
	}

	// Another bucket size is another entry; a corrupt entry is re-encoded.
	if err := os.WriteFile(files[0], []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Resolution = "128"
	cfg.OutputDir = filepath.Join(t.TempDir(), "out")
	third := drain(t, startRun(t, cfg))
	if c := lastCaching(third, "latents"); c.Reused != 0 {
		t.Errorf("a new bucket size reused %d entries", c.Reused)
	}
	cfg.Resolution = "64"
	fourth := drain(t, startRun(t, cfg))
	if c := lastCaching(fourth, "latents"); c.Reused != 3 {
		t.Errorf("reused %d entries with one corrupt, want 3", c.Reused)
	}
}

// TestVAEIDFollowsWeights: the cache key changes with any VAE weight and
// with nothing else.
func TestVAEIDFollowsWeights(t *testing.T) {
	m, err := sd.NewRandomModel(sd.TinyConfig(), DemoSeed)
	if err != nil {
		t.Fatal(err)
	}
	a, err := vaeID(m.VAE)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := sd.NewRandomModel(sd.TinyConfig(), DemoSeed)
	if err != nil {
		t.Fatal(err)
	}
	m2.UNet.ConvIn.Weight.Data[0] += 1
	if b, _ := vaeID(m2.VAE); b != a {
		t.Errorf("a UNet change moved the VAE id")
	}
	m2.VAE.Decoder.ConvOut.Bias.Data[0] += 1e-6
	if b, _ := vaeID(m2.VAE); b == a {
		t.Errorf("a VAE change kept the VAE id")
	}
}

// TestEncodeImageDeterministic: the latent of an image depends only on its
// content and bucket (the sampling noise is seeded by the content hash).
func TestEncodeImageDeterministic(t *testing.T) {
	data := demoImages(t, 1, 1, "cat")
	ds, err := dataset.Open(t.Context(), data, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sd.NewRandomModel(sd.TinyConfig(), DemoSeed)
	if err != nil {
		t.Fatal(err)
	}
	j := &job{model: m}
	reso := dataset.Reso{W: 64, H: 64}
	a, err := j.encodeImage(ds.Images[0], reso, []int{4, 8, 8})
	if err != nil {
		t.Fatal(err)
	}
	b, err := j.encodeImage(ds.Images[0], reso, []int{4, 8, 8})
	if err != nil {
		t.Fatal(err)
	}
	mean, err := m.VAE.Encode(nn.FromData(mustLoad(t, ds.Images[0].Path, reso), 1, 3, 64, 64), nil)
	if err != nil {
		t.Fatal(err)
	}
	same, differs := true, false
	for i := range a.Data {
		same = same && a.Data[i] == b.Data[i]
		differs = differs || a.Data[i] != mean.Data[i]
	}
	if !same || !differs {
		t.Errorf("encodings equal %v, differ from the mean %v: want a fixed sample", same, differs)
	}
}

func mustLoad(t *testing.T, path string, reso dataset.Reso) []float32 {
	t.Helper()
	px, err := dataset.LoadForTraining(path, reso)
	if err != nil {
		t.Fatal(err)
	}
	return px
}
