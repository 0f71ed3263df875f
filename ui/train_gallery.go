package ui

import (
	"fmt"
	"path/filepath"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/trainer"
)

// sampleGallery shows the preview images a run makes, newest first, each
// with its prompt; a click enlarges one.
type sampleGallery struct {
	win     fyne.Window
	samples []trainer.Sample
	grid    *widget.GridWrap
	empty   *widget.Label
	box     fyne.CanvasObject
}

func newSampleGallery(win fyne.Window) *sampleGallery {
	g := &sampleGallery{win: win}
	g.grid = widget.NewGridWrap(
		func() int { return len(g.samples) },
		func() fyne.CanvasObject { return newSampleCell(g) },
		func(id widget.GridWrapItemID, o fyne.CanvasObject) {
			o.(*sampleCell).show(g.samples[len(g.samples)-1-id])
		})
	g.empty = widget.NewLabelWithStyle("Samples appear here while training (add prompts under Samples).",
		fyne.TextAlignCenter, fyne.TextStyle{Italic: true})
	g.empty.Importance = widget.LowImportance
	g.box = container.NewStack(g.grid, container.NewCenter(g.empty))
	return g
}

func (g *sampleGallery) object() fyne.CanvasObject { return g.box }

func (g *sampleGallery) reset() {
	g.samples = nil
	g.empty.Show()
	g.grid.Refresh()
}

func (g *sampleGallery) add(s []trainer.Sample) {
	if len(s) == 0 {
		return
	}
	g.samples = append(g.samples, s...)
	g.empty.Hide()
	g.grid.Refresh()
}

// enlarge shows one sample at full size with its prompt to copy.
func (g *sampleGallery) enlarge(s trainer.Sample) {
	img := canvas.NewImageFromFile(s.Path)
	img.FillMode = canvas.ImageFillContain
	img.SetMinSize(fyne.NewSquareSize(512))
	prompt := widget.NewMultiLineEntry()
	prompt.SetText(s.Prompt)
	prompt.Wrapping = fyne.TextWrapWord
	prompt.SetMinRowsVisible(2)
	info := widget.NewLabel(fmt.Sprintf("Step %d, epoch %d · %s", s.Step, s.Epoch, s.Path))
	info.Truncation = fyne.TextTruncateEllipsis
	info.Importance = widget.LowImportance
	d := dialog.NewCustom(filepath.Base(s.Path), "Close", container.NewBorder(nil, container.NewVBox(prompt, info), nil, nil, img), g.win)
	d.Resize(fyne.NewSize(640, 720))
	d.Show()
}

// sampleCell is one thumbnail of the gallery.
type sampleCell struct {
	widget.BaseWidget
	g      *sampleGallery
	s      trainer.Sample
	img    *canvas.Image
	prompt *widget.Label
	step   *widget.Label
}

func newSampleCell(g *sampleGallery) *sampleCell {
	c := &sampleCell{g: g, img: canvas.NewImageFromImage(nil)}
	c.img.FillMode = canvas.ImageFillContain
	c.img.SetMinSize(fyne.NewSquareSize(104))
	c.prompt = widget.NewLabel("")
	c.prompt.Truncation = fyne.TextTruncateEllipsis
	c.step = widget.NewLabel("")
	c.step.Importance = widget.LowImportance
	c.step.SizeName = theme.SizeNameCaptionText
	c.ExtendBaseWidget(c)
	return c
}

func (c *sampleCell) show(s trainer.Sample) {
	if c.s.Path != s.Path {
		c.img.File = s.Path
		c.img.Image = nil
		c.img.Refresh()
	}
	c.s = s
	c.prompt.SetText(s.Prompt)
	c.step.SetText(fmt.Sprintf("step %d · epoch %d", s.Step, s.Epoch))
}

func (c *sampleCell) Tapped(*fyne.PointEvent) {
	if c.s.Path != "" {
		c.g.enlarge(c.s)
	}
}

func (c *sampleCell) CreateRenderer() fyne.WidgetRenderer {
	box := container.NewBorder(nil, container.NewVBox(c.prompt, c.step), nil, nil, c.img)
	return widget.NewSimpleRenderer(container.NewGridWrap(fyne.NewSize(140, 172), box))
}
