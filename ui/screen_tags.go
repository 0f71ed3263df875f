package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// tagsScreen is where tags are edited: the tag panel (counts, filter) on
// the left, the images in the middle, the current image's editor on the
// right.
func (ws *workspace) tagsScreen() fyne.CanvasObject {
	grid := ws.newImageGrid(fyne.NewSize(136, 164))
	all := widget.NewButton("Select all", ws.selectAllVisible)
	none := widget.NewButton("Clear", func() {
		ws.st.selectOnly(nil)
		ws.refreshGrids()
		ws.editor.refreshMulti()
		ws.status.refresh()
	})
	bulk := widget.NewButtonWithIcon("Bulk edit…", theme.DocumentCreateIcon(), ws.showBulkDialog)
	bulk.Importance = widget.HighImportance
	bar := container.NewHBox(all, none, bulk)
	center := container.NewBorder(bar, nil, nil, nil, grid)

	right := container.NewHSplit(center, container.NewPadded(ws.editor.object()))
	right.SetOffset(0.5)
	left := container.NewHSplit(container.NewPadded(ws.panel.object()), right)
	left.SetOffset(0.22)
	return left
}

// selectAllVisible selects every image the filter shows.
func (ws *workspace) selectAllVisible() {
	ws.st.selectOnly(ws.st.visible)
	ws.refreshGrids()
	ws.editor.refreshMulti()
	ws.status.refresh()
}
