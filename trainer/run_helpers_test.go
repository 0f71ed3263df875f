package trainer

import (
	"context"
	"image/png"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/disintegration/imaging"

	"lorastudio/assets"
	"lorastudio/dataset"
)

// demoImages copies the first n photos of each named class of the bundled
// demo dataset (256 px, with their captions) into a kohya folder
// root/<repeats>_<class>/ and returns root.
func demoImages(t testing.TB, repeats, n int, classes ...string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "img")
	demo := assets.Demo()
	for _, class := range classes {
		src := path.Join("img", "10_"+class)
		entries, err := fs.ReadDir(demo, src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, itoa(repeats)+"_"+class)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		copied := 0
		for _, e := range entries {
			if path.Ext(e.Name()) != ".jpg" || copied == n {
				continue
			}
			copied++
			for _, name := range []string{e.Name(), e.Name()[:len(e.Name())-4] + ".txt"} {
				data, err := fs.ReadFile(demo, path.Join(src, name))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return root
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

// demoJob is a fast job on the demo model: 64 px images, no buckets, a
// constant learning rate high enough for the untrained model to move, fp32
// saves, and a private latent cache.
func demoJob(t testing.TB, data string, steps int) Config {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "cache"))
	c := Defaults()
	c.PretrainedModel = DemoModel
	c.TrainDataDir = data
	c.OutputDir = filepath.Join(t.TempDir(), "out")
	c.OutputName = "demo_lora"
	c.Resolution = "64"
	c.EnableBucket = false
	c.MaxTrainEpochs = 0
	c.MaxTrainSteps = steps
	c.LearningRate = 1e-3
	c.UNetLR = nil
	c.TextEncoderLR = nil
	c.LRScheduler = "constant"
	c.LRWarmup = Warmup{}
	c.SaveEveryNEpochs = 0
	c.SavePrecision = "float"
	c.Seed = 42
	return c
}

// drain collects a run's events until the channel closes.
func drain(t testing.TB, r *Run) []Event {
	t.Helper()
	var out []Event
	timeout := time.After(5 * time.Minute)
	for {
		select {
		case e, ok := <-r.Events():
			if !ok {
				return out
			}
			out = append(out, e)
		case <-timeout:
			t.Fatal("the run did not end within 5 minutes")
		}
	}
}

func startRun(t testing.TB, cfg Config) *Run {
	t.Helper()
	r, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// steps returns the Step events.
func steps(events []Event) []Step {
	var out []Step
	for _, e := range events {
		if s, ok := e.(Step); ok {
			out = append(out, s)
		}
	}
	return out
}

// writeWide writes the photo at src squeezed to 3:1 as a PNG at dst.
func writeWide(t testing.TB, src, dst string) {
	t.Helper()
	img, err := dataset.DecodeImage(src, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, imaging.Resize(img, 384, 128, imaging.Box)); err != nil {
		t.Fatal(err)
	}
}
