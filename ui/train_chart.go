package ui

import (
	"image"
	"image/color"
	"math"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"lorastudio/trainer"
)

// chartPoint is one optimizer step on the loss chart.
type chartPoint struct {
	step          float64
	loss, avg, lr float64
}

// lossChart draws the loss of every step, its running average and the
// learning rate with gonum/plot into an image, re-rendered when points
// arrive (at most a few times a second, by the caller) or its size changes.
type lossChart struct {
	widget.BaseWidget
	points   []chartPoint
	logScale bool
	img      *canvas.Image
	// lrNow shows the current learning rate in the legend.
	lrNow *widget.Label
	// empty stands in for the plot until the first step.
	empty *widget.Label
	// drawn is the pixel size and point count of the current image.
	drawnSize   image.Point
	drawnPoints int
	drawnLog    bool
}

func newLossChart() *lossChart {
	c := &lossChart{img: canvas.NewImageFromImage(nil), lrNow: widget.NewLabel("learning rate")}
	c.empty = widget.NewLabelWithStyle("The loss curve appears here once training steps arrive.", fyne.TextAlignCenter, fyne.TextStyle{Italic: true})
	c.empty.Importance = widget.LowImportance
	c.img.FillMode = canvas.ImageFillStretch
	c.img.ScaleMode = canvas.ImageScaleFastest
	c.ExtendBaseWidget(c)
	return c
}

// reset empties the chart for a new run.
func (c *lossChart) reset() {
	c.points = nil
	c.Refresh()
}

func (c *lossChart) add(steps []trainer.Step) {
	for _, s := range steps {
		c.points = append(c.points, chartPoint{step: float64(s.Step), loss: s.Loss, avg: s.AvgLoss, lr: s.LR})
	}
	if len(steps) > 0 {
		c.lrNow.SetText("learning rate (now " + strconv.FormatFloat(steps[len(steps)-1].LR, 'g', 3, 64) + ")")
	}
}

// legend names the chart's series with their colours, drawn by Fyne
// beside the chart's controls rather than over the data.
func (c *lossChart) legend() fyne.CanvasObject {
	pal := chartColors()
	swatch := func(col color.Color, w, h float32) fyne.CanvasObject {
		r := canvas.NewRectangle(col)
		r.SetMinSize(fyne.NewSize(w, h))
		r.CornerRadius = h / 2
		return container.NewCenter(r)
	}
	loss := widget.NewLabel("loss of each step")
	avg := widget.NewLabel("running average (epoch)")
	return container.NewHBox(
		swatch(color.NRGBA{0x5b, 0x9b, 0xd5, 0xff}, 7, 7), loss,
		swatch(pal.avg, 18, 3), avg,
		swatch(pal.lr, 18, 3), c.lrNow)
}

func (c *lossChart) setLogScale(on bool) {
	c.logScale = on
	c.Refresh()
}

func (c *lossChart) MinSize() fyne.Size { return fyne.NewSize(360, 240) }

func (c *lossChart) CreateRenderer() fyne.WidgetRenderer { return &chartRenderer{c: c} }

type chartRenderer struct{ c *lossChart }

func (r *chartRenderer) Layout(size fyne.Size) {
	r.c.img.Resize(size)
	ms := r.c.empty.MinSize()
	r.c.empty.Move(fyne.NewPos((size.Width-ms.Width)/2, (size.Height-ms.Height)/2))
	r.c.empty.Resize(ms)
	r.c.render(size)
}
func (r *chartRenderer) MinSize() fyne.Size           { return r.c.MinSize() }
func (r *chartRenderer) Objects() []fyne.CanvasObject { return []fyne.CanvasObject{r.c.img, r.c.empty} }

func (r *chartRenderer) Refresh() {
	r.c.empty.Hidden = len(r.c.points) > 0
	r.c.render(r.c.Size())
	r.c.img.Refresh()
	r.c.empty.Refresh()
}
func (r *chartRenderer) Destroy() {}

// render draws the chart at size (in device pixels) unless the image
// already shows the same points at that size.
func (c *lossChart) render(size fyne.Size) {
	scale := float32(1)
	if cv := fyne.CurrentApp().Driver().CanvasForObject(c); cv != nil {
		scale = cv.Scale()
	}
	px := image.Pt(int(size.Width*scale), int(size.Height*scale))
	if px.X < 50 || px.Y < 50 {
		return
	}
	if px == c.drawnSize && len(c.points) == c.drawnPoints && c.logScale == c.drawnLog && c.img.Image != nil {
		return
	}
	c.drawnSize, c.drawnPoints, c.drawnLog = px, len(c.points), c.logScale
	c.img.Image = drawLossChart(c.points, c.logScale, px, float64(scale), chartColors())
}

// chartPalette are the theme's colours the chart uses.
type chartPalette struct {
	bg, fg, grid, loss, avg, lr color.Color
}

func chartColors() chartPalette {
	app := fyne.CurrentApp()
	th, v := app.Settings().Theme(), app.Settings().ThemeVariant()
	fg := th.Color(theme.ColorNameForeground, v)
	r, g, b, _ := fg.RGBA()
	return chartPalette{
		bg:   th.Color(theme.ColorNameBackground, v),
		fg:   fg,
		grid: color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 0x22},
		loss: color.NRGBA{0x5b, 0x9b, 0xd5, 0x90},
		avg:  th.Color(theme.ColorNamePrimary, v),
		lr:   color.NRGBA{0xf0, 0x9a, 0x3c, 0xff},
	}
}

// drawLossChart renders the loss plot above a smaller learning-rate plot
// sharing the step axis; without points it is the empty background.
func drawLossChart(points []chartPoint, logScale bool, px image.Point, scale float64, pal chartPalette) image.Image {
	dpi := 96 * scale
	w, h := vg.Length(float64(px.X)/dpi)*vg.Inch, vg.Length(float64(px.Y)/dpi)*vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(int(dpi)), vgimg.UseBackgroundColor(pal.bg))
	dc := draw.New(img)

	if len(points) == 0 {
		return img.Image()
	}
	loss := newStyledPlot(pal)
	loss.Y.Label.Text = "loss (MSE)"
	loss.Y.Tick.Marker = niceTicks{n: 5}
	// The steps are labelled once, under the learning rate.
	loss.X.Tick.Marker = unlabelled{niceTicks{n: 8}}
	lr := newStyledPlot(pal)
	lr.Y.Label.Text = "LR"
	lr.X.Label.Text = "optimizer step"
	lr.Y.Tick.Marker = niceTicks{n: 2}
	lr.X.Tick.Marker = niceTicks{n: 8}

	addLossSeries(loss, points, logScale, pal)
	addLRSeries(lr, points, pal)
	maxStep := points[len(points)-1].step
	loss.X.Min, loss.X.Max, lr.X.Min, lr.X.Max = 0, math.Max(maxStep, 2), 0, math.Max(maxStep, 2)
	lr.Y.Min = 0
	// The learning-rate plot needs room for its axis and a visible line.
	lrHeight := max(h*0.28, min(h*0.4, vg.Points(58)))
	top := draw.Crop(dc, 0, 0, lrHeight, 0)
	bottom := draw.Crop(dc, 0, 0, 0, -(h - lrHeight))
	// Align the two data areas on the left so the steps line up.
	dl, dr := loss.DataCanvas(top), lr.DataCanvas(bottom)
	if d := dl.Min.X - dr.Min.X; d > 0 {
		bottom = draw.Crop(bottom, d, 0, 0, 0)
	} else if d < 0 {
		top = draw.Crop(top, -d, 0, 0, 0)
	}
	loss.Draw(top)
	lr.Draw(bottom)
	return img.Image()
}

func newStyledPlot(pal chartPalette) *plot.Plot {
	p := plot.New()
	p.BackgroundColor = color.Transparent
	p.Title.TextStyle.Color = pal.fg
	p.Title.TextStyle.Font.Variant = "Sans"
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Color = pal.fg
		a.Label.TextStyle.Color = pal.fg
		a.Tick.Color = pal.fg
		a.Tick.Label.Color = pal.fg
		a.Label.TextStyle.Font.Size = vg.Points(10)
		a.Label.TextStyle.Font.Variant = "Sans"
		a.Tick.Label.Font.Size = vg.Points(9)
		a.Tick.Label.Font.Variant = "Sans"
	}
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = pal.grid, pal.grid
	p.Add(g)
	return p
}

// lossGlyph is the radius of a step's loss dot.
const lossGlyph = vg.Length(1.6)

// thin keeps at most n points, evenly spaced, always with the last.
func thin(points []chartPoint, n int) []chartPoint {
	if len(points) <= n {
		return points
	}
	out := make([]chartPoint, 0, n+1)
	stride := float64(len(points)) / float64(n)
	for i := 0.0; int(i) < len(points); i += stride {
		out = append(out, points[int(i)])
	}
	if out[len(out)-1] != points[len(points)-1] {
		out = append(out, points[len(points)-1])
	}
	return out
}

func addLossSeries(p *plot.Plot, points []chartPoint, logScale bool, pal chartPalette) {
	pts := thin(points, 2000)
	raw := make(plotter.XYs, 0, len(pts))
	avg := make(plotter.XYs, 0, len(pts))
	floor := math.Inf(1)
	for _, q := range pts {
		if q.loss > 0 {
			floor = math.Min(floor, q.loss)
		}
	}
	for _, q := range pts {
		l, a := q.loss, q.avg
		if logScale && (l <= 0 || a <= 0) {
			continue
		}
		raw = append(raw, plotter.XY{X: q.step, Y: l})
		avg = append(avg, plotter.XY{X: q.step, Y: a})
	}
	if len(raw) == 0 {
		return
	}
	if logScale {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		p.Y.Min = floor * 0.8
	} else {
		p.Y.Min = 0
	}
	sc, err := plotter.NewScatter(raw)
	if err == nil {
		sc.GlyphStyle.Color = pal.loss
		sc.GlyphStyle.Radius = lossGlyph
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(sc)
	}
	line, err := plotter.NewLine(avg)
	if err == nil {
		line.Color = pal.avg
		line.Width = vg.Points(2.2)
		p.Add(line)
	}
}

func addLRSeries(p *plot.Plot, points []chartPoint, pal chartPalette) {
	pts := thin(points, 2000)
	xy := make(plotter.XYs, len(pts))
	top := 0.0
	for i, q := range pts {
		xy[i] = plotter.XY{X: q.step, Y: q.lr}
		top = math.Max(top, q.lr)
	}
	p.Y.Max = math.Max(top*1.15, 1e-12)
	line, err := plotter.NewLine(xy)
	if err != nil {
		return
	}
	line.Color = pal.lr
	line.Width = vg.Points(1.8)
	p.Add(line)
	// Invisible glyphs as large as the loss plot's, so both plots get the
	// same padding and their step axes line up.
	if sc, err := plotter.NewScatter(xy); err == nil {
		sc.GlyphStyle.Color = color.Transparent
		sc.GlyphStyle.Radius = lossGlyph
		p.Add(sc)
	}
}

// niceTicks puts about n labelled ticks at round values (1, 2 or 5 times
// a power of ten), labelled with just the digits they need: 0.05, 1e-04.
type niceTicks struct{ n int }

func (t niceTicks) Ticks(min, max float64) []plot.Tick {
	if !(max > min) {
		return []plot.Tick{{Value: min, Label: strconv.FormatFloat(min, 'g', 3, 64)}}
	}
	raw := (max - min) / float64(t.n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(min/step) * step; v <= max+step*1e-9; v += step {
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: tickLabel(v, step)})
	}
	return ticks
}

// unlabelled keeps a marker's ticks without their labels.
type unlabelled struct{ plot.Ticker }

func (u unlabelled) Ticks(min, max float64) []plot.Tick {
	ticks := u.Ticker.Ticks(min, max)
	for i := range ticks {
		ticks[i].Label = ""
	}
	return ticks
}

// logTicks labels 1, 2 and 5 times each power of ten on a log axis, with
// unlabelled ticks between, so even a range within one decade has labels.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	if min <= 0 || !(max > min) {
		return niceTicks{n: 5}.Ticks(min, max)
	}
	var ticks []plot.Tick
	for k := math.Floor(math.Log10(min)); k <= math.Ceil(math.Log10(max)); k++ {
		mag := math.Pow(10, k)
		for d := 1.0; d < 10; d++ {
			v := d * mag
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if d == 1 || d == 2 || d == 5 {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// tickLabel writes v with the precision step needs; tiny values (learning
// rates) in exponent form.
func tickLabel(v, step float64) string {
	if v == 0 {
		return "0"
	}
	if step < 1e-3 {
		return strconv.FormatFloat(v, 'e', max(0, int(math.Ceil(-math.Log10(step/math.Abs(v))))-1), 64)
	}
	return strconv.FormatFloat(v, 'f', max(0, int(math.Ceil(-math.Log10(step)))), 64)
}
