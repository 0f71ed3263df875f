package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// tagChip is one tag of the image being edited: its text, its position
// (the first tags are what keep_tokens keeps), a remove button; a tap
// opens a menu of moves, and dragging it onto another chip reorders.
type tagChip struct {
	widget.BaseWidget

	tag   string
	index int
	lead  bool

	onMenu   func(c *tagChip, at fyne.Position)
	onRemove func(c *tagChip)
	onDrop   func(c *tagChip, at fyne.Position)

	dragAt   fyne.Position
	dragging bool
}

func newTagChip(tag string, index int, lead bool) *tagChip {
	c := &tagChip{tag: tag, index: index, lead: lead}
	c.ExtendBaseWidget(c)
	return c
}

func (c *tagChip) CreateRenderer() fyne.WidgetRenderer {
	bg := canvas.NewRectangle(chipFill(c.lead))
	bg.CornerRadius = theme.InputRadiusSize() * 2
	bg.StrokeWidth = 1
	bg.StrokeColor = theme.Color(theme.ColorNameInputBorder)
	text := canvas.NewText(c.tag, theme.Color(theme.ColorNameForeground))
	remove := widget.NewButtonWithIcon("", theme.CancelIcon(), func() {
		if c.onRemove != nil {
			c.onRemove(c)
		}
	})
	remove.Importance = widget.LowImportance
	body := container.NewBorder(nil, nil, nil, remove, container.NewPadded(text))
	return widget.NewSimpleRenderer(container.NewStack(bg, body))
}

// chipFill tints the leading chips (the trigger word and class tokens
// that kohya's keep_tokens protects) with the accent colour.
func chipFill(lead bool) color.Color {
	if lead {
		return color.NRGBA{R: 0x7c, G: 0x5c, B: 0xf0, A: 0x40}
	}
	return theme.Color(theme.ColorNameButton)
}

func (c *tagChip) Tapped(e *fyne.PointEvent) {
	if c.onMenu != nil {
		c.onMenu(c, e.AbsolutePosition)
	}
}

func (c *tagChip) TappedSecondary(e *fyne.PointEvent) { c.Tapped(e) }

func (c *tagChip) Dragged(e *fyne.DragEvent) {
	c.dragging = true
	c.dragAt = e.AbsolutePosition
	c.Move(c.Position().Add(e.Dragged))
}

func (c *tagChip) DragEnd() {
	if !c.dragging {
		return
	}
	c.dragging = false
	if c.onDrop != nil {
		c.onDrop(c, c.dragAt)
	}
}
