package tagger

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"lorastudio/dataset"
)

// A TagOp rewrites one image's tags. It must not modify its argument; it
// returns the argument itself when nothing changes.
type TagOp func(tags []string) []string

// AddTag adds tag at the front or the back. At the front an existing
// copy moves to the front; at the back an existing tag stays where it is.
func AddTag(tag string, front bool) TagOp {
	tag = strings.TrimSpace(tag)
	return func(tags []string) []string {
		if tag == "" {
			return tags
		}
		i := slices.Index(tags, tag)
		if front {
			if i == 0 {
				return tags
			}
			out := make([]string, 0, len(tags)+1)
			out = append(out, tag)
			for j, t := range tags {
				if j != i {
					out = append(out, t)
				}
			}
			return out
		}
		if i >= 0 {
			return tags
		}
		return append(slices.Clip(tags), tag)
	}
}

// TriggerFirst puts a trigger word first (added when missing): the first
// tags are what kohya's keep_tokens keeps in place when shuffling.
func TriggerFirst(trigger string) TagOp { return AddTag(trigger, true) }

// RemoveTag removes every copy of tag.
func RemoveTag(tag string) TagOp {
	tag = strings.TrimSpace(tag)
	return func(tags []string) []string {
		if !slices.Contains(tags, tag) {
			return tags
		}
		out := make([]string, 0, len(tags))
		for _, t := range tags {
			if t != tag {
				out = append(out, t)
			}
		}
		return out
	}
}

// ReplaceTag renames old to new in place. When new is already present the
// first of the two positions is kept and the other copy dropped; an empty
// new removes old.
func ReplaceTag(old, new string) TagOp {
	old, new = strings.TrimSpace(old), strings.TrimSpace(new)
	if new == "" {
		return RemoveTag(old)
	}
	return func(tags []string) []string {
		if old == new || !slices.Contains(tags, old) {
			return tags
		}
		out := make([]string, 0, len(tags))
		seenNew := false
		for _, t := range tags {
			if t == old || t == new {
				if seenNew {
					continue
				}
				seenNew = true
				out = append(out, new)
				continue
			}
			out = append(out, t)
		}
		return out
	}
}

// RemoveDuplicates keeps the first copy of each tag.
func RemoveDuplicates() TagOp {
	return func(tags []string) []string {
		seen := make(map[string]bool, len(tags))
		dup := false
		for _, t := range tags {
			if seen[t] {
				dup = true
				break
			}
			seen[t] = true
		}
		if !dup {
			return tags
		}
		clear(seen)
		out := make([]string, 0, len(tags))
		for _, t := range tags {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
		return out
	}
}

// SortTags sorts tags alphabetically (case-insensitive, then exact),
// leaving the first keep tags in place (kohya's keep_tokens).
func SortTags(keep int) TagOp {
	return func(tags []string) []string {
		if keep < 0 {
			keep = 0
		}
		if keep >= len(tags) {
			return tags
		}
		less := func(a, b string) int {
			if c := strings.Compare(strings.ToLower(a), strings.ToLower(b)); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		}
		if slices.IsSortedFunc(tags[keep:], less) {
			return tags
		}
		out := slices.Clone(tags)
		slices.SortStableFunc(out[keep:], less)
		return out
	}
}

// Prefix puts the tags of text (comma-separated) at the front unless the
// caption already starts with them, as kohya's basic captioning does with
// a prefix.
func Prefix(text string) TagOp {
	add := dataset.ParseTags(text)
	return func(tags []string) []string {
		if len(add) == 0 || (len(tags) >= len(add) && slices.Equal(tags[:len(add)], add)) {
			return tags
		}
		return append(slices.Clone(add), tags...)
	}
}

// Postfix puts the tags of text at the end unless the caption already ends
// with them.
func Postfix(text string) TagOp {
	add := dataset.ParseTags(text)
	return func(tags []string) []string {
		if len(add) == 0 || (len(tags) >= len(add) && slices.Equal(tags[len(tags)-len(add):], add)) {
			return tags
		}
		return append(slices.Clone(tags), add...)
	}
}

// FindReplace replaces text in the caption line (tags joined by ", ") and
// splits the result into tags again, so a replacement may add, merge or
// remove tags. With regex, find is a Go regular expression and replace may
// use $1-style references.
func FindReplace(find, replace string, regex bool) (TagOp, error) {
	if find == "" {
		return nil, fmt.Errorf("find and replace: empty search text")
	}
	var re *regexp.Regexp
	if regex {
		var err error
		if re, err = regexp.Compile(find); err != nil {
			return nil, fmt.Errorf("find and replace: %w", err)
		}
	}
	return func(tags []string) []string {
		line := dataset.FormatCaption(tags)
		var out string
		if re != nil {
			out = re.ReplaceAllString(line, replace)
		} else {
			out = strings.ReplaceAll(line, find, replace)
		}
		if out == line {
			return tags
		}
		next := dataset.ParseTags(out)
		if slices.Equal(next, tags) {
			return tags
		}
		return next
	}, nil
}
