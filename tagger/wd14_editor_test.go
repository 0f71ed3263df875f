package tagger

import (
	"slices"
	"testing"

	"lorastudio/dataset"
)

func TestApplyAutoTags(t *testing.T) {
	d := memDataset("sks dog, grass", "old tag", "keep me")
	e := New(d, nil)
	pred := map[*dataset.Image][]string{
		d.Images[0]: {"dog", "grass", "outdoors"},
		d.Images[1]: {"cat"},
	}
	if n := e.ApplyAutoTags("auto-tag", pred, true); n != 2 {
		t.Fatalf("append changed %d images, want 2", n)
	}
	want := []string{"sks dog, grass, dog, outdoors", "old tag, cat", "keep me"}
	if got := captions(d); !slices.Equal(got, want) {
		t.Fatalf("after append %q, want %q", got, want)
	}
	checkCounts(t, e)
	if e.UndoLabel() != "auto-tag" {
		t.Errorf("undo label %q", e.UndoLabel())
	}
	if n := e.ApplyAutoTags("auto-tag", pred, false); n != 2 {
		t.Fatalf("replace changed %d images, want 2", n)
	}
	want = []string{"dog, grass, outdoors", "cat", "keep me"}
	if got := captions(d); !slices.Equal(got, want) {
		t.Fatalf("after replace %q, want %q", got, want)
	}
	if e.ApplyAutoTags("auto-tag", pred, false) != 0 {
		t.Error("re-applying the same tags recorded a step")
	}
	e.Undo()
	e.Undo()
	want = []string{"sks dog, grass", "old tag", "keep me"}
	if got := captions(d); !slices.Equal(got, want) {
		t.Fatalf("after undo %q, want %q", got, want)
	}
	checkCounts(t, e)
}
