package ui

import (
	"slices"

	"fyne.io/fyne/v2"

	"lorastudio/dataset"
)

// appState is everything the screens show, kept out of the widgets so the
// screens can be rebuilt from it and tests can inspect it. It is owned by
// the UI goroutine.
type appState struct {
	settings     Settings
	settingsPath string

	ds *dataset.Dataset

	// current is the image in the tag editor, an index into ds.Images;
	// -1 when none.
	current int
	// selected is the set bulk edits apply to.
	selected map[int]bool
	// anchor is where a shift-click range starts.
	anchor int
	// visible lists the images the grids show (those passing the tag
	// filter), in dataset order.
	visible []int
}

// resetDataset points the state at a freshly opened dataset.
func (st *appState) resetDataset(ds *dataset.Dataset) {
	st.ds = ds
	st.current, st.anchor = -1, -1
	st.selected = map[int]bool{}
	st.visible = make([]int, len(ds.Images))
	for i := range st.visible {
		st.visible[i] = i
	}
	if len(ds.Images) > 0 {
		st.current, st.anchor = 0, 0
	}
}

// tap applies a click on image id with the held modifiers: a plain click
// selects just that image, ctrl toggles it, shift extends from the anchor
// across the visible images. The clicked image becomes the current one.
func (st *appState) tap(id int, mod fyne.KeyModifier) {
	switch {
	case mod&fyne.KeyModifierShift != 0 && st.anchor >= 0:
		a, b := slices.Index(st.visible, st.anchor), slices.Index(st.visible, id)
		if a < 0 || b < 0 {
			st.selected = map[int]bool{id: true}
			st.anchor = id
			break
		}
		if a > b {
			a, b = b, a
		}
		if mod&fyne.KeyModifierControl == 0 {
			st.selected = map[int]bool{}
		}
		for _, i := range st.visible[a : b+1] {
			st.selected[i] = true
		}
	case mod&(fyne.KeyModifierControl|fyne.KeyModifierSuper) != 0:
		if st.selected[id] {
			delete(st.selected, id)
		} else {
			st.selected[id] = true
		}
		st.anchor = id
	default:
		st.selected = map[int]bool{id: true}
		st.anchor = id
	}
	st.current = id
}

// selectOnly replaces the selection with ids.
func (st *appState) selectOnly(ids []int) {
	st.selected = make(map[int]bool, len(ids))
	for _, i := range ids {
		st.selected[i] = true
	}
}

// selectedIDs returns the selection in dataset order.
func (st *appState) selectedIDs() []int {
	ids := make([]int, 0, len(st.selected))
	for i := range st.selected {
		ids = append(ids, i)
	}
	slices.Sort(ids)
	return ids
}

// step moves the current image by delta within the visible images and
// reports whether it moved.
func (st *appState) step(delta int) bool {
	if len(st.visible) == 0 {
		return false
	}
	pos := slices.Index(st.visible, st.current)
	next := pos + delta
	if pos < 0 {
		next = 0
	}
	if next < 0 || next >= len(st.visible) {
		return false
	}
	st.current = st.visible[next]
	st.selected = map[int]bool{st.current: true}
	st.anchor = st.current
	return true
}

// currentImage is the image in the editor, or nil.
func (st *appState) currentImage() *dataset.Image {
	if st.ds == nil || st.current < 0 || st.current >= len(st.ds.Images) {
		return nil
	}
	return st.ds.Images[st.current]
}
