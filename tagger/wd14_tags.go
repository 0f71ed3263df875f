package tagger

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Label categories of selected_tags.csv.
const (
	CategoryGeneral   = 0
	CategoryCharacter = 4
	CategoryRating    = 9
)

// Label is one output of the tagger: a row of selected_tags.csv.
type Label struct {
	Name     string // as in the CSV, with underscores
	Category int
}

// maxLabelsBytes bounds selected_tags.csv (the real one is ~300 KB).
const maxLabelsBytes = 64 << 20

// ReadLabels reads selected_tags.csv (header tag_id,name,category,count);
// output i of the model is data row i.
func ReadLabels(path string) ([]Label, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	defer f.Close()
	labels, err := parseLabels(io.LimitReader(f, maxLabelsBytes))
	if err != nil {
		return nil, fmt.Errorf("read labels %s: %w", path, err)
	}
	return labels, nil
}

func parseLabels(r io.Reader) ([]Label, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file")
		}
		return nil, err
	}
	nameCol, catCol := slices.Index(header, "name"), slices.Index(header, "category")
	if nameCol < 0 || catCol < 0 {
		return nil, fmt.Errorf("header %q has no name and category columns", strings.Join(header, ","))
	}
	var labels []Label
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) <= max(nameCol, catCol) {
			return nil, fmt.Errorf("line %d: %d fields, want at least %d", line, len(rec), max(nameCol, catCol)+1)
		}
		cat, err := strconv.Atoi(strings.TrimSpace(rec[catCol]))
		if err != nil {
			return nil, fmt.Errorf("line %d: category %q is not a number", line, rec[catCol])
		}
		if rec[nameCol] == "" {
			return nil, fmt.Errorf("line %d: empty tag name", line)
		}
		labels = append(labels, Label{Name: rec[nameCol], Category: cat})
	}
	if len(labels) == 0 {
		return nil, errors.New("no tags after the header")
	}
	return labels, nil
}

// kaomojis keep their underscores when tags are shown (the list of
// SmilingWolf's wd-tagger app).
var kaomojis = []string{
	"0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3", "6_9",
	">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||",
}

// RatingMode says what the rating outputs add to the tags.
type RatingMode int

const (
	// RatingNone adds no rating tag (the scores are still reported).
	RatingNone RatingMode = iota
	// RatingTag adds the most likely rating as a tag (kohya's
	// --use_rating_tags).
	RatingTag
)

// SelectOptions control which outputs become tags and how they are written.
type SelectOptions struct {
	// GeneralThreshold and CharacterThreshold: a tag is kept when its
	// probability is strictly above. Defaults 0.35 and 0.85.
	GeneralThreshold, CharacterThreshold float32
	// GeneralMCut and CharacterMCut replace the threshold by the MCut
	// threshold of the image's probabilities (characters floored at 0.15).
	GeneralMCut, CharacterMCut bool
	// Rating adds the rating as a tag.
	Rating RatingMode
	// KeepUnderscores writes tags as in the CSV; by default `_` becomes a
	// space except in kaomojis.
	KeepUnderscores bool
	// EscapeParens writes `(` and `)` as `\(` and `\)` for A1111 prompts.
	EscapeParens bool
	// Undesired tags are never written (compared before escaping, ignoring
	// case and `_` versus space).
	Undesired []string
	// AlwaysFirst tags are put first when the model predicts them, in this
	// order (kohya's --always_first_tags); compared like Undesired.
	AlwaysFirst []string
}

// DefaultSelectOptions are SmilingWolf's app defaults.
func DefaultSelectOptions() SelectOptions {
	return SelectOptions{GeneralThreshold: 0.35, CharacterThreshold: 0.85}
}

// ScoredTag is a tag and its probability.
type ScoredTag struct {
	Tag  string
	Prob float32
}

// Prediction is what the tagger found in one image; tags are display names.
type Prediction struct {
	// Ratings are the rating outputs in CSV order.
	Ratings []ScoredTag
	// Characters and General are the kept tags, most likely first.
	Characters, General []ScoredTag
	// GeneralThreshold and CharacterThreshold are the thresholds applied
	// (the MCut values when enabled).
	GeneralThreshold, CharacterThreshold float32
}

// mcutThreshold is the midpoint of the largest gap between neighbouring
// sorted probabilities (Largeron et al., as SmilingWolf's app computes it).
func mcutThreshold(probs []float32) float32 {
	s := slices.Clone(probs)
	slices.SortFunc(s, func(a, b float32) int { return cmpDesc(a, b) })
	if len(s) < 2 {
		return 0
	}
	t := 0
	for i := 1; i < len(s)-1; i++ {
		if s[i]-s[i+1] > s[t]-s[t+1] {
			t = i
		}
	}
	return (s[t] + s[t+1]) / 2
}

func cmpDesc(a, b float32) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// displayName is a CSV name as written in captions.
func displayName(name string, o SelectOptions) string {
	if !o.KeepUnderscores && !slices.Contains(kaomojis, name) {
		name = strings.ReplaceAll(name, "_", " ")
	}
	return name
}

// escapeParens escapes ( and ) for A1111 prompts.
func escapeParens(tag string) string {
	return strings.NewReplacer("(", `\(`, ")", `\)`).Replace(tag)
}

// SelectTags applies thresholds to the probabilities of one image.
func SelectTags(labels []Label, probs []float32, o SelectOptions) Prediction {
	var p Prediction
	var general, chars []ScoredTag
	var gp, cp []float32
	for i, l := range labels {
		st := ScoredTag{Tag: displayName(l.Name, o), Prob: probs[i]}
		switch l.Category {
		case CategoryRating:
			p.Ratings = append(p.Ratings, st)
		case CategoryCharacter:
			chars, cp = append(chars, st), append(cp, st.Prob)
		case CategoryGeneral:
			general, gp = append(general, st), append(gp, st.Prob)
		}
	}
	p.GeneralThreshold, p.CharacterThreshold = o.GeneralThreshold, o.CharacterThreshold
	if o.GeneralMCut {
		p.GeneralThreshold = mcutThreshold(gp)
	}
	if o.CharacterMCut {
		p.CharacterThreshold = max(0.15, mcutThreshold(cp))
	}
	keep := func(all []ScoredTag, thr float32) []ScoredTag {
		var out []ScoredTag
		for _, t := range all {
			if t.Prob > thr && !containsFold(o.Undesired, t.Tag) {
				out = append(out, t)
			}
		}
		slices.SortStableFunc(out, func(a, b ScoredTag) int { return cmpDesc(a.Prob, b.Prob) })
		return out
	}
	p.General = keep(general, p.GeneralThreshold)
	p.Characters = keep(chars, p.CharacterThreshold)
	return p
}

// sameTag compares tags as a user means them: case, surrounding space and
// `_` versus space do not matter ("Long_Hair" is "long hair").
func sameTag(a, b string) bool {
	norm := func(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "_", " ") }
	return strings.EqualFold(norm(a), norm(b))
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return sameTag(x, s) })
}

// Tags returns the caption tags of a prediction: the always-first tags
// that were predicted, the rating (with RatingTag), the characters, then
// the general tags, most likely first, each once.
func (p Prediction) Tags(o SelectOptions) []string {
	var rest []string
	if o.Rating == RatingTag && len(p.Ratings) > 0 {
		best := p.Ratings[0]
		for _, r := range p.Ratings[1:] {
			if r.Prob > best.Prob {
				best = r
			}
		}
		if !containsFold(o.Undesired, best.Tag) {
			rest = append(rest, best.Tag)
		}
	}
	for _, t := range p.Characters {
		rest = append(rest, t.Tag)
	}
	for _, t := range p.General {
		rest = append(rest, t.Tag)
	}
	var out []string
	for _, first := range o.AlwaysFirst {
		if i := slices.IndexFunc(rest, func(t string) bool { return sameTag(t, first) }); i >= 0 {
			out = append(out, rest[i])
			rest = slices.Delete(rest, i, i+1)
		}
	}
	out = append(out, rest...)
	seen := make(map[string]bool, len(out))
	uniq := out[:0]
	for _, t := range out {
		if o.EscapeParens {
			t = escapeParens(t)
		}
		if !seen[t] {
			seen[t] = true
			uniq = append(uniq, t)
		}
	}
	return uniq
}

// MergeTags combines a caption's existing tags with predicted ones. With
// appendTags the existing tags stay first and predicted tags not already
// present follow; otherwise the predicted tags replace them.
func MergeTags(existing, predicted []string, appendTags bool) []string {
	if !appendTags {
		return slices.Clone(predicted)
	}
	out := slices.Clone(existing)
	for _, t := range predicted {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
