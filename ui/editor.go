package ui

import (
	"fmt"
	"image"
	"path"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/disintegration/imaging"

	"lorastudio/dataset"
	"lorastudio/tagger"
)

const (
	// previewSide bounds the decoded preview; larger adds memory, not
	// visible detail, at the editor's size.
	previewSide = 1024
	// previewCacheSize keeps the neighbours decoded for quick stepping.
	previewCacheSize = 8
	// rawCommitDelay is how long typing in the caption field pauses
	// before the text becomes an (undoable) edit.
	rawCommitDelay = 600 * time.Millisecond
)

// tagEditor edits the tags of the current image: a large preview, the
// tags as ordered chips, an add field with autocomplete, the raw caption,
// and previous/next.
type tagEditor struct {
	ws *workspace
	// shown is the image the widgets show.
	shown *dataset.Image

	preview  *canvas.Image
	previews *previewCache
	noImage  *widget.Label

	name     *widget.Label
	meta     *widget.Label
	position *widget.Label
	state    *widget.Label
	problems *fyne.Container
	multi    *fyne.Container
	multiMsg *widget.Label

	chips    *fyne.Container
	count    *widget.Label
	add      *completionEntry
	front    *widget.Check
	raw      *widget.Entry
	rawDirty bool
	rawSet   bool
	rawTimer *time.Timer

	prev, next *widget.Button
}

func newTagEditor(ws *workspace) *tagEditor {
	e := &tagEditor{ws: ws, previews: newPreviewCache(previewCacheSize)}
	e.preview = canvas.NewImageFromImage(nil)
	e.preview.FillMode = canvas.ImageFillContain
	e.preview.ScaleMode = canvas.ImageScaleSmooth
	e.preview.SetMinSize(fyne.NewSize(320, 240))
	e.noImage = widget.NewLabelWithStyle("", fyne.TextAlignCenter, fyne.TextStyle{Italic: true})
	e.noImage.Wrapping = fyne.TextWrapWord

	e.name = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	e.name.Truncation = fyne.TextTruncateEllipsis
	e.meta = widget.NewLabel("")
	e.meta.Importance = widget.LowImportance
	e.meta.Truncation = fyne.TextTruncateEllipsis
	e.position = widget.NewLabel("")
	e.state = widget.NewLabel("")
	e.problems = container.NewVBox()
	e.multiMsg = widget.NewLabel("")
	e.multi = container.NewBorder(nil, nil, nil,
		widget.NewButtonWithIcon("Bulk edit…", theme.DocumentCreateIcon(), ws.showBulkDialog), e.multiMsg)

	e.chips = container.New(&flowLayout{})
	e.count = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	e.add = newCompletionEntry(func(frag string) []tagger.TagCount { return ws.ed.Complete(frag, maxSuggestions) })
	e.add.SetPlaceHolder("Add tags…")
	e.add.OnSubmitted = func(string) { e.addTyped() }
	e.add.onPicked = func(string) { e.addTyped() }
	e.front = widget.NewCheck("at front", nil)
	e.raw = widget.NewMultiLineEntry()
	e.raw.Wrapping = fyne.TextWrapWord
	e.raw.SetMinRowsVisible(3)
	e.raw.OnChanged = func(string) { e.rawChanged() }

	e.prev = widget.NewButtonWithIcon("", theme.NavigateBackIcon(), func() { ws.step(-1) })
	e.next = widget.NewButtonWithIcon("", theme.NavigateNextIcon(), func() { ws.step(1) })
	return e
}

// object lays the editor out: header, preview above, tags below.
func (e *tagEditor) object() fyne.CanvasObject {
	nav := container.NewHBox(e.prev, e.position, e.next)
	header := container.NewVBox(
		container.NewBorder(nil, nil, nav, e.state, e.name),
		e.meta,
	)
	picture := container.NewStack(
		canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground)),
		container.NewPadded(e.preview),
		container.NewPadded(container.NewVBox(layout.NewSpacer(), e.noImage, layout.NewSpacer())),
	)

	addBtn := widget.NewButtonWithIcon("Add", theme.ContentAddIcon(), e.addTyped)
	addRow := container.NewBorder(nil, nil, nil, container.NewHBox(e.front, addBtn), e.add)
	hint := widget.NewLabel("Tap a tag to move or remove it, or drag it to reorder. The first tags are what keep_tokens keeps in place.")
	hint.Wrapping = fyne.TextWrapWord
	hint.Importance = widget.LowImportance
	hint.SizeName = theme.SizeNameCaptionText
	captionTitle := widget.NewLabelWithStyle("Caption", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	tagsArea := container.NewVBox(
		e.multi,
		e.problems,
		e.count,
		e.chips,
		addRow,
		hint,
		widget.NewSeparator(),
		captionTitle,
		e.raw,
	)
	split := container.NewVSplit(picture, container.NewVScroll(container.NewPadded(tagsArea)))
	split.SetOffset(0.5)
	return container.NewBorder(header, nil, nil, nil, split)
}

// show binds the editor to the current image.
func (e *tagEditor) show() {
	e.commitRaw()
	im := e.ws.st.currentImage()
	e.shown = im
	e.add.hide()
	if im == nil {
		e.name.SetText("No image")
		e.meta.SetText("")
		e.position.SetText("")
		e.preview.Image = nil
		e.preview.Refresh()
		e.refreshTags()
		return
	}
	e.name.SetText(path.Base(im.Rel))
	e.meta.SetText(imageMeta(im))
	e.refreshPosition()
	e.refreshProblems()
	e.refreshTags()
	e.refreshSaveState()
	e.refreshMulti()
	e.loadPreview()
}

// imageMeta is the line under the file name: size, format, folder.
func imageMeta(im *dataset.Image) string {
	parts := []string{}
	if im.Width > 0 {
		parts = append(parts, fmt.Sprintf("%d×%d", im.Width, im.Height))
	}
	if im.Format != "" {
		parts = append(parts, im.Format)
	}
	if im.Folder != nil {
		parts = append(parts, fmt.Sprintf("folder %s, %s", im.Folder.Name, plural(im.Folder.Repeats, "repeat", "repeats")))
	}
	return strings.Join(parts, " · ")
}

func (e *tagEditor) refreshPosition() {
	vis := e.ws.st.visible
	pos := -1
	for i, id := range vis {
		if id == e.ws.st.current {
			pos = i
			break
		}
	}
	e.position.SetText(fmt.Sprintf("%s / %s", itoa(pos+1), itoa(len(vis))))
	if pos <= 0 {
		e.prev.Disable()
	} else {
		e.prev.Enable()
	}
	if pos < 0 || pos >= len(vis)-1 {
		e.next.Disable()
	} else {
		e.next.Enable()
	}
}

// refreshMulti shows the bulk-edit hint when several images are selected.
func (e *tagEditor) refreshMulti() {
	n := len(e.ws.st.selected)
	if n < 2 {
		e.multi.Hide()
		return
	}
	e.multiMsg.SetText(fmt.Sprintf("%s selected; edits here change this image only.", plural(n, "image", "images")))
	e.multi.Show()
}

func (e *tagEditor) refreshProblems() {
	e.problems.RemoveAll()
	if e.shown == nil {
		return
	}
	for _, p := range e.shown.Problems {
		var icon fyne.Resource = theme.NewWarningThemedResource(theme.WarningIcon())
		if p.Severity == dataset.Error {
			icon = theme.NewErrorThemedResource(theme.ErrorIcon())
		}
		msg := widget.NewLabel(problemText(p))
		msg.Wrapping = fyne.TextWrapWord
		e.problems.Add(container.NewBorder(nil, nil, container.NewCenter(widget.NewIcon(icon)), nil, msg))
	}
}

// problemText is a problem in a sentence, with whether it trains.
func problemText(p dataset.Problem) string {
	text := string(p.Kind)
	if p.Detail != "" {
		text = p.Detail
	}
	if p.Severity == dataset.Error {
		return text + " (not used for training)"
	}
	return text
}

// refreshTags rebuilds the chips and, unless the user is typing in it,
// the raw caption.
func (e *tagEditor) refreshTags() {
	e.chips.RemoveAll()
	im := e.shown
	if im == nil {
		e.count.SetText("")
		e.setRaw("")
		return
	}
	for i, t := range im.Tags {
		c := newTagChip(t, i, i == 0)
		c.onMenu = e.chipMenu
		c.onRemove = func(c *tagChip) { e.removeAt(c.index) }
		c.onDrop = e.chipDropped
		e.chips.Add(c)
	}
	switch {
	case len(im.Tags) > 0:
		e.count.SetText("Tags (" + itoa(len(im.Tags)) + ")")
	case im.Folder != nil && im.Folder.ClassTokens != "":
		e.count.SetText("No tags: training uses the folder's class tokens \"" + im.Folder.ClassTokens + "\"")
	default:
		e.count.SetText("No tags yet")
	}
	e.chips.Refresh()
	if !e.rawFocused() {
		e.setRaw(im.Caption())
	}
}

func (e *tagEditor) setRaw(text string) {
	e.rawDirty = false
	if e.raw.Text == text {
		return
	}
	e.rawSet = true
	e.raw.SetText(text)
	e.rawSet = false
}

func (e *tagEditor) rawFocused() bool {
	c := fyne.CurrentApp().Driver().CanvasForObject(e.raw)
	return c != nil && c.Focused() == e.raw
}

// rawChanged debounces typing in the caption field into one edit.
func (e *tagEditor) rawChanged() {
	if e.rawSet || e.shown == nil {
		return
	}
	e.rawDirty = true
	if e.rawTimer != nil {
		e.rawTimer.Stop()
	}
	e.rawTimer = time.AfterFunc(rawCommitDelay, func() { e.ws.s.do(e.commitRaw) })
}

// commitRaw turns pending caption typing into an edit; line breaks
// separate tags like commas.
func (e *tagEditor) commitRaw() {
	if e.rawTimer != nil {
		e.rawTimer.Stop()
	}
	if !e.rawDirty || e.shown == nil {
		return
	}
	e.rawDirty = false
	text := strings.NewReplacer("\r\n", ",", "\n", ",").Replace(e.raw.Text)
	e.ws.ed.SetCaption(e.shown, text)
}

// addTyped adds the tags typed in the add field as one edit.
func (e *tagEditor) addTyped() {
	im := e.shown
	tags := dataset.ParseTags(e.add.Text)
	if im == nil || len(tags) == 0 {
		return
	}
	front := e.front.Checked
	op := func(cur []string) []string {
		if front {
			for i := len(tags) - 1; i >= 0; i-- {
				cur = tagger.AddTag(tags[i], true)(cur)
			}
			return cur
		}
		for _, t := range tags {
			cur = tagger.AddTag(t, false)(cur)
		}
		return cur
	}
	e.ws.ed.Apply("add "+strings.Join(tags, ", "), []*dataset.Image{im}, op)
	e.add.SetText("")
	e.add.hide()
	if c := fyne.CurrentApp().Driver().CanvasForObject(e.add); c != nil {
		c.Focus(e.add)
	}
}

// removeAt removes the tag at index i of the shown image (only that
// copy, when a tag is repeated).
func (e *tagEditor) removeAt(i int) {
	im := e.shown
	if im == nil || i < 0 || i >= len(im.Tags) {
		return
	}
	tag := im.Tags[i]
	e.ws.ed.Apply("remove "+tag, []*dataset.Image{im}, func(cur []string) []string {
		if i >= len(cur) || cur[i] != tag {
			return cur
		}
		out := make([]string, 0, len(cur)-1)
		out = append(out, cur[:i]...)
		return append(out, cur[i+1:]...)
	})
}

// chipMenu offers the moves and actions for one tag.
func (e *tagEditor) chipMenu(c *tagChip, at fyne.Position) {
	im := e.shown
	if im == nil {
		return
	}
	i, last := c.index, len(im.Tags)-1
	move := func(to int) func() { return func() { e.ws.ed.MoveTag(im, i, to) } }
	items := []*fyne.MenuItem{
		fyne.NewMenuItem("Move to front", move(0)),
		fyne.NewMenuItem("Move left", move(i-1)),
		fyne.NewMenuItem("Move right", move(i+1)),
		fyne.NewMenuItem("Move to end", move(last)),
		fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem("Remove", func() { e.removeAt(i) }),
		fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem("Select images with this tag", func() {
			e.ws.selectImages(tagger.WithTag(e.ws.ds.Images, c.tag))
		}),
		fyne.NewMenuItem("Rename in all images…", func() { e.ws.showBulkDialogFor(bulkReplace, c.tag) }),
	}
	items[0].Disabled, items[1].Disabled = i == 0, i == 0
	items[2].Disabled, items[3].Disabled = i == last, i == last
	cv := fyne.CurrentApp().Driver().CanvasForObject(c)
	if cv == nil {
		return
	}
	widget.ShowPopUpMenuAtPosition(fyne.NewMenu("", items...), cv, at)
}

// chipDropped moves a dragged chip before the chip it was dropped on,
// in reading order.
func (e *tagEditor) chipDropped(c *tagChip, at fyne.Position) {
	im := e.shown
	if im == nil {
		return
	}
	d := fyne.CurrentApp().Driver()
	target := len(im.Tags)
	for j, o := range e.chips.Objects {
		p := d.AbsolutePositionForObject(o)
		s := o.Size()
		if o == c {
			continue
		}
		if at.Y < p.Y || (at.Y <= p.Y+s.Height && at.X < p.X+s.Width/2) {
			target = j
			break
		}
	}
	to := target
	if target > c.index {
		to = target - 1
	}
	if !e.ws.ed.MoveTag(im, c.index, to) {
		e.chips.Refresh()
	}
}

// refreshSaveState shows whether the shown caption is on disk.
func (e *tagEditor) refreshSaveState() {
	im := e.shown
	if im == nil {
		e.state.SetText("")
		return
	}
	st := e.ws.saves.get(im.CaptionPath)
	switch {
	case im.CaptionLocked:
		e.state.SetText("Protected file: edits kept in memory")
		e.state.Importance = widget.WarningImportance
	case st.State == dataset.Pending:
		e.state.SetText("● Unsaved")
		e.state.Importance = widget.WarningImportance
	case st.State == dataset.Failed:
		e.state.SetText("Save failed")
		e.state.Importance = widget.DangerImportance
	default:
		e.state.SetText("✓ Saved")
		e.state.Importance = widget.SuccessImportance
	}
	e.state.Refresh()
}

// loadPreview shows the current image: at once from the cache or the
// thumbnail, then decoded in full off the UI goroutine. The neighbours
// are decoded next so stepping through the dataset is instant.
func (e *tagEditor) loadPreview() {
	im := e.shown
	e.noImage.SetText("")
	if !im.Trainable() && im.Width == 0 {
		e.preview.Image = nil
		e.preview.Refresh()
		e.noImage.SetText("This file cannot be shown: " + problemText(im.Problems[0]))
		return
	}
	if img, ok := e.previews.get(im.Path); ok {
		e.preview.Image = img
		e.preview.Refresh()
	} else {
		e.preview.Image = e.ws.thumbs.get(e.ws.st.current)
		e.preview.Refresh()
	}
	var todo []string
	for _, d := range []int{0, 1, -1} {
		if p := e.neighbour(d); p != nil && !e.previews.has(p.Path) {
			todo = append(todo, p.Path)
		}
	}
	if len(todo) == 0 {
		return
	}
	maxPixels := e.ws.ds.MaxPixels
	e.ws.background.Add(1)
	go func() {
		defer e.ws.background.Done()
		for _, p := range todo {
			img, err := dataset.DecodeImage(p, maxPixels)
			if err != nil {
				e.ws.s.do(func() {
					if e.shown != nil && e.shown.Path == p && e.preview.Image == nil {
						e.noImage.SetText("This image cannot be shown: " + err.Error())
					}
				})
				continue
			}
			img = imaging.Fit(img, previewSide, previewSide, imaging.Linear)
			e.ws.s.do(func() {
				e.previews.put(p, img)
				if e.shown != nil && e.shown.Path == p {
					e.preview.Image = img
					e.preview.Refresh()
				}
			})
		}
	}()
}

// neighbour is the visible image d steps from the current one, or nil.
func (e *tagEditor) neighbour(d int) *dataset.Image {
	vis := e.ws.st.visible
	for i, id := range vis {
		if id == e.ws.st.current {
			if j := i + d; j >= 0 && j < len(vis) {
				return e.ws.ds.Images[vis[j]]
			}
			return nil
		}
	}
	return nil
}

// refreshPreviewPlaceholder fills in the thumbnail once it arrives, while
// the full preview is still decoding.
func (e *tagEditor) refreshPreviewPlaceholder() {
	if e.shown == nil || e.preview.Image != nil || e.previews.has(e.shown.Path) {
		return
	}
	if img := e.ws.thumbs.get(e.ws.st.current); img != nil {
		e.preview.Image = img
		e.preview.Refresh()
	}
}

// previewCache keeps the last few decoded previews (UI goroutine only).
type previewCache struct {
	size  int
	order []string
	imgs  map[string]image.Image
}

func newPreviewCache(size int) *previewCache {
	return &previewCache{size: size, imgs: map[string]image.Image{}}
}

func (c *previewCache) has(p string) bool { _, ok := c.imgs[p]; return ok }

func (c *previewCache) get(p string) (image.Image, bool) {
	img, ok := c.imgs[p]
	return img, ok
}

func (c *previewCache) put(p string, img image.Image) {
	if _, ok := c.imgs[p]; !ok {
		c.order = append(c.order, p)
	}
	c.imgs[p] = img
	for len(c.order) > c.size {
		delete(c.imgs, c.order[0])
		c.order = c.order[1:]
	}
}
