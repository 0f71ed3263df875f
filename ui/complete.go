package ui

import (
	"image/color"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/tagger"
)

// maxSuggestions bounds the autocomplete list.
const maxSuggestions = 8

// completionEntry is a text entry that suggests known tags, most frequent
// first, for the last comma-separated part of what is typed. Up and Down
// move through the suggestions, Enter or a click takes one, Escape hides
// them; the keyboard focus stays in the entry throughout.
type completionEntry struct {
	widget.Entry

	// suggest returns the suggestions for a typed fragment.
	suggest func(fragment string) []tagger.TagCount
	// onPicked, when set, runs after a suggestion replaced the fragment
	// (the add-tag field adds the tag at once).
	onPicked func(text string)

	items  []tagger.TagCount
	cursor int
	list   *suggestList
	popup  *widget.PopUp
	// quiet suppresses suggestions while the text is set by a pick.
	quiet bool
}

func newCompletionEntry(suggest func(string) []tagger.TagCount) *completionEntry {
	e := &completionEntry{suggest: suggest, cursor: -1}
	e.ExtendBaseWidget(e)
	e.Entry.OnChanged = func(string) { e.update() }
	return e
}

// lastFragment is the part after the last comma, trimmed.
func lastFragment(text string) string {
	if i := strings.LastIndex(text, ","); i >= 0 {
		text = text[i+1:]
	}
	return strings.TrimSpace(text)
}

// update recomputes the suggestions for the current text.
func (e *completionEntry) update() {
	if e.quiet || e.suggest == nil {
		return
	}
	frag := lastFragment(e.Text)
	if frag == "" {
		e.hide()
		return
	}
	e.items = e.suggest(frag)
	if len(e.items) > maxSuggestions {
		e.items = e.items[:maxSuggestions]
	}
	e.cursor = -1
	if len(e.items) == 0 {
		e.hide()
		return
	}
	e.show()
}

func (e *completionEntry) show() {
	c := fyne.CurrentApp().Driver().CanvasForObject(e)
	if c == nil {
		return
	}
	if e.popup == nil {
		e.list = newSuggestList(e)
		e.popup = widget.NewPopUp(e.list, c)
	}
	e.list.UnselectAll()
	e.list.Refresh()
	rowH := suggestRow().MinSize().Height + theme.SeparatorThicknessSize()
	height := float32(len(e.items))*rowH + 4*theme.Padding()
	e.popup.Resize(fyne.NewSize(max(e.Size().Width, 240), height))
	pos := fyne.CurrentApp().Driver().AbsolutePositionForObject(e)
	e.popup.ShowAtPosition(pos.Add(fyne.NewPos(0, e.Size().Height)))
	// The pop-up is an overlay with its own focus: the list takes the
	// keys and hands them to the entry.
	c.Focus(e.list)
}

func (e *completionEntry) hide() {
	e.items = nil
	e.cursor = -1
	if e.popup == nil || !e.popup.Visible() {
		return
	}
	e.popup.Hide()
	if c := fyne.CurrentApp().Driver().CanvasForObject(e); c != nil {
		c.Focus(e)
	}
}

// suggesting reports whether the suggestion list is up.
func (e *completionEntry) suggesting() bool {
	return e.popup != nil && e.popup.Visible() && len(e.items) > 0
}

// pick replaces the typed fragment with tag.
func (e *completionEntry) pick(tag string) {
	text := e.Text
	head := ""
	if i := strings.LastIndex(text, ","); i >= 0 {
		head = text[:i+1] + " "
	}
	e.quiet = true
	e.SetText(head + tag)
	e.CursorColumn = len([]rune(e.Text))
	e.quiet = false
	e.hide()
	if e.onPicked != nil {
		e.onPicked(e.Text)
	}
}

// TypedKey drives the suggestion list from the keyboard.
func (e *completionEntry) TypedKey(k *fyne.KeyEvent) {
	if e.suggesting() {
		switch k.Name {
		case fyne.KeyDown:
			e.cursor = min(e.cursor+1, len(e.items)-1)
			e.list.ScrollTo(e.cursor)
			e.highlight()
			return
		case fyne.KeyUp:
			e.cursor = max(e.cursor-1, 0)
			e.list.ScrollTo(e.cursor)
			e.highlight()
			return
		case fyne.KeyReturn, fyne.KeyEnter, fyne.KeyTab:
			if e.cursor >= 0 {
				e.pick(e.items[e.cursor].Tag)
				return
			}
			e.hide()
		case fyne.KeyEscape:
			e.hide()
			return
		}
	}
	e.Entry.TypedKey(k)
}

// highlight marks the cursor row without picking it: the list's own
// selection would fire OnSelected.
func (e *completionEntry) highlight() {
	sel := e.list.OnSelected
	e.list.OnSelected = nil
	e.list.Select(e.cursor)
	e.list.OnSelected = sel
}

// suggestList is the pop-up's list. It holds the keyboard focus while the
// pop-up is up and passes typing on to the entry.
type suggestList struct {
	widget.List
	entry *completionEntry
}

func newSuggestList(e *completionEntry) *suggestList {
	l := &suggestList{entry: e}
	l.Length = func() int { return len(e.items) }
	l.CreateItem = func() fyne.CanvasObject { return suggestRow() }
	l.UpdateItem = func(i widget.ListItemID, o fyne.CanvasObject) {
		if i >= len(e.items) {
			return
		}
		row := o.(*fyne.Container)
		row.Objects[0].(*widget.Label).SetText(e.items[i].Tag)
		row.Objects[1].(*fyne.Container).Objects[0].(*widget.Label).SetText(itoa(e.items[i].Count))
	}
	l.OnSelected = func(i widget.ListItemID) {
		if i >= 0 && i < len(e.items) {
			e.pick(e.items[i].Tag)
		}
	}
	l.ExtendBaseWidget(l)
	return l
}

// suggestRow is one suggestion: the tag, and how many images have it.
func suggestRow() *fyne.Container {
	count := widget.NewLabel("")
	count.Importance = widget.LowImportance
	name := widget.NewLabel("")
	name.Truncation = fyne.TextTruncateEllipsis
	// The gap keeps the count clear of the overlay scroll bar.
	gap := canvas.NewRectangle(color.Transparent)
	gap.SetMinSize(fyne.NewSize(theme.ScrollBarSize(), 0))
	return container.NewBorder(nil, nil, nil, container.NewHBox(count, gap), name)
}

func (l *suggestList) TypedRune(r rune)          { l.entry.TypedRune(r) }
func (l *suggestList) TypedKey(k *fyne.KeyEvent) { l.entry.TypedKey(k) }
