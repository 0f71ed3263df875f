package tagger

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"lorastudio/dataset"
)

// bigDataset is 5,000 images with 10-30 tags each over a 2,000-tag
// vocabulary with Zipf frequencies, like a booru-tagged dataset.
func bigDataset() *dataset.Dataset {
	rng := rand.New(rand.NewPCG(3, 4))
	vocab := make([]string, 2000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("tag %d", i)
	}
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(len(vocab)-1))
	caps := make([]string, 5000)
	for i := range caps {
		tags := make([]string, 10+rng.IntN(21))
		for j := range tags {
			tags[j] = vocab[zipf.Uint64()]
		}
		caps[i] = strings.Join(tags, ", ")
	}
	return memDataset(caps...)
}

func BenchmarkCounts5000(b *testing.B) {
	e := New(bigDataset(), nil)
	for b.Loop() {
		e.Counts()
	}
}

func BenchmarkCountsInSelection5000(b *testing.B) {
	d := bigDataset()
	for b.Loop() {
		CountsIn(d.Images)
	}
}

func BenchmarkFilter5000(b *testing.B) {
	d := bigDataset()
	f := Filter{AllOf: []string{"tag 1"}, AnyOf: []string{"tag 2", "tag 3", "tag 40"}, NoneOf: []string{"tag 5", "tag 6"}}
	for b.Loop() {
		Select(d.Images, f)
	}
}

func BenchmarkTextFilter5000(b *testing.B) {
	d := bigDataset()
	for b.Loop() {
		Select(d.Images, Filter{Text: "tag 19"})
	}
}

func BenchmarkComplete5000(b *testing.B) {
	e := New(bigDataset(), nil)
	for b.Loop() {
		e.Complete("tag 1", 20)
	}
}

// BenchmarkBulkReplaceUndo5000 is a rename on all images plus its undo.
func BenchmarkBulkReplaceUndo5000(b *testing.B) {
	e := New(bigDataset(), nil)
	for b.Loop() {
		e.ReplaceTag(e.All(), "tag 1", "renamed")
		e.Undo()
	}
}

// BenchmarkRegexReplace5000 is a regex find/replace over all captions.
func BenchmarkRegexReplace5000(b *testing.B) {
	e := New(bigDataset(), nil)
	for b.Loop() {
		if _, err := e.FindReplace(e.All(), `tag (1\d)\b`, "t$1", true); err != nil {
			b.Fatal(err)
		}
		e.Undo()
	}
}
