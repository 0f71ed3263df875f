package tagger

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lorastudio/dataset"
)

// memDataset builds a dataset in memory from captions (no files).
func memDataset(captions ...string) *dataset.Dataset {
	f := &dataset.Folder{Rel: ".", Name: "x", Repeats: 1}
	d := &dataset.Dataset{Root: "/mem", Folders: []*dataset.Folder{f}}
	for i, c := range captions {
		d.Images = append(d.Images, &dataset.Image{
			Path: fmt.Sprintf("/mem/%03d.png", i), Rel: fmt.Sprintf("%03d.png", i), Folder: f,
			Tags: dataset.ParseTags(c), CaptionPath: fmt.Sprintf("/mem/%03d.txt", i),
		})
	}
	return d
}

func captions(d *dataset.Dataset) []string {
	out := make([]string, len(d.Images))
	for i, im := range d.Images {
		out[i] = im.Caption()
	}
	return out
}

func TestTagOps(t *testing.T) {
	mustFR := func(find, repl string, re bool) TagOp {
		op, err := FindReplace(find, repl, re)
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	tests := []struct {
		name string
		op   TagOp
		in   string
		want string
	}{
		{"add back", AddTag("new", false), "a, b", "a, b, new"},
		{"add back present", AddTag("a", false), "a, b", "a, b"},
		{"add front", AddTag("new", true), "a, b", "new, a, b"},
		{"add front moves", AddTag("b", true), "a, b, c", "b, a, c"},
		{"add front already first", AddTag("a", true), "a, b", "a, b"},
		{"add to empty", AddTag("x", false), "", "x"},
		{"add trims", AddTag("  x ", true), "a", "x, a"},
		{"add empty", AddTag(" ", true), "a", "a"},
		{"remove", RemoveTag("b"), "a, b, c, b", "a, c"},
		{"remove missing", RemoveTag("z"), "a, b", "a, b"},
		{"replace", ReplaceTag("b", "B"), "a, b, c", "a, B, c"},
		{"replace merges", ReplaceTag("c", "a"), "a, b, c", "a, b"},
		{"replace merges keeps first position", ReplaceTag("a", "c"), "a, b, c", "c, b"},
		{"replace to empty removes", ReplaceTag("b", ""), "a, b", "a"},
		{"trigger first", TriggerFirst("sks"), "dog, sks, grass", "sks, dog, grass"},
		{"trigger first added", TriggerFirst("sks"), "dog", "sks, dog"},
		{"dedupe", RemoveDuplicates(), "a, b, a, c, b", "a, b, c"},
		{"dedupe none", RemoveDuplicates(), "a, b", "a, b"},
		{"sort", SortTags(0), "c, B, a", "a, B, c"},
		{"sort keep 1", SortTags(1), "sks, c, b, a", "sks, a, b, c"},
		{"sort keep all", SortTags(5), "b, a", "b, a"},
		{"prefix", Prefix("sks, photo"), "dog", "sks, photo, dog"},
		{"prefix present", Prefix("sks, photo"), "sks, photo, dog", "sks, photo, dog"},
		{"postfix", Postfix("best quality"), "dog", "dog, best quality"},
		{"postfix present", Postfix("best quality"), "dog, best quality", "dog, best quality"},
		{"find replace plain", mustFR("dog", "cat", false), "dog, hotdog, grass", "cat, hotcat, grass"},
		{"find replace splits", mustFR("a b", "a, b", false), "a b, c", "a, b, c"},
		{"find replace removes", mustFR("x, ", "", false), "x, y", "y"},
		{"regex", mustFR(`\bdog\b`, "cat", true), "dog, hotdog", "cat, hotdog"},
		{"regex groups", mustFR(`(\w+) hair`, "hair ($1)", true), "long hair, red eyes", "hair (long), red eyes"},
		{"regex no match", mustFR(`^zzz`, "y", true), "a", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := dataset.ParseTags(tt.in)
			orig := slices.Clone(in)
			got := dataset.FormatCaption(tt.op(in))
			if got != tt.want {
				t.Errorf("%q -> %q, want %q", tt.in, got, tt.want)
			}
			if !slices.Equal(in, orig) {
				t.Errorf("op modified its input: %q", in)
			}
		})
	}
	if _, err := FindReplace("(", "x", true); err == nil {
		t.Error("bad regex accepted")
	}
	if _, err := FindReplace("", "x", false); err == nil {
		t.Error("empty find accepted")
	}
}

// TestBulkUndo runs every bulk operation on a selection, then undoes and
// redoes it.
func TestBulkUndo(t *testing.T) {
	start := []string{"dog, grass, dog", "sks, cat", "tree", "dog, sky"}
	tests := []struct {
		name string
		run  func(e *Editor, sel []*dataset.Image) int
		want []string
	}{
		{"add front", func(e *Editor, s []*dataset.Image) int { return e.AddTag(s, "photo", true) },
			[]string{"photo, dog, grass, dog", "sks, cat", "photo, tree", "dog, sky"}},
		{"add back", func(e *Editor, s []*dataset.Image) int { return e.AddTag(s, "photo", false) },
			[]string{"dog, grass, dog, photo", "sks, cat", "tree, photo", "dog, sky"}},
		{"remove", func(e *Editor, s []*dataset.Image) int { return e.RemoveTag(s, "dog") },
			[]string{"grass", "sks, cat", "tree", "dog, sky"}},
		{"replace", func(e *Editor, s []*dataset.Image) int { return e.ReplaceTag(s, "dog", "puppy") },
			[]string{"puppy, grass", "sks, cat", "tree", "dog, sky"}},
		{"trigger", func(e *Editor, s []*dataset.Image) int { return e.TriggerFirst(s, "grass") },
			[]string{"grass, dog, dog", "sks, cat", "grass, tree", "dog, sky"}},
		{"dedupe", func(e *Editor, s []*dataset.Image) int { return e.RemoveDuplicates(s) },
			[]string{"dog, grass", "sks, cat", "tree", "dog, sky"}},
		{"sort", func(e *Editor, s []*dataset.Image) int { return e.Sort(s, 0) },
			[]string{"dog, dog, grass", "sks, cat", "tree", "dog, sky"}},
		{"find replace", func(e *Editor, s []*dataset.Image) int { n, _ := e.FindReplace(s, "gr", "br", false); return n },
			[]string{"dog, brass, dog", "sks, cat", "tree", "dog, sky"}},
		{"regex", func(e *Editor, s []*dataset.Image) int { n, _ := e.FindReplace(s, `^(\w+)`, "a $1", true); return n },
			[]string{"a dog, grass, dog", "sks, cat", "a tree", "dog, sky"}},
		{"prefix", func(e *Editor, s []*dataset.Image) int { return e.Prefix(s, "sks") },
			[]string{"sks, dog, grass, dog", "sks, cat", "sks, tree", "dog, sky"}},
		{"postfix", func(e *Editor, s []*dataset.Image) int { return e.Postfix(s, "end") },
			[]string{"dog, grass, dog, end", "sks, cat", "tree, end", "dog, sky"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := memDataset(start...)
			e := New(d, nil)
			var notified int
			e.OnChange = func(ch []*dataset.Image) { notified += len(ch) }
			sel := []*dataset.Image{d.Images[0], d.Images[2], d.Images[0]} // duplicate entry on purpose
			beforeCounts := e.Counts()
			n := tt.run(e, sel)
			if got := captions(d); !slices.Equal(got, tt.want) {
				t.Fatalf("after: %q\nwant %q", got, tt.want)
			}
			changed := 0
			for i := range start {
				if start[i] != tt.want[i] {
					changed++
				}
			}
			if n != changed || notified != changed {
				t.Errorf("reported %d changed, notified %d, want %d", n, notified, changed)
			}
			checkCounts(t, e)
			if !e.CanUndo() || e.UndoLabel() == "" {
				t.Fatal("nothing to undo")
			}
			e.Undo()
			if got := captions(d); !slices.Equal(got, start) {
				t.Errorf("after undo: %q", got)
			}
			if !slices.Equal(e.Counts(), beforeCounts) {
				t.Errorf("counts after undo differ")
			}
			e.Redo()
			if got := captions(d); !slices.Equal(got, tt.want) {
				t.Errorf("after redo: %q", got)
			}
			checkCounts(t, e)
		})
	}
}

// checkCounts compares the incremental counts with a fresh count.
func checkCounts(t *testing.T, e *Editor) {
	t.Helper()
	if got, want := e.Counts(), CountsIn(e.All()); !slices.Equal(got, want) {
		t.Errorf("incremental counts %v, fresh %v", got, want)
	}
}

func TestUndoHistory(t *testing.T) {
	d := memDataset("a")
	e := New(d, nil)
	im := d.Images[0]
	for i := range 150 {
		e.AddTag([]*dataset.Image{im}, fmt.Sprint(i), false)
	}
	if len(im.Tags) != 151 {
		t.Fatalf("%d tags", len(im.Tags))
	}
	undone := 0
	for e.Undo() {
		undone++
	}
	if undone != 150 || im.Caption() != "a" {
		t.Errorf("undid %d steps, caption %q", undone, im.Caption())
	}
	e.Redo()
	e.Redo()
	if im.Caption() != "a, 0, 1" {
		t.Errorf("after two redos: %q", im.Caption())
	}
	// A new edit clears the redo history.
	e.SetTags(im, []string{"x", "y, z", " "})
	if e.CanRedo() || im.Caption() != "x, y, z" {
		t.Errorf("redo after new edit: %v, %q", e.CanRedo(), im.Caption())
	}
	// No-op edits record no step.
	label := e.UndoLabel()
	if e.RemoveTag(e.All(), "missing") != 0 || e.UndoLabel() != label {
		t.Error("no-op recorded")
	}
	e.SetUndoLimit(3)
	for i := range 5 {
		e.AddTag(e.All(), fmt.Sprint("t", i), false)
	}
	n := 0
	for e.Undo() {
		n++
	}
	if n != 3 {
		t.Errorf("limit 3: undid %d", n)
	}
	// The two oldest of the five edits were beyond the limit and stay.
	if !e.MoveTag(im, 0, 2) || im.Caption() != "y, z, x, t0, t1" {
		t.Errorf("move: %q", im.Caption())
	}
	e.Undo()
	if im.Caption() != "x, y, z, t0, t1" {
		t.Errorf("undo move: %q", im.Caption())
	}
	if !e.SetCaption(im, "raw, caption\nsecond line") || im.Caption() != "raw, caption" {
		t.Errorf("set caption: %q", im.Caption())
	}
}

func TestFilters(t *testing.T) {
	d := memDataset("dog, grass", "cat, grass", "dog, cat", "tree", "")
	names := func(imgs []*dataset.Image) string {
		var s []string
		for _, im := range imgs {
			s = append(s, strings.TrimSuffix(im.Rel, ".png"))
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		f    Filter
		want string
	}{
		{Filter{}, "000 001 002 003 004"},
		{Filter{AllOf: []string{"dog"}}, "000 002"},
		{Filter{AllOf: []string{"dog", "grass"}}, "000"},
		{Filter{AnyOf: []string{"dog", "tree"}}, "000 002 003"},
		{Filter{NoneOf: []string{"grass"}}, "002 003 004"},
		{Filter{AnyOf: []string{"dog", "cat"}, NoneOf: []string{"grass"}}, "002"},
		{Filter{Untagged: true}, "004"},
		{Filter{Text: "GRA"}, "000 001"},
		{Filter{AllOf: []string{"missing"}}, ""},
	}
	for _, tt := range tests {
		if got := names(Select(d.Images, tt.f)); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.f, got, tt.want)
		}
	}
	if got := names(WithTag(d.Images, "cat")); got != "001 002" {
		t.Errorf("WithTag: %q", got)
	}
}

func TestCountsAndComplete(t *testing.T) {
	d := memDataset("dog, long hair", "dog, hair ornament, dog", "doge", "black dog, hat")
	e := New(d, nil)
	want := []TagCount{{"dog", 2}, {"black dog", 1}, {"doge", 1}, {"hair ornament", 1}, {"hat", 1}, {"long hair", 1}}
	if got := e.Counts(); !slices.Equal(got, want) {
		t.Errorf("counts %v\nwant %v", got, want)
	}
	if e.Count("dog") != 2 {
		t.Errorf("Count(dog) = %d", e.Count("dog"))
	}
	got := e.Complete("Do", 10)
	if len(got) != 3 || got[0].Tag != "dog" || got[1].Tag != "doge" || got[2].Tag != "black dog" {
		t.Errorf("complete Do: %v", got)
	}
	if got := e.Complete("dog", 10); len(got) != 2 || got[0].Tag != "doge" {
		t.Errorf("complete dog (exact excluded): %v", got)
	}
	if got := e.Complete("ha", 1); len(got) != 1 || got[0].Tag != "hair ornament" {
		t.Errorf("complete ha limit 1: %v", got)
	}
	if e.Complete("", 5) != nil {
		t.Error("empty prefix suggested")
	}
	e.RemoveTag(e.All(), "dog")
	if got := e.Complete("do", 10); len(got) != 2 || got[0].Tag != "doge" {
		t.Errorf("after remove: %v", got)
	}
}

// TestEditorSaves checks that edits reach the caption files through the
// Saver and that undo writes the old caption back.
func TestEditorSaves(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b"} {
		f, err := os.Create(filepath.Join(dir, n+".png"))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, image.NewGray(image.Rect(0, 0, 4, 4)))
		f.Close()
	}
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("dog, grass"), 0o644)
	d, err := dataset.Open(context.Background(), dir, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := dataset.NewSaver(time.Hour, nil)
	defer s.Close()
	e := New(d, s)
	read := func(n string) string {
		b, _ := os.ReadFile(filepath.Join(dir, n+".txt"))
		return string(b)
	}
	e.ReplaceTag(e.All(), "dog", "cat")
	e.AddTag(e.All(), "sks", true)
	if len(s.Unsaved()) != 2 {
		t.Errorf("unsaved %v", s.Unsaved())
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if read("a") != "sks, cat, grass" || read("b") != "sks" {
		t.Errorf("saved %q %q", read("a"), read("b"))
	}
	e.Undo()
	e.Undo()
	s.Flush()
	if read("a") != "dog, grass" || read("b") != "" {
		t.Errorf("after undo %q %q", read("a"), read("b"))
	}
}
