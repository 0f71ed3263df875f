package dataset

import (
	"context"
	"image/color"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestThumbnailCache(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "wide.png", encodePNG(t, gradient(400, 100)))
	writeFile(t, dir, "tall.jpg", encodeJPEG(t, gradient(60, 300)))
	writeFile(t, dir, "tiny.png", encodePNG(t, solid(10, 10, color.Black)))
	writeFile(t, dir, "rotated.jpg", withOrientation(encodeJPEG(t, gradient(100, 50)), 6, false))
	writeFile(t, dir, "broken.jpg", []byte("not a jpeg"))
	d := mustOpen(t, dir, Options{})
	th, err := NewThumbnailer(ThumbOptions{Dir: t.TempDir(), Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	run := func() []Thumb {
		out := make([]Thumb, len(d.Images))
		last := 0
		err := th.Run(context.Background(), d.Images, func(r Thumb) {
			if r.Done != last+1 || r.Total != len(d.Images) {
				t.Errorf("progress %d/%d after %d", r.Done, r.Total, last)
			}
			last = r.Done
			out[r.Index] = r
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	sizes := map[string][2]int{"wide.png": {64, 16}, "tall.jpg": {13, 64}, "tiny.png": {10, 10}, "rotated.jpg": {32, 64}}
	cold := run()
	for i, r := range cold {
		im := d.Images[i]
		if im.Rel == "broken.jpg" {
			if r.Err == nil {
				t.Error("broken file got a thumbnail")
			}
			continue
		}
		if r.Err != nil || r.Cached {
			t.Errorf("%s cold: err %v cached %v", im.Rel, r.Err, r.Cached)
			continue
		}
		b := r.Image.Bounds()
		if want := sizes[im.Rel]; b.Dx() != want[0] || b.Dy() != want[1] {
			t.Errorf("%s: %v, want %v", im.Rel, b.Size(), want)
		}
	}
	warm := run()
	for i, r := range warm {
		if d.Images[i].Rel != "broken.jpg" && (!r.Cached || r.Err != nil) {
			t.Errorf("%s warm: cached %v err %v", d.Images[i].Rel, r.Cached, r.Err)
		}
	}
	// A changed file misses the cache.
	p := byRel(t, d, "wide.png").Path
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if _, cached, err := th.Get(p); err != nil || cached {
		t.Errorf("after touch: cached %v err %v", cached, err)
	}
	if _, cached, err := th.Get(p); err != nil || !cached {
		t.Errorf("second get: cached %v err %v", cached, err)
	}
}

func TestThumbnailCancel(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		writeFile(t, dir, n+".png", encodePNG(t, gradient(300, 300)))
	}
	d := mustOpen(t, dir, Options{})
	th, err := NewThumbnailer(ThumbOptions{Dir: t.TempDir(), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	err = th.Run(ctx, d.Images, func(Thumb) {
		if n.Add(1) == 2 {
			cancel()
		}
	})
	if err == nil || int(n.Load()) >= len(d.Images) {
		t.Errorf("cancel: err %v after %d of %d", err, n.Load(), len(d.Images))
	}
}
