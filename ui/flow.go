package ui

import (
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
)

// flowLayout places objects left to right at their minimum size and wraps
// to a new row when the width runs out, like words in a paragraph: the
// layout tag chips need.
type flowLayout struct {
	// width is the width of the last Layout, so MinSize can report the
	// height the wrapped rows really take.
	width float32
}

func (f *flowLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	f.width = size.Width
	f.place(objs, size.Width, true)
}

func (f *flowLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	var widest float32
	for _, o := range objs {
		if o.Visible() {
			widest = max(widest, o.MinSize().Width)
		}
	}
	width := max(f.width, widest)
	return fyne.NewSize(widest, f.place(objs, width, false))
}

// place walks the rows for the given width, moving the objects when move
// is set, and returns the total height.
func (f *flowLayout) place(objs []fyne.CanvasObject, width float32, move bool) float32 {
	gap := theme.Padding()
	var x, y, rowH float32
	for _, o := range objs {
		if !o.Visible() {
			continue
		}
		m := o.MinSize()
		if x > 0 && x+m.Width > width {
			x, y = 0, y+rowH+gap
			rowH = 0
		}
		if move {
			o.Move(fyne.NewPos(x, y))
			o.Resize(m)
		}
		x += m.Width + gap
		rowH = max(rowH, m.Height)
	}
	return y + rowH
}

// coalescer runs fn on the UI goroutine at most once per interval however
// often Trigger is called, so a burst of background events (thumbnails,
// saves) becomes a few refreshes instead of thousands.
type coalescer struct {
	interval time.Duration
	do       func(func())
	fn       func()

	mu sync.Mutex
	// pending is set while a timer runs; due from Trigger until fn
	// starts, so Flush knows whether a run is owed.
	pending, due bool
}

// newCoalescer returns a coalescer that hands fn to do (fyne.Do in the
// app) once the interval has passed.
func newCoalescer(interval time.Duration, do func(func()), fn func()) *coalescer {
	return &coalescer{interval: interval, do: do, fn: fn}
}

// Trigger asks for fn to run soon; safe from any goroutine.
func (c *coalescer) Trigger() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.due = true
	if c.pending {
		return
	}
	c.pending = true
	time.AfterFunc(c.interval, func() {
		c.mu.Lock()
		c.pending = false
		c.mu.Unlock()
		c.do(c.run)
	})
}

// Flush runs fn now when a Trigger has not been followed by a run yet, as
// before the window closes; the timer's run then finds nothing to do. It
// runs fn on the calling goroutine, so call it from the UI goroutine.
func (c *coalescer) Flush() { c.run() }

func (c *coalescer) run() {
	c.mu.Lock()
	due := c.due
	c.due = false
	c.mu.Unlock()
	if due {
		c.fn()
	}
}
