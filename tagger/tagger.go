// Package tagger edits the tags of a dataset: single and bulk operations
// (add at the front or back, remove, replace/rename, trigger word first,
// remove duplicates, sort, find/replace in plain text or by regular
// expression, prefix/postfix), each one undoable step; tag counts, filters
// (all of / any of / none of) and autocomplete from the dataset's own tag
// frequencies.
//
// Every tag change must go through an Editor: it keeps the undo history,
// the tag counts and the autosave (a dataset.Saver) in step. Like the
// Dataset it edits, an Editor belongs to one goroutine. Operations take an
// explicit selection of images; Editor.All returns every image, so an
// empty selection never means "all" by accident.
//
// The package writes no files itself; captions are saved through the
// dataset package.
package tagger

import (
	"cmp"
	"slices"
	"strings"

	"lorastudio/dataset"
)

// DefaultUndoLimit is how many steps an Editor can undo.
const DefaultUndoLimit = 500

// Editor edits a dataset's tags with undo and redo.
type Editor struct {
	ds    *dataset.Dataset
	saver *dataset.Saver
	limit int

	undo, redo []step
	counts     map[string]int

	// OnChange, when set, is called after every edit, undo and redo with
	// the images whose tags changed.
	OnChange func(changed []*dataset.Image)
}

// step is one undoable edit.
type step struct {
	label   string
	changes []change
}

type change struct {
	im            *dataset.Image
	before, after []string
}

// New returns an editor for ds. saver may be nil: edits then stay in
// memory (tests, headless use).
func New(ds *dataset.Dataset, saver *dataset.Saver) *Editor {
	e := &Editor{ds: ds, saver: saver, limit: DefaultUndoLimit, counts: map[string]int{}}
	for _, im := range ds.Images {
		forUnique(im.Tags, func(t string) { e.counts[t]++ })
	}
	return e
}

// SetUndoLimit changes how many steps are kept (at least 1).
func (e *Editor) SetUndoLimit(n int) {
	e.limit = max(n, 1)
	e.trim()
}

// Dataset is the dataset being edited.
func (e *Editor) Dataset() *dataset.Dataset { return e.ds }

// All returns every image of the dataset, for operations on all.
func (e *Editor) All() []*dataset.Image { return e.ds.Images }

// Apply runs op on every selected image as one undoable step named label
// and returns how many images changed. Nothing is recorded when none did.
func (e *Editor) Apply(label string, sel []*dataset.Image, op TagOp) int {
	var changes []change
	seen := make(map[*dataset.Image]bool, len(sel))
	for _, im := range sel {
		if seen[im] {
			continue
		}
		seen[im] = true
		changes = appendChange(changes, im, op(im.Tags))
	}
	return e.record(label, changes)
}

// appendChange adds the change of im's tags to after, unless they stay
// the same.
func appendChange(changes []change, im *dataset.Image, after []string) []change {
	if sameTags(after, im.Tags) {
		return changes
	}
	return append(changes, change{im: im, before: im.Tags, after: slices.Clip(after)})
}

// record applies changes as one undoable step named label and returns how
// many images changed. Nothing is recorded when none did.
func (e *Editor) record(label string, changes []change) int {
	if len(changes) == 0 {
		return 0
	}
	e.undo = append(e.undo, step{label: label, changes: changes})
	e.redo = nil
	e.trim()
	e.apply(changes, false)
	return len(changes)
}

func sameTags(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0] || slices.Equal(a, b))
}

// trim drops the oldest steps beyond the limit.
func (e *Editor) trim() {
	if n := len(e.undo) - e.limit; n > 0 {
		clear(e.undo[:n])
		e.undo = e.undo[n:]
	}
}

// apply sets after (or before, when reverse) on each image, updates the
// counts, queues saves and notifies.
func (e *Editor) apply(changes []change, reverse bool) {
	imgs := make([]*dataset.Image, len(changes))
	for i, c := range changes {
		from, to := c.before, c.after
		if reverse {
			from, to = to, from
		}
		forUnique(from, func(t string) {
			if e.counts[t]--; e.counts[t] <= 0 {
				delete(e.counts, t)
			}
		})
		forUnique(to, func(t string) { e.counts[t]++ })
		c.im.Tags = to
		if e.saver != nil {
			e.saver.Queue(c.im)
		}
		imgs[i] = c.im
	}
	if e.OnChange != nil {
		e.OnChange(imgs)
	}
}

// SetTags replaces one image's tags (the chip editor, a reorder) as one
// undoable step. Tags are trimmed and empty ones dropped.
func (e *Editor) SetTags(im *dataset.Image, tags []string) bool {
	clean := make([]string, 0, len(tags))
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" && !strings.Contains(t, ",") {
			clean = append(clean, t)
		} else if t != "" {
			clean = append(clean, dataset.ParseTags(t)...)
		}
	}
	return e.Apply("edit tags", []*dataset.Image{im}, func([]string) []string { return clean }) > 0
}

// SetCaption replaces one image's caption from raw text (the raw caption
// editor) as one undoable step.
func (e *Editor) SetCaption(im *dataset.Image, raw string) bool {
	line, _, _ := strings.Cut(raw, "\n")
	tags := dataset.ParseTags(strings.TrimSuffix(line, "\r"))
	return e.Apply("edit caption", []*dataset.Image{im}, func([]string) []string { return tags }) > 0
}

// MoveTag moves the tag at index from to index to in one image's tags.
func (e *Editor) MoveTag(im *dataset.Image, from, to int) bool {
	if from < 0 || from >= len(im.Tags) || to < 0 || to >= len(im.Tags) || from == to {
		return false
	}
	return e.Apply("move tag", []*dataset.Image{im}, func(tags []string) []string {
		out := slices.Clone(tags)
		t := out[from]
		out = slices.Delete(out, from, from+1)
		return slices.Insert(out, to, t)
	}) > 0
}

// AddTag adds tag to the selection, at the front or the back.
func (e *Editor) AddTag(sel []*dataset.Image, tag string, front bool) int {
	return e.Apply("add "+tag, sel, AddTag(tag, front))
}

// RemoveTag removes tag from the selection.
func (e *Editor) RemoveTag(sel []*dataset.Image, tag string) int {
	return e.Apply("remove "+tag, sel, RemoveTag(tag))
}

// ReplaceTag renames old to new in the selection.
func (e *Editor) ReplaceTag(sel []*dataset.Image, old, new string) int {
	return e.Apply("replace "+old+" with "+new, sel, ReplaceTag(old, new))
}

// TriggerFirst puts trigger first in every selected caption.
func (e *Editor) TriggerFirst(sel []*dataset.Image, trigger string) int {
	return e.Apply("trigger word "+trigger, sel, TriggerFirst(trigger))
}

// RemoveDuplicates drops repeated tags in the selection.
func (e *Editor) RemoveDuplicates(sel []*dataset.Image) int {
	return e.Apply("remove duplicates", sel, RemoveDuplicates())
}

// Sort sorts the selection's tags alphabetically, keeping the first keep
// tags in place.
func (e *Editor) Sort(sel []*dataset.Image, keep int) int {
	return e.Apply("sort tags", sel, SortTags(keep))
}

// Prefix adds text's tags at the front of the selection's captions.
func (e *Editor) Prefix(sel []*dataset.Image, text string) int {
	return e.Apply("prefix "+text, sel, Prefix(text))
}

// Postfix adds text's tags at the end of the selection's captions.
func (e *Editor) Postfix(sel []*dataset.Image, text string) int {
	return e.Apply("postfix "+text, sel, Postfix(text))
}

// FindReplace replaces text (or a regular expression) in the selection's
// captions.
func (e *Editor) FindReplace(sel []*dataset.Image, find, replace string, regex bool) (int, error) {
	op, err := FindReplace(find, replace, regex)
	if err != nil {
		return 0, err
	}
	return e.Apply("replace text "+find, sel, op), nil
}

// CanUndo and CanRedo report whether a step is available.
func (e *Editor) CanUndo() bool { return len(e.undo) > 0 }

// CanRedo reports whether an undone step can be redone.
func (e *Editor) CanRedo() bool { return len(e.redo) > 0 }

// UndoLabel names the step Undo would revert ("" when none).
func (e *Editor) UndoLabel() string {
	if len(e.undo) == 0 {
		return ""
	}
	return e.undo[len(e.undo)-1].label
}

// RedoLabel names the step Redo would apply ("" when none).
func (e *Editor) RedoLabel() string {
	if len(e.redo) == 0 {
		return ""
	}
	return e.redo[len(e.redo)-1].label
}

// Undo reverts the last step and reports whether there was one.
func (e *Editor) Undo() bool {
	if len(e.undo) == 0 {
		return false
	}
	s := e.undo[len(e.undo)-1]
	e.undo = e.undo[:len(e.undo)-1]
	e.redo = append(e.redo, s)
	e.apply(s.changes, true)
	return true
}

// Redo applies the last undone step again.
func (e *Editor) Redo() bool {
	if len(e.redo) == 0 {
		return false
	}
	s := e.redo[len(e.redo)-1]
	e.redo = e.redo[:len(e.redo)-1]
	e.undo = append(e.undo, s)
	e.apply(s.changes, false)
	return true
}

// TagCount is a tag and how many images carry it.
type TagCount struct {
	Tag   string
	Count int
}

// Counts returns every tag of the dataset with its count, most frequent
// first, then alphabetical. It is kept up to date incrementally.
func (e *Editor) Counts() []TagCount {
	out := make([]TagCount, 0, len(e.counts))
	for t, n := range e.counts {
		out = append(out, TagCount{t, n})
	}
	sortCounts(out)
	return out
}

// Count is the number of images with tag.
func (e *Editor) Count(tag string) int { return e.counts[tag] }

// CountsIn counts the tags of a selection (for "common tags" of a
// multi-selection): each image counts once per tag.
func CountsIn(sel []*dataset.Image) []TagCount {
	m := map[string]int{}
	for _, im := range sel {
		forUnique(im.Tags, func(t string) { m[t]++ })
	}
	out := make([]TagCount, 0, len(m))
	for t, n := range m {
		out = append(out, TagCount{t, n})
	}
	sortCounts(out)
	return out
}

func sortCounts(c []TagCount) {
	slices.SortFunc(c, func(a, b TagCount) int { return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Tag, b.Tag)) })
}

// Complete suggests up to limit known tags for what the user typed:
// tags starting with it (case-insensitive) first, then tags with a word
// starting with it, each group most frequent first. The typed text
// itself is not suggested.
func (e *Editor) Complete(prefix string, limit int) []TagCount {
	p := strings.ToLower(strings.TrimSpace(prefix))
	if p == "" || limit <= 0 {
		return nil
	}
	var head, word []TagCount
	for t, n := range e.counts {
		lt := strings.ToLower(t)
		switch {
		case lt == p:
		case strings.HasPrefix(lt, p):
			head = append(head, TagCount{t, n})
		case strings.Contains(lt, " "+p) || strings.Contains(lt, "_"+p):
			word = append(word, TagCount{t, n})
		}
	}
	sortCounts(head)
	sortCounts(word)
	out := append(head, word...)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// forUnique calls fn once per distinct tag; captions are short, so a scan
// of the prefix beats a set.
func forUnique(tags []string, fn func(string)) {
	for i, t := range tags {
		if !slices.Contains(tags[:i], t) {
			fn(t)
		}
	}
}
