package ui

import (
	"path"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"

	"lorastudio/dataset"
)

// newImageGrid is a virtualised grid of the visible images: only the cells
// on screen exist, so it appears at once for thousands of images, and a
// refresh rebinds just those cells to the thumbnails delivered so far.
func (ws *workspace) newImageGrid(cell fyne.Size) *widget.GridWrap {
	g := widget.NewGridWrap(
		func() int { return len(ws.st.visible) },
		func() fyne.CanvasObject { return newThumbCell(cell, ws.tapImage) },
		func(pos widget.GridWrapItemID, o fyne.CanvasObject) {
			if pos >= len(ws.st.visible) {
				return
			}
			id := ws.st.visible[pos]
			o.(*thumbCell).set(id, ws.thumbState(id))
		},
	)
	ws.grids = append(ws.grids, g)
	return g
}

// thumbState gathers what the cell of image id shows.
func (ws *workspace) thumbState(id int) thumbState {
	im := ws.ds.Images[id]
	return thumbState{
		name:     path.Base(im.Rel),
		img:      ws.thumbs.get(id),
		tags:     len(im.Tags),
		warning:  len(im.Problems) > 0,
		failed:   !im.Trainable(),
		selected: ws.st.selected[id],
		current:  id == ws.st.current,
		unsaved:  ws.saves.get(im.CaptionPath).State != dataset.Saved,
	}
}
