package ui

import (
	"image"
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// thumbState is what one grid cell shows; the grid fills it from appState
// each time the cell is bound to an image.
type thumbState struct {
	name     string
	img      image.Image
	tags     int
	warning  bool
	failed   bool
	selected bool
	current  bool
	unsaved  bool
}

// thumbCell is one image in a grid: the thumbnail (or a placeholder while
// it is made), the file name, the tag count, and badges for problems and
// unsaved edits. It reports taps with the keyboard modifiers held, so the
// grid can do ctrl/shift multi-selection.
type thumbCell struct {
	widget.BaseWidget

	id    int
	size  fyne.Size
	onTap func(id int, mod fyne.KeyModifier)

	mod fyne.KeyModifier

	frame   *canvas.Rectangle
	holder  *canvas.Rectangle
	pic     *canvas.Image
	name    *widget.Label
	count   *widget.Label
	problem *widget.Icon
	broken  *widget.Icon
	dirty   *canvas.Circle
}

func newThumbCell(size fyne.Size, onTap func(int, fyne.KeyModifier)) *thumbCell {
	c := &thumbCell{id: -1, size: size, onTap: onTap}
	c.frame = canvas.NewRectangle(color.Transparent)
	c.frame.CornerRadius = theme.SelectionRadiusSize()
	c.holder = canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))
	c.holder.CornerRadius = theme.InputRadiusSize()
	c.pic = canvas.NewImageFromImage(nil)
	c.pic.FillMode = canvas.ImageFillContain
	c.pic.ScaleMode = canvas.ImageScaleFastest
	c.name = widget.NewLabel("")
	c.name.Truncation = fyne.TextTruncateEllipsis
	c.name.SizeName = theme.SizeNameCaptionText
	c.count = widget.NewLabel("")
	c.count.SizeName = theme.SizeNameCaptionText
	c.count.Importance = widget.LowImportance
	c.problem = widget.NewIcon(theme.WarningIcon())
	c.broken = widget.NewIcon(theme.NewDisabledResource(theme.BrokenImageIcon()))
	c.broken.Hide()
	c.dirty = canvas.NewCircle(theme.Color(theme.ColorNameWarning))
	c.ExtendBaseWidget(c)
	return c
}

func (c *thumbCell) CreateRenderer() fyne.WidgetRenderer {
	dot := container.NewGridWrap(fyne.NewSquareSize(10), c.dirty)
	badges := container.NewHBox(layout.NewSpacer(), container.NewCenter(dot), c.problem)
	picture := container.NewStack(c.holder, container.NewPadded(c.pic), container.NewCenter(c.broken), container.NewVBox(badges))
	caption := container.NewBorder(nil, nil, nil, c.count, c.name)
	body := container.NewBorder(nil, caption, nil, nil, picture)
	return widget.NewSimpleRenderer(container.NewStack(c.frame, container.NewPadded(body)))
}

// MinSize is fixed so the grid lays out every cell alike.
func (c *thumbCell) MinSize() fyne.Size { return c.size }

// set shows st; the cell may have shown another image before.
func (c *thumbCell) set(id int, st thumbState) {
	c.id = id
	c.name.SetText(st.name)
	switch {
	case st.failed:
		c.count.SetText("skipped")
	case st.tags == 0:
		c.count.SetText("no tags")
	case st.tags == 1:
		c.count.SetText("1 tag")
	default:
		c.count.SetText(itoa(st.tags) + " tags")
	}
	if st.img != c.pic.Image {
		c.pic.Image = st.img
		c.pic.Refresh()
	}
	if st.failed && st.img == nil {
		c.broken.Show()
	} else {
		c.broken.Hide()
	}
	switch {
	case st.failed:
		c.problem.SetResource(theme.NewErrorThemedResource(theme.ErrorIcon()))
		c.problem.Show()
	case st.warning:
		c.problem.SetResource(theme.NewWarningThemedResource(theme.WarningIcon()))
		c.problem.Show()
	default:
		c.problem.Hide()
	}
	if st.unsaved {
		c.dirty.Show()
	} else {
		c.dirty.Hide()
	}
	switch {
	case st.current:
		c.frame.FillColor = theme.Color(theme.ColorNameSelection)
		c.frame.StrokeColor = theme.Color(theme.ColorNamePrimary)
		c.frame.StrokeWidth = 2
	case st.selected:
		c.frame.FillColor = theme.Color(theme.ColorNameSelection)
		c.frame.StrokeWidth = 0
	default:
		c.frame.FillColor = color.Transparent
		c.frame.StrokeWidth = 0
	}
	c.frame.Refresh()
}

func (c *thumbCell) MouseDown(e *desktop.MouseEvent) { c.mod = e.Modifier }
func (c *thumbCell) MouseUp(*desktop.MouseEvent)     {}

func (c *thumbCell) Tapped(*fyne.PointEvent) {
	mod := c.mod
	c.mod = 0
	if c.onTap != nil && c.id >= 0 {
		c.onTap(c.id, mod)
	}
}

// compactImage stores a thumbnail as 4:2:0 YCbCr, 1.5 bytes a pixel
// instead of RGBA's 4, so thousands of thumbnails fit in memory. Cached
// thumbnails already decode from JPEG in that form.
func compactImage(img image.Image) image.Image {
	if y, ok := img.(*image.YCbCr); ok && y.SubsampleRatio == image.YCbCrSubsampleRatio420 {
		return img
	}
	b := img.Bounds()
	out := image.NewYCbCr(b, image.YCbCrSubsampleRatio420)
	rgb := func(x, y int) (uint8, uint8, uint8) {
		if m, ok := img.(*image.RGBA); ok {
			i := m.PixOffset(x, y)
			return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
		}
		c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
		return c.R, c.G, c.B
	}
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			// Luma per pixel, chroma averaged over the 2x2 block.
			var cbSum, crSum, n int
			for dy := 0; dy < 2 && y+dy < b.Max.Y; dy++ {
				for dx := 0; dx < 2 && x+dx < b.Max.X; dx++ {
					r, g, bl := rgb(x+dx, y+dy)
					yy, cb, cr := color.RGBToYCbCr(r, g, bl)
					out.Y[out.YOffset(x+dx, y+dy)] = yy
					cbSum += int(cb)
					crSum += int(cr)
					n++
				}
			}
			ci := out.COffset(x, y)
			out.Cb[ci] = uint8((cbSum + n/2) / n)
			out.Cr[ci] = uint8((crSum + n/2) / n)
		}
	}
	return out
}
