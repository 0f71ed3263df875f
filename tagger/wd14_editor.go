package tagger

import "lorastudio/dataset"

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
		changes = appendChange(changes, im, MergeTags(im.Tags, tags, appendTags))
	}
	return e.record(label, changes)
}
