package ui

import (
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// datasetScreen is the overview: the dataset's numbers on top, a large
// thumbnail grid, and beside it the folders (repeats, class tokens) and
// the files with problems.
func (ws *workspace) datasetScreen() fyne.CanvasObject {
	title := widget.NewLabelWithStyle(datasetName(ws.ds.Root), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameSubHeadingText
	where := widget.NewLabel(ws.ds.Root)
	where.Importance = widget.LowImportance
	where.Truncation = fyne.TextTruncateEllipsis
	edit := widget.NewButtonWithIcon("Edit tags", theme.DocumentCreateIcon(), func() { ws.nav.SelectIndex(1) })
	edit.Importance = widget.HighImportance
	header := container.NewBorder(nil, nil, title, edit, where)

	grid := ws.newImageGrid(fyne.NewSize(176, 204))
	var side fyne.CanvasObject
	if len(ws.summary.rows) == 0 {
		ok := widget.NewLabelWithStyle("✓ No problem files: every image is usable.", fyne.TextAlignLeading, fyne.TextStyle{})
		ok.Importance = widget.SuccessImportance
		side = container.NewBorder(nil, ok, nil, nil, ws.foldersCard())
	} else {
		split := container.NewVSplit(ws.foldersCard(), ws.summary.problemList())
		split.SetOffset(0.5)
		side = split
	}
	split := container.NewHSplit(grid, container.NewPadded(side))
	split.SetOffset(0.66)
	top := container.NewVBox(header, ws.summary.tiles())
	return container.NewPadded(container.NewBorder(top, nil, nil, nil, split))
}

// datasetName names a dataset by its folder; for kohya's dataset/img
// layout that is the folder above img.
func datasetName(root string) string {
	if strings.EqualFold(filepath.Base(root), "img") {
		return filepath.Base(filepath.Dir(root))
	}
	return filepath.Base(root)
}
