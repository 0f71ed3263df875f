package dataset

import (
	"context"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"lorastudio/internal/benchmetrics"
)

// dreamboothDir holds the 158 DreamBooth photos (512x512 JPEG) used by
// the thumbnail targets; benchmarks skip when it is absent.
const dreamboothDir = "/work/shared/datasets/dreambooth-512"

func openDreambooth(b *testing.B) *Dataset {
	if _, err := os.Stat(dreamboothDir); err != nil {
		b.Skip("DreamBooth photos not present:", err)
	}
	return mustOpen(b, dreamboothDir, Options{})
}

func runThumbs(b *testing.B, th *Thumbnailer, d *Dataset) (cached int) {
	err := th.Run(context.Background(), d.Images, func(r Thumb) {
		if r.Err != nil {
			b.Error(r.Err)
		}
		if r.Cached {
			cached++
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	return cached
}

// reportCPU reports the CPU time per operation since start, because the
// wall time depends on what else runs on the machine; on an idle machine
// wall time ≈ cpu time / cores used.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(benchmetrics.CPUTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// BenchmarkThumbnailsCold is the grid filling with an empty cache.
func BenchmarkThumbnailsCold(b *testing.B) {
	d := openDreambooth(b)
	defer reportCPU(b, benchmetrics.CPUTime())
	for b.Loop() {
		b.StopTimer()
		th, err := NewThumbnailer(ThumbOptions{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n := runThumbs(b, th, d); n != 0 {
			b.Fatalf("%d cache hits on a cold cache", n)
		}
	}
	b.ReportMetric(float64(len(d.Images)), "images")
}

// BenchmarkThumbnailsWarm is the grid filling from the disk cache.
func BenchmarkThumbnailsWarm(b *testing.B) {
	d := openDreambooth(b)
	th, err := NewThumbnailer(ThumbOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	runThumbs(b, th, d)
	defer reportCPU(b, benchmetrics.CPUTime())
	for b.Loop() {
		if n := runThumbs(b, th, d); n != len(d.Images) {
			b.Fatalf("%d of %d cache hits", n, len(d.Images))
		}
	}
	b.ReportMetric(float64(len(d.Images)), "images")
}

// BenchmarkOpenDreambooth scans the 158 photos (hash, header, caption).
func BenchmarkOpenDreambooth(b *testing.B) {
	openDreambooth(b)
	defer reportCPU(b, benchmetrics.CPUTime())
	for b.Loop() {
		mustOpen(b, dreamboothDir, Options{})
	}
}

// makeLargeDataset writes n small images (mixed PNG/JPEG, mixed aspect
// ratios) with captions of 10-30 tags over 20 kohya folders.
func makeLargeDataset(b *testing.B, n int) string {
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 2000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("tag %d", i)
	}
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(len(vocab)-1))
	for i := range n {
		folder := filepath.Join(dir, "img", fmt.Sprintf("%d_concept%d", 1+i%5, i%20))
		if i < 20 {
			if err := os.MkdirAll(folder, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		w, h := 48+16*(i%4), 48+16*((i/4)%3)
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for p := 0; p < len(img.Pix); p += 4 {
			img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = uint8(i), uint8(p), uint8(i>>8), 255
		}
		var data []byte
		name := filepath.Join(folder, strconv.Itoa(i))
		if i%2 == 0 {
			data, name = encodePNG(b, img), name+".png"
		} else {
			data, name = encodeJPEG(b, img), name+".jpg"
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			b.Fatal(err)
		}
		tags := make([]string, 10+rng.IntN(21))
		for j := range tags {
			tags[j] = vocab[zipf.Uint64()]
		}
		if err := os.WriteFile(CaptionPathFor(name, ".txt"), []byte(strings.Join(tags, ", ")), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkOpen5000 opens a generated 5,000-image dataset with the files
// in the page cache (warm), and reports the memory the dataset holds.
func BenchmarkOpen5000(b *testing.B) {
	dir := makeLargeDataset(b, 5000)
	mustOpen(b, dir, Options{}) // warm the page cache
	var d *Dataset
	start := benchmetrics.CPUTime()
	for b.Loop() {
		d = mustOpen(b, dir, Options{})
	}
	reportCPU(b, start)
	if len(d.Images) != 5000 {
		b.Fatalf("%d images", len(d.Images))
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
	b.ReportMetric(float64(benchmetrics.RSS())/(1<<20), "rss-MB")
	runtime.KeepAlive(d)
}

// BenchmarkThumbnails5000 makes (cold) and then reads (warm) thumbnails of
// the generated 5,000-image dataset, keeping all of them in memory as a
// grid that never evicts would, and reports the resident memory.
func BenchmarkThumbnails5000(b *testing.B) {
	dir := makeLargeDataset(b, 5000)
	d := mustOpen(b, dir, Options{})
	th, err := NewThumbnailer(ThumbOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	thumbs := make([]image.Image, len(d.Images))
	for b.Loop() {
		th.Run(context.Background(), d.Images, func(r Thumb) { thumbs[r.Index] = r.Image })
	}
	runtime.GC()
	b.ReportMetric(float64(benchmetrics.RSS())/(1<<20), "rss-MB")
	runtime.KeepAlive(thumbs)
}

// BenchmarkLoadForTraining is one 512x512 photo to a 512x512 tensor.
func BenchmarkLoadForTraining(b *testing.B) {
	d := openDreambooth(b)
	p := d.Images[0].Path
	for b.Loop() {
		if _, err := LoadForTraining(p, Reso{512, 512}); err != nil {
			b.Fatal(err)
		}
	}
}
