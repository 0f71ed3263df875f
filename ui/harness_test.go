package ui

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
)

// harness runs a Studio in a fyne/test window. Work the studio hands to
// the UI goroutine is queued and run by pump on the test goroutine, so
// tests stay deterministic and free of data races.
type harness struct {
	t   testing.TB
	s   *Studio
	win fyne.Window

	mu    sync.Mutex
	queue []func()
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	a := test.NewTempApp(t)
	h := &harness{t: t}
	h.win = a.NewWindow("test")
	h.s = newStudio(a, h.win, filepath.Join(t.TempDir(), "settings.json"), h.do)
	h.s.thumbDir = t.TempDir()
	h.s.saveDelay = 30 * time.Millisecond
	h.win.Resize(fyne.NewSize(1280, 800))
	t.Cleanup(func() {
		h.s.closeDataset()
		h.drain()
	})
	return h
}

func (h *harness) do(fn func()) {
	h.mu.Lock()
	h.queue = append(h.queue, fn)
	h.mu.Unlock()
}

// drain runs the queued UI work until the queue is empty.
func (h *harness) drain() {
	for {
		h.mu.Lock()
		q := h.queue
		h.queue = nil
		h.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, fn := range q {
			fn()
		}
	}
}

// pump runs queued UI work until cond holds, failing after a timeout.
func (h *harness) pump(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.drain()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// open opens dir and waits until the workspace and every thumbnail are
// there.
func (h *harness) open(dir string) *workspace {
	h.t.Helper()
	h.s.Open(dir)
	h.pump("the dataset to open", func() bool { return h.s.ws != nil })
	ws := h.s.ws
	h.pump("thumbnails", func() bool {
		done, total, _ := ws.thumbs.progress()
		return done == total
	})
	// The last delivery's refresh is coalesced and may still be pending.
	ws.backgroundRefresh()
	return ws
}

// writeDataset writes a small kohya dataset: 10_cat with four captioned
// images, plain/ with two uncaptioned ones, and returns its root.
func writeDataset(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := []struct {
		rel, caption string
	}{
		{"10_cat/a.png", "cat, sitting, indoors"},
		{"10_cat/b.png", "cat, outdoors"},
		{"10_cat/c.png", "cat, grass, outdoors"},
		{"10_cat/d.png", "dog"},
		{"plain/e.png", ""},
		{"plain/f.png", ""},
	}
	for i, f := range files {
		path := filepath.Join(root, filepath.FromSlash(f.rel))
		writePNG(t, path, 48+8*i, 40, color.NRGBA{R: uint8(40 * i), G: 120, B: 200, A: 255})
		if f.caption != "" {
			writeFile(t, path[:len(path)-len(".png")]+".txt", f.caption)
		}
	}
	return root
}

func writePNG(t testing.TB, path string, w, h int, c color.Color) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			if (x/8+y/8)%2 == 0 {
				img.Set(x, y, c)
			} else {
				img.Set(x, y, color.White)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cells returns the thumbnail cells laid out in the window.
func (h *harness) cells() []*thumbCell {
	var out []*thumbCell
	for _, o := range test.LaidOutObjects(h.win.Content()) {
		if c, ok := o.(*thumbCell); ok && c.Visible() && c.id >= 0 {
			out = append(out, c)
		}
	}
	return out
}

// imageIndex finds an image by its path relative to the root.
func imageIndex(t *testing.T, ws *workspace, rel string) int {
	t.Helper()
	for i, im := range ws.ds.Images {
		if im.Rel == rel {
			return i
		}
	}
	t.Fatalf("no image %s", rel)
	return -1
}

// waitFile pumps until the file at path holds want.
func (h *harness) waitFile(path, want string) {
	h.t.Helper()
	h.pump(fmt.Sprintf("%s to hold %q", filepath.Base(path), want), func() bool {
		b, err := os.ReadFile(path)
		return err == nil && string(b) == want
	})
}

// tapDialogButton taps the button labelled text in the top overlay (the
// dialog on show).
func (h *harness) tapDialogButton(text string) {
	h.t.Helper()
	top := h.win.Canvas().Overlays().Top()
	if top == nil {
		h.t.Fatalf("no dialog to tap %q in", text)
	}
	for _, o := range test.LaidOutObjects(top) {
		if b, ok := o.(*widget.Button); ok && b.Text == text && !b.Disabled() {
			test.Tap(b)
			return
		}
	}
	h.t.Fatalf("no enabled %q button in the dialog", text)
}
