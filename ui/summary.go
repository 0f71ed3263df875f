package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/dataset"
	"lorastudio/tagger"
)

// summaryView is the dataset at a glance: tiles with the numbers that
// matter for training, and the list of files with problems.
type summaryView struct {
	ws *workspace

	images, folders, steps, reso, untagged, dupes *tile

	problems *widget.List
	rows     []problemRow
	title    *widget.Label
}

// problemRow is one problem of one image.
type problemRow struct {
	image   int
	problem dataset.Problem
}

func newSummaryView(ws *workspace) *summaryView {
	v := &summaryView{ws: ws}
	v.images = newTile("images", nil)
	v.folders = newTile("folders", nil)
	v.steps = newTile("steps per epoch", nil)
	v.reso = newTile("smallest – largest", nil)
	v.untagged = newTile("without tags", func() {
		ws.nav.SelectIndex(1)
		ws.setFilter(tagger.Filter{Untagged: true})
	})
	v.dupes = newTile("exact duplicates", func() {
		var ims []*dataset.Image
		for _, g := range ws.ds.Summary().Duplicates {
			ims = append(ims, g...)
		}
		ws.nav.SelectIndex(1)
		ws.selectImages(ims)
	})
	v.title = widget.NewLabelWithStyle("Problems", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	v.problems = widget.NewList(
		func() int { return len(v.rows) },
		func() fyne.CanvasObject {
			name := widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
			name.Truncation = fyne.TextTruncateEllipsis
			detail := widget.NewLabel("")
			detail.Truncation = fyne.TextTruncateEllipsis
			detail.SizeName = theme.SizeNameCaptionText
			return container.NewBorder(nil, nil, widget.NewIcon(nil), nil, container.NewVBox(name, detail))
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			if i >= len(v.rows) {
				return
			}
			r := v.rows[i]
			row := o.(*fyne.Container)
			text := row.Objects[0].(*fyne.Container)
			text.Objects[0].(*widget.Label).SetText(ws.ds.Images[r.image].Rel)
			text.Objects[1].(*widget.Label).SetText(problemText(r.problem))
			var icon fyne.Resource = theme.NewWarningThemedResource(theme.WarningIcon())
			if r.problem.Severity == dataset.Error {
				icon = theme.NewErrorThemedResource(theme.ErrorIcon())
			}
			row.Objects[1].(*widget.Icon).SetResource(icon)
		},
	)
	v.problems.OnSelected = func(i widget.ListItemID) {
		v.problems.UnselectAll()
		if i < len(v.rows) {
			ws.nav.SelectIndex(1)
			ws.selectImages([]*dataset.Image{ws.ds.Images[v.rows[i].image]})
		}
	}
	v.refresh()
	return v
}

// tiles is the row of numbers.
func (v *summaryView) tiles() fyne.CanvasObject {
	return container.NewGridWithColumns(6, v.images, v.folders, v.steps, v.reso, v.untagged, v.dupes)
}

// problemList is the list of problem files, with a note when none.
func (v *summaryView) problemList() fyne.CanvasObject {
	return container.NewBorder(v.title, nil, nil, nil, v.problems)
}

func (v *summaryView) refresh() {
	s := v.ws.ds.Summary()
	v.images.set(itoa(s.Images), imagesCaption(s))
	v.folders.set(itoa(len(s.Folders)), "folders (concepts)")
	v.steps.set(itoa(s.StepsPerEpoch), "steps per epoch")
	switch {
	case s.Trainable > 0 && s.MinReso == s.MaxReso:
		v.reso.set(s.MinReso.String(), "every image's size")
	case s.Trainable > 0:
		v.reso.set(fmt.Sprintf("%v – %v", s.MinReso, s.MaxReso), "smallest – largest image")
	default:
		v.reso.set("–", "no usable image")
	}
	v.untagged.set(itoa(s.Untagged), "without tags")
	v.untagged.setAlert(s.Untagged > 0)
	v.dupes.set(itoa(len(s.Duplicates)), "groups of exact duplicates")
	v.dupes.setAlert(len(s.Duplicates) > 0)

	v.rows = v.rows[:0]
	for i, im := range v.ws.ds.Images {
		for _, p := range im.Problems {
			v.rows = append(v.rows, problemRow{i, p})
		}
	}
	if len(v.rows) == 0 {
		v.title.SetText("Problems: none")
	} else {
		v.title.SetText(fmt.Sprintf("Problems (%s with errors are skipped by training)", plural(len(s.Failed), "file", "files")))
	}
	v.problems.Refresh()
}

// imagesCaption says how many images train.
func imagesCaption(s dataset.Summary) string {
	if len(s.Failed) == 0 {
		return "images, all usable"
	}
	return fmt.Sprintf("images, %s skipped", itoa(len(s.Failed)))
}

// tile is one number of the summary with its caption; a tile with an
// action is tappable.
type tile struct {
	widget.BaseWidget

	value   *widget.Label
	caption *widget.Label
	bg      *canvas.Rectangle
	onTap   func()
}

func newTile(caption string, onTap func()) *tile {
	t := &tile{onTap: onTap}
	t.value = widget.NewLabelWithStyle("–", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	t.value.SizeName = theme.SizeNameSubHeadingText
	t.value.Truncation = fyne.TextTruncateEllipsis
	t.caption = widget.NewLabel(caption)
	t.caption.SizeName = theme.SizeNameCaptionText
	t.caption.Truncation = fyne.TextTruncateEllipsis
	t.bg = canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))
	t.bg.CornerRadius = theme.InputRadiusSize() * 2
	t.ExtendBaseWidget(t)
	return t
}

func (t *tile) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(container.NewStack(t.bg, container.NewPadded(container.NewVBox(t.value, t.caption))))
}

func (t *tile) set(value, caption string) {
	t.value.SetText(value)
	t.caption.SetText(caption)
}

// setAlert colours the value when the number needs attention.
func (t *tile) setAlert(on bool) {
	if on {
		t.value.Importance = widget.WarningImportance
	} else {
		t.value.Importance = widget.MediumImportance
	}
	t.value.Refresh()
}

func (t *tile) Tapped(*fyne.PointEvent) {
	if t.onTap != nil {
		t.onTap()
	}
}

// Cursor shows a hand over tiles that do something.
func (t *tile) Cursor() desktop.Cursor {
	if t.onTap != nil {
		return desktop.PointerCursor
	}
	return desktop.DefaultCursor
}
