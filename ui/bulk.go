package ui

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/dataset"
	"lorastudio/tagger"
)

// The bulk operations, in the order the dialog offers them.
const (
	bulkAdd         = "Add a tag"
	bulkRemove      = "Remove a tag"
	bulkReplace     = "Replace or rename a tag"
	bulkTrigger     = "Put a trigger word first"
	bulkDedupe      = "Remove duplicate tags"
	bulkSort        = "Sort tags A–Z"
	bulkFindReplace = "Find and replace text"
	bulkPrefix      = "Prefix: tags at the front"
	bulkPostfix     = "Postfix: tags at the end"
)

var bulkOps = []string{bulkAdd, bulkRemove, bulkReplace, bulkTrigger, bulkDedupe, bulkSort, bulkFindReplace, bulkPrefix, bulkPostfix}

// Which images a bulk edit applies to.
const (
	scopeSelected = "selected"
	scopeShown    = "shown"
	scopeAll      = "all"
)

// bulkForm is the state of the bulk edit dialog. Its fields are plain
// widgets so tests can fill them in.
type bulkForm struct {
	ws *workspace

	scope   *widget.RadioGroup
	scopes  map[string]string // radio label -> scope
	op      *widget.Select
	tag     *completionEntry
	with    *completionEntry
	front   *widget.RadioGroup
	find    *widget.Entry
	replace *widget.Entry
	regex   *widget.Check
	keep    *widget.Entry
	text    *widget.Entry
	preview *widget.Label

	fields map[string][]fyne.CanvasObject
	box    *fyne.Container
	// onReady is told whether the operation is valid and changes
	// anything, so Apply is enabled only then.
	onReady func(bool)
}

func (ws *workspace) showBulkDialog() { ws.showBulkDialogFor("", "") }

// showBulkDialogFor opens the bulk dialog, optionally with an operation
// and tag chosen (a chip's "Rename in all images").
func (ws *workspace) showBulkDialogFor(op, tag string) {
	ws.editor.commitRaw()
	f := ws.newBulkForm()
	if op != "" {
		f.op.SetSelected(op)
	}
	if tag != "" {
		f.tag.SetText(tag)
		f.tag.hide()
		if op == bulkReplace || op == bulkRemove || op == bulkTrigger {
			f.setScope(scopeAll)
		}
	}
	d := dialog.NewCustomWithoutButtons("Bulk edit", f.object(), ws.s.win)
	cancel := widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), d.Hide)
	apply := widget.NewButtonWithIcon("Apply", theme.ConfirmIcon(), func() {
		d.Hide()
		f.apply()
	})
	apply.Importance = widget.HighImportance
	// Enter in any field applies, once the operation is ready.
	for _, e := range f.entries() {
		e.OnSubmitted = func(string) {
			if !apply.Disabled() {
				apply.OnTapped()
			}
		}
	}
	f.onReady = func(ready bool) {
		if ready {
			apply.Enable()
		} else {
			apply.Disable()
		}
	}
	f.updatePreview()
	d.SetButtons([]fyne.CanvasObject{cancel, apply})
	d.Resize(fyne.NewSize(600, 540))
	d.Show()
	// After the event that opened the dialog: a pop-up menu closing hands
	// the focus back to where it was.
	ws.s.do(f.focusFirstEmpty)
}

// focusFirstEmpty puts the cursor in the first field still to fill, so a
// chip's "Rename in all images" opens ready to type the new name.
func (f *bulkForm) focusFirstEmpty() {
	c := fyne.CurrentApp().Driver().CanvasForObject(f.op)
	if c == nil {
		return
	}
	for _, o := range f.fields[f.op.Selected] {
		switch w := o.(type) {
		case *completionEntry:
			if w.Text == "" {
				c.Focus(w)
				return
			}
		case *widget.Entry:
			if w.Text == "" {
				c.Focus(w)
				return
			}
		}
	}
}

func (ws *workspace) newBulkForm() *bulkForm {
	f := &bulkForm{ws: ws}
	suggest := func(frag string) []tagger.TagCount { return ws.ed.Complete(frag, maxSuggestions) }
	nSel, nShown, nAll := len(ws.st.selected), len(ws.st.visible), len(ws.ds.Images)
	f.scopes = map[string]string{
		fmt.Sprintf("Selected images (%s)", itoa(nSel)):              scopeSelected,
		fmt.Sprintf("Images shown by the filter (%s)", itoa(nShown)): scopeShown,
		fmt.Sprintf("All images (%s)", itoa(nAll)):                   scopeAll,
	}
	labels := make([]string, 0, 3)
	for _, s := range []string{scopeSelected, scopeShown, scopeAll} {
		for l, v := range f.scopes {
			if v == s {
				labels = append(labels, l)
			}
		}
	}
	f.scope = widget.NewRadioGroup(labels, func(string) { f.updatePreview() })
	f.scope.Required = true
	switch {
	case nSel > 0:
		f.setScope(scopeSelected)
	case nShown < nAll:
		f.setScope(scopeShown)
	default:
		f.setScope(scopeAll)
	}

	f.tag = newCompletionEntry(suggest)
	f.tag.SetPlaceHolder("tag")
	f.with = newCompletionEntry(suggest)
	f.with.SetPlaceHolder("new tag")
	f.front = widget.NewRadioGroup([]string{"at the front", "at the end"}, func(string) { f.updatePreview() })
	f.front.Horizontal = true
	f.front.Required = true
	f.front.SetSelected("at the end")
	f.find = widget.NewEntry()
	f.find.SetPlaceHolder("text to find")
	f.replace = widget.NewEntry()
	f.replace.SetPlaceHolder("replacement ($1 for a group with regular expressions)")
	f.regex = widget.NewCheck("regular expression", func(bool) { f.updatePreview() })
	f.keep = widget.NewEntry()
	f.keep.SetText("1")
	f.text = widget.NewEntry()
	f.text.SetPlaceHolder("tags, comma-separated")
	for _, e := range f.entries() {
		prev := e.OnChanged
		e.OnChanged = func(s string) {
			if prev != nil {
				prev(s)
			}
			f.updatePreview()
		}
	}
	f.preview = widget.NewLabel("")
	f.preview.Wrapping = fyne.TextWrapWord

	label := func(s string) *widget.Label { return widget.NewLabel(s) }
	f.fields = map[string][]fyne.CanvasObject{
		bulkAdd:         {label("Tag"), f.tag, label("Where"), f.front},
		bulkRemove:      {label("Tag"), f.tag},
		bulkReplace:     {label("Tag"), f.tag, label("With"), f.with},
		bulkTrigger:     {label("Trigger word"), f.tag},
		bulkDedupe:      {},
		bulkSort:        {label("Keep the first tags in place"), f.keep},
		bulkFindReplace: {label("Find"), f.find, label("Replace with"), f.replace, f.regex},
		bulkPrefix:      {label("Tags"), f.text},
		bulkPostfix:     {label("Tags"), f.text},
	}
	f.op = widget.NewSelect(bulkOps, func(string) { f.showFields() })
	f.op.SetSelected(bulkAdd)
	return f
}

// entries are the form's text fields.
func (f *bulkForm) entries() []*widget.Entry {
	return []*widget.Entry{f.find, f.replace, f.keep, f.text, &f.tag.Entry, &f.with.Entry}
}

func (f *bulkForm) setScope(scope string) {
	for l, v := range f.scopes {
		if v == scope {
			f.scope.SetSelected(l)
		}
	}
}

// object lays the form out: scope, operation, its fields, the preview.
func (f *bulkForm) object() fyne.CanvasObject {
	return container.NewVBox(
		widget.NewLabelWithStyle("Apply to", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		f.scope,
		widget.NewLabelWithStyle("Operation", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		f.op,
		f.fieldsBox(),
		widget.NewSeparator(),
		f.preview,
	)
}

// fieldsBox holds the fields of the chosen operation; showFields swaps
// them when the operation changes.
func (f *bulkForm) fieldsBox() *fyne.Container {
	if f.box == nil {
		f.box = container.NewVBox()
		f.showFields()
	}
	return f.box
}

func (f *bulkForm) showFields() {
	if f.box == nil {
		return
	}
	f.box.Objects = slices.Clone(f.fields[f.op.Selected])
	f.box.Refresh()
	f.updatePreview()
}

// images are the images in the chosen scope.
func (f *bulkForm) images() []*dataset.Image {
	switch f.scopes[f.scope.Selected] {
	case scopeSelected:
		return f.ws.selection()
	case scopeShown:
		return f.ws.visibleImages()
	}
	return f.ws.ds.Images
}

// build turns the form into an undo label and a tag operation.
func (f *bulkForm) build() (string, tagger.TagOp, error) {
	tag := strings.TrimSpace(f.tag.Text)
	needTag := func() error {
		if tag == "" {
			return errors.New("type a tag")
		}
		if strings.Contains(tag, ",") {
			return errors.New("one tag only: commas separate tags")
		}
		return nil
	}
	switch f.op.Selected {
	case bulkAdd:
		if err := needTag(); err != nil {
			return "", nil, err
		}
		return "add " + tag, tagger.AddTag(tag, f.front.Selected == "at the front"), nil
	case bulkRemove:
		if err := needTag(); err != nil {
			return "", nil, err
		}
		return "remove " + tag, tagger.RemoveTag(tag), nil
	case bulkReplace:
		if err := needTag(); err != nil {
			return "", nil, err
		}
		with := strings.TrimSpace(f.with.Text)
		if with == "" {
			return "", nil, errors.New("type the new tag (Remove a tag deletes one)")
		}
		if strings.Contains(with, ",") {
			return "", nil, errors.New("one new tag only: use find and replace to split a tag")
		}
		return "replace " + tag + " with " + with, tagger.ReplaceTag(tag, with), nil
	case bulkTrigger:
		if err := needTag(); err != nil {
			return "", nil, err
		}
		return "trigger word " + tag, tagger.TriggerFirst(tag), nil
	case bulkDedupe:
		return "remove duplicates", tagger.RemoveDuplicates(), nil
	case bulkSort:
		keep, err := strconv.Atoi(strings.TrimSpace(f.keep.Text))
		if err != nil || keep < 0 {
			return "", nil, errors.New("the number of tags to keep in place is a whole number, 0 or more")
		}
		return "sort tags", tagger.SortTags(keep), nil
	case bulkFindReplace:
		op, err := tagger.FindReplace(f.find.Text, f.replace.Text, f.regex.Checked)
		if err != nil {
			return "", nil, err
		}
		return "replace text " + f.find.Text, op, nil
	case bulkPrefix, bulkPostfix:
		if len(dataset.ParseTags(f.text.Text)) == 0 {
			return "", nil, errors.New("type the tags to add")
		}
		if f.op.Selected == bulkPrefix {
			return "prefix " + f.text.Text, tagger.Prefix(f.text.Text), nil
		}
		return "postfix " + f.text.Text, tagger.Postfix(f.text.Text), nil
	}
	return "", nil, errors.New("choose an operation")
}

// updatePreview dry-runs the operation (tag operations are pure) and
// says how many images it changes, with one example.
func (f *bulkForm) updatePreview() {
	if f.preview == nil || f.op == nil {
		return
	}
	_, op, err := f.build()
	if err != nil {
		f.preview.SetText(capitalise(err.Error()) + ".")
		f.ready(false)
		return
	}
	ims := f.images()
	changed := 0
	example := ""
	for _, im := range ims {
		after := op(im.Tags)
		if slices.Equal(after, im.Tags) {
			continue
		}
		changed++
		if example == "" {
			example = fmt.Sprintf("\n\nFor example %s:\n  %s\nbecomes\n  %s", im.Rel, shorten(im.Caption()), shorten(dataset.FormatCaption(after)))
		}
	}
	f.preview.SetText(fmt.Sprintf("Changes %s of %s.%s", itoa(changed), plural(len(ims), "image", "images"), example))
	f.ready(changed > 0)
}

func (f *bulkForm) ready(ok bool) {
	if f.onReady != nil {
		f.onReady(ok)
	}
}

// apply runs the operation as one undoable step.
func (f *bulkForm) apply() {
	label, op, err := f.build()
	if err != nil {
		dialog.ShowError(err, f.ws.s.win)
		return
	}
	n := f.ws.ed.Apply(label, f.images(), op)
	f.ws.status.notice(fmt.Sprintf("%s: %s changed (Ctrl+Z undoes)", capitalise(label), plural(n, "image", "images")))
}

// shorten keeps example captions to one readable line.
func shorten(s string) string {
	const limit = 90
	if r := []rune(s); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	if s == "" {
		return "(no tags)"
	}
	return s
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	return strings.ToUpper(string(r[0])) + string(r[1:])
}
