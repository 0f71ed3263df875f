package dataset

import (
	"context"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseFolderName(t *testing.T) {
	tests := []struct {
		name    string
		repeats int
		class   string
		ok      bool
	}{
		{"10_dog", 10, "dog", true},
		{"10_sks dog", 10, "sks dog", true},
		{"3_my_cat", 3, "my_cat", true},
		{"010_x", 10, "x", true},
		{"5_", 5, "", true},
		{"0_reg", 0, "reg", true},
		{"dog", 0, "", false},
		{"dog_10", 0, "", false},
		{"_10", 0, "", false},
		{"-1_dog", 0, "", false},
		{"1.5_dog", 0, "", false},
		{"10dog", 0, "", false},
		{"99999999999999999999_dog", 0, "", false},
	}
	for _, tt := range tests {
		r, c, ok := ParseFolderName(tt.name)
		if ok != tt.ok || (ok && (r != tt.repeats || c != tt.class)) {
			t.Errorf("ParseFolderName(%q) = %d, %q, %v; want %d, %q, %v", tt.name, r, c, ok, tt.repeats, tt.class, tt.ok)
		}
	}
}

func TestOpenLayout(t *testing.T) {
	dir := t.TempDir()
	png := encodePNG(t, solid(8, 6, color.White))
	jpg := encodeJPEG(t, gradient(16, 8))
	files := map[string][]byte{
		"img/10_sks dog/a.png":      png,
		"img/10_sks dog/b.JPG":      jpg,
		"img/10_sks dog/b.txt":      []byte("sks dog, sitting\n"),
		"img/3_cat/c.Jpeg":          jpg,
		"img/3_cat/notes.md":        []byte("not an image"),
		"img/3_cat/sub/d.png":       png,
		"loose/e.BMP":               bmpBytes(t),
		"f.png":                     png,
		".hidden/g.png":             png,
		"img/3_cat/.h.png":          png,
		"img/10_sks dog/x.png.json": []byte("{}"),
	}
	for rel, data := range files {
		writeFile(t, dir, rel, data)
	}
	d := mustOpen(t, dir, Options{})
	var rels []string
	for _, im := range d.Images {
		rels = append(rels, im.Rel)
	}
	want := []string{"f.png", "img/10_sks dog/a.png", "img/10_sks dog/b.JPG", "img/3_cat/c.Jpeg", "img/3_cat/sub/d.png", "loose/e.BMP"}
	if !slices.Equal(rels, want) {
		t.Fatalf("images = %q\nwant %q", rels, want)
	}
	folders := map[string]*Folder{}
	for _, f := range d.Folders {
		folders[f.Rel] = f
	}
	wantFolders := []struct {
		rel     string
		repeats int
		class   string
		kohya   bool
		images  int
	}{
		{".", 1, "", false, 1},
		{"img/10_sks dog", 10, "sks dog", true, 2},
		{"img/3_cat", 3, "cat", true, 1},
		{"img/3_cat/sub", 1, "", false, 1},
		{"loose", 1, "", false, 1},
	}
	if len(folders) != len(wantFolders) {
		t.Fatalf("%d folders, want %d", len(folders), len(wantFolders))
	}
	for _, w := range wantFolders {
		f := folders[w.rel]
		if f == nil {
			t.Fatalf("folder %s missing", w.rel)
		}
		if f.Repeats != w.repeats || f.ClassTokens != w.class || f.Kohya != w.kohya || f.Images != w.images {
			t.Errorf("folder %s = %+v, want %+v", w.rel, *f, w)
		}
	}
	b := byRel(t, d, "img/10_sks dog/b.JPG")
	if !slices.Equal(b.Tags, []string{"sks dog", "sitting"}) || !b.HasCaption {
		t.Errorf("b tags = %q", b.Tags)
	}
	a := byRel(t, d, "img/10_sks dog/a.png")
	if len(a.Tags) != 0 || a.HasCaption || a.TrainingCaption() != "sks dog" {
		t.Errorf("a: tags %q, has %v, training caption %q", a.Tags, a.HasCaption, a.TrainingCaption())
	}
	if a.Width != 8 || a.Height != 6 || a.Format != "png" {
		t.Errorf("a: %dx%d %s", a.Width, a.Height, a.Format)
	}
	if e := byRel(t, d, "loose/e.BMP"); e.Format != "bmp" || !e.Trainable() {
		t.Errorf("bmp: %s %v", e.Format, e.Problems)
	}
	s := d.Summary()
	if s.StepsPerEpoch != 1+10*2+3+1+1 {
		t.Errorf("steps per epoch = %d", s.StepsPerEpoch)
	}
	if s.Untagged != 5 {
		t.Errorf("untagged = %d, want 5", s.Untagged)
	}
	if i := d.Index(b.Path); i < 0 || d.Images[i] != b {
		t.Errorf("Index(b) = %d", i)
	}
}

func TestOpenErrors(t *testing.T) {
	empty := t.TempDir()
	writeFile(t, empty, "readme.txt", []byte("x"))
	if _, err := Open(context.Background(), empty, Options{}); err == nil {
		t.Error("Open of a folder without images succeeded")
	}
	if _, err := Open(context.Background(), filepath.Join(empty, "missing"), Options{}); err == nil {
		t.Error("Open of a missing folder succeeded")
	}
	if _, err := Open(context.Background(), filepath.Join(empty, "readme.txt"), Options{}); err == nil {
		t.Error("Open of a file succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	writeFile(t, dir, "a.png", encodePNG(t, solid(2, 2, color.Black)))
	if _, err := Open(ctx, dir, Options{}); err == nil {
		t.Error("Open with a cancelled context succeeded")
	}
}

func TestCaptionExtension(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.png", encodePNG(t, solid(2, 2, color.Black)))
	writeFile(t, dir, "a.txt", []byte("from txt"))
	writeFile(t, dir, "a.caption", []byte("from caption"))
	for _, ext := range []string{".txt", "caption"} {
		d := mustOpen(t, dir, Options{CaptionExt: ext})
		want := "from txt"
		if ext == "caption" {
			want = "from caption"
		}
		if got := d.Images[0].Caption(); got != want {
			t.Errorf("ext %s: caption %q, want %q", ext, got, want)
		}
	}
}

func TestSharedCaption(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.png", encodePNG(t, solid(2, 2, color.Black)))
	writeFile(t, dir, "a.jpg", encodeJPEG(t, solid(2, 2, color.White)))
	d := mustOpen(t, dir, Options{})
	for _, im := range d.Images {
		if !hasProblem(im, SharedCaption, Warning) {
			t.Errorf("%s: no shared-caption warning: %v", im.Rel, im.Problems)
		}
	}
}

func TestReorganize(t *testing.T) {
	for _, mode := range []Transfer{Copy, Move} {
		src := t.TempDir()
		writeFile(t, src, "photos/a.png", encodePNG(t, solid(4, 4, color.White)))
		writeFile(t, src, "photos/a.txt", []byte("one, two"))
		writeFile(t, src, "photos/b.png", encodePNG(t, solid(4, 4, color.Black)))
		writeFile(t, src, "other/b.png", encodePNG(t, solid(4, 4, color.Gray{50})))
		d := mustOpen(t, src, Options{})
		for _, f := range d.Folders {
			if f.Rel == "photos" {
				f.Repeats, f.ClassTokens = 5, "sks person"
			}
		}
		// An in-memory edit travels with the reorganized caption.
		byRel(t, d, "photos/b.png").Tags = []string{"edited"}
		dest := t.TempDir()
		root, err := d.Reorganize(context.Background(), dest, mode)
		if err != nil {
			t.Fatal(err)
		}
		nd := mustOpen(t, root, Options{})
		var got []string
		for _, im := range nd.Images {
			got = append(got, im.Rel+"="+im.Caption())
		}
		want := []string{"1_other/b.png=", "5_sks person/a.png=one, two", "5_sks person/b.png=edited"}
		if !slices.Equal(got, want) {
			t.Errorf("mode %v: reorganized = %q, want %q", mode, got, want)
		}
		_, err = os.Stat(filepath.Join(src, "photos", "a.png"))
		if moved := os.IsNotExist(err); moved != (mode == Move) {
			t.Errorf("mode %v: original removed = %v", mode, moved)
		}
		if _, err := os.Stat(filepath.Join(src, "photos", "a.txt")); os.IsNotExist(err) != (mode == Move) {
			t.Errorf("mode %v: caption original removed = %v", mode, os.IsNotExist(err))
		}
	}
}

func TestReorganizeNameClash(t *testing.T) {
	src := t.TempDir()
	writeFile(t, src, "x/1_dog/a.png", encodePNG(t, solid(4, 4, color.White)))
	writeFile(t, src, "y/1_dog/a.png", encodePNG(t, solid(4, 4, color.Black)))
	d := mustOpen(t, src, Options{})
	root, err := d.Reorganize(context.Background(), t.TempDir(), Copy)
	if err != nil {
		t.Fatal(err)
	}
	nd := mustOpen(t, root, Options{})
	if len(nd.Images) != 2 || nd.Images[0].Rel != "1_dog/a.png" || nd.Images[1].Rel != "1_dog/a_2.png" {
		t.Errorf("clash handling: %v, %v", nd.Images[0].Rel, nd.Images[len(nd.Images)-1].Rel)
	}
}

func TestRenameFolder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "img/2_cat/a.png", encodePNG(t, solid(4, 4, color.White)))
	writeFile(t, dir, "img/2_cat/a.txt", []byte("cat"))
	d := mustOpen(t, dir, Options{})
	f := d.Folders[0]
	if err := d.RenameFolder(f, 7, "sks cat"); err != nil {
		t.Fatal(err)
	}
	im := d.Images[0]
	if f.Name != "7_sks cat" || f.Repeats != 7 || im.Rel != "img/7_sks cat/a.png" {
		t.Errorf("after rename: folder %+v, image %s", *f, im.Rel)
	}
	if _, err := os.Stat(im.Path); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(im.CaptionPath); err != nil {
		t.Error(err)
	}
	if err := d.RenameFolder(f, 0, "x"); err == nil {
		t.Error("repeats 0 accepted")
	}
}
