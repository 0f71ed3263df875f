package ui

import (
	"fmt"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lorastudio/tagger"
)

// dreamboothDir is the shared photo set the timing targets use;
// benchmarks that need it skip on a fresh clone without it.
const dreamboothDir = "/work/shared/datasets/dreambooth-512"

// benchOpen measures Open until every thumbnail is in the grid. With a
// fresh cache each time it is the cold start; with a shared one, warm.
func benchOpen(b *testing.B, dir string, cold bool) {
	if _, err := os.Stat(dir); err != nil {
		b.Skipf("no dataset at %s", dir)
	}
	h := newHarness(b)
	cache := b.TempDir()
	warmUp(h, dir, cache)
	b.ResetTimer()
	for i := range b.N {
		if cold {
			h.s.thumbDir = filepath.Join(cache, fmt.Sprint("cold", i))
		}
		start := time.Now()
		openAndWait(h, dir)
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/open")
		h.s.closeDataset()
		h.drain()
	}
}

func warmUp(h *harness, dir, cache string) {
	h.s.thumbDir = cache
	openAndWait(h, dir)
	h.s.closeDataset()
	h.drain()
}

// openAndWait opens dir and pumps the UI queue until the grid shows every
// thumbnail.
func openAndWait(h *harness, dir string) {
	h.s.Open(dir)
	for {
		h.drain()
		if ws := h.s.ws; ws != nil {
			done, total, _ := ws.thumbs.progress()
			if done == total {
				ws.backgroundRefresh()
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkOpenDreamboothCold(b *testing.B) { benchOpen(b, dreamboothDir, true) }
func BenchmarkOpenDreamboothWarm(b *testing.B) { benchOpen(b, dreamboothDir, false) }

// TestMain removes the generated benchmark dataset.
func TestMain(m *testing.M) {
	code := m.Run()
	if bigDataset.dir != "" {
		os.RemoveAll(bigDataset.dir)
	}
	os.Exit(code)
}

// bigDataset writes n small captioned images once per process.
var bigDataset struct {
	once sync.Once
	dir  string
}

func makeBigDataset(b *testing.B, n int) string {
	bigDataset.once.Do(func() {
		dir, err := os.MkdirTemp("", "lorastudio-bench-*")
		if err != nil {
			b.Fatal(err)
		}
		vocab := make([]string, 400)
		for i := range vocab {
			vocab[i] = fmt.Sprintf("tag %d", i)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range n {
			path := filepath.Join(dir, fmt.Sprintf("%d_concept%d", 1+i%3, i%5), fmt.Sprintf("img%05d.png", i))
			writePNG(b, path, 24, 16, color.NRGBA{R: uint8(i), G: uint8(i >> 8), B: 90, A: 255})
			tags := make([]string, 12)
			for j := range tags {
				tags[j] = vocab[int(rng.ExpFloat64()*60)%len(vocab)]
			}
			if err := os.WriteFile(strings.TrimSuffix(path, ".png")+".txt", []byte(strings.Join(tags, ", ")), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		bigDataset.dir = dir
	})
	return bigDataset.dir
}

func BenchmarkOpen5000Warm(b *testing.B) {
	benchOpen(b, makeBigDataset(b, 5000), false)
}

// BenchmarkTagPanel5000 is the tag panel's refresh (counts, sort, search)
// after an edit on 5,000 images.
func BenchmarkTagPanel5000(b *testing.B) {
	ws := openBig(b)
	b.ResetTimer()
	for range b.N {
		ws.panel.refresh()
	}
}

// BenchmarkFilter5000 applies an all-of/none-of filter to 5,000 images and
// redraws the grids.
func BenchmarkFilter5000(b *testing.B) {
	ws := openBig(b)
	filters := []tagger.Filter{
		{AllOf: []string{"tag 1"}, NoneOf: []string{"tag 2"}},
		{AnyOf: []string{"tag 3", "tag 40"}},
		{},
	}
	b.ResetTimer()
	for i := range b.N {
		ws.setFilter(filters[i%len(filters)])
	}
}

// BenchmarkBulkAdd5000 adds a tag to all 5,000 images as one undoable
// step, with every view following, then undoes it.
func BenchmarkBulkAdd5000(b *testing.B) {
	ws := openBig(b)
	b.ResetTimer()
	for range b.N {
		ws.ed.AddTag(ws.ds.Images, "bench", true)
		ws.undo()
	}
}

// openBig opens the 5,000-image dataset; closing it (and writing the
// captions the benchmark changed) is left out of the timing.
func openBig(b *testing.B) *workspace {
	dir := makeBigDataset(b, 5000)
	h := newHarness(b)
	h.s.thumbDir = b.TempDir()
	h.s.saveDelay = time.Hour
	openAndWait(h, dir)
	b.Cleanup(b.StopTimer)
	return h.s.ws
}
