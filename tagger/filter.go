package tagger

import (
	"slices"
	"strings"

	"lorastudio/dataset"
)

// Filter selects images by their tags. Empty lists do not constrain.
type Filter struct {
	// AllOf: every one of these tags must be present.
	AllOf []string
	// AnyOf: at least one of these must be present.
	AnyOf []string
	// NoneOf: none of these may be present.
	NoneOf []string
	// Untagged, when set, keeps only images without tags.
	Untagged bool
	// Text, when not empty, keeps images whose caption contains it
	// (case-insensitive).
	Text string
}

// Empty reports whether f selects everything.
func (f Filter) Empty() bool {
	return len(f.AllOf) == 0 && len(f.AnyOf) == 0 && len(f.NoneOf) == 0 && !f.Untagged && f.Text == ""
}

// Match reports whether tags pass the filter.
func (f Filter) Match(tags []string) bool {
	if f.Untagged && len(tags) > 0 {
		return false
	}
	for _, t := range f.AllOf {
		if !slices.Contains(tags, t) {
			return false
		}
	}
	if len(f.AnyOf) > 0 && !slices.ContainsFunc(f.AnyOf, func(t string) bool { return slices.Contains(tags, t) }) {
		return false
	}
	for _, t := range f.NoneOf {
		if slices.Contains(tags, t) {
			return false
		}
	}
	if f.Text != "" {
		needle := strings.ToLower(f.Text)
		if !strings.Contains(strings.ToLower(dataset.FormatCaption(tags)), needle) {
			return false
		}
	}
	return true
}

// Select returns the images among imgs that pass f, in order.
func Select(imgs []*dataset.Image, f Filter) []*dataset.Image {
	if f.Empty() {
		return slices.Clone(imgs)
	}
	var out []*dataset.Image
	for _, im := range imgs {
		if f.Match(im.Tags) {
			out = append(out, im)
		}
	}
	return out
}

// WithTag returns the images carrying tag: a click on a tag in the tag
// panel.
func WithTag(imgs []*dataset.Image, tag string) []*dataset.Image {
	return Select(imgs, Filter{AllOf: []string{tag}})
}
