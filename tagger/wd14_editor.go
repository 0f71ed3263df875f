package tagger

import (
	"slices"

	"lorastudio/dataset"
)

// ApplyAutoTags gives each image in predicted its auto-tags as one
// undoable step named label: the predicted tags replace the caption, or
// with appendTags follow the existing tags (MergeTags). It returns how many
// images changed. Images are visited in dataset order.
func (e *Editor) ApplyAutoTags(label string, predicted map[*dataset.Image][]string, appendTags bool) int {
	var changes []change
	for _, im := range e.ds.Images {
		tags, ok := predicted[im]
		if !ok {
			continue
		}
		after := MergeTags(im.Tags, tags, appendTags)
		if sameTags(after, im.Tags) {
			continue
		}
		changes = append(changes, change{im: im, before: im.Tags, after: slices.Clip(after)})
	}
	if len(changes) == 0 {
		return 0
	}
	e.undo = append(e.undo, step{label: label, changes: changes})
	e.redo = nil
	e.trim()
	e.apply(changes, false)
	return len(changes)
}
