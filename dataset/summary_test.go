package dataset

import (
	"bytes"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	dir := t.TempDir()
	same := encodePNG(t, solid(30, 20, color.White))
	writeFile(t, dir, "5_dog/a.png", same)
	writeFile(t, dir, "5_dog/a.txt", []byte("Dog, running"))
	writeFile(t, dir, "5_dog/b.png", same)
	writeFile(t, dir, "5_dog/b.txt", []byte("dog, sitting, dog"))
	writeFile(t, dir, "5_dog/c.png", encodePNG(t, solid(100, 50, color.Black)))
	writeFile(t, dir, "2_cat/d.jpg", encodeJPEG(t, gradient(64, 64)))
	writeFile(t, dir, "2_cat/e.jpg", nil)
	d := mustOpen(t, dir, Options{})
	s := d.Summary()
	if s.Images != 5 || s.Trainable != 4 || len(s.Failed) != 1 {
		t.Errorf("images %d trainable %d failed %d", s.Images, s.Trainable, len(s.Failed))
	}
	if s.StepsPerEpoch != 3*5+1*2 {
		t.Errorf("steps per epoch %d", s.StepsPerEpoch)
	}
	if s.Untagged != 2 {
		t.Errorf("untagged %d", s.Untagged)
	}
	if s.MinReso != (Reso{30, 20}) || s.MaxReso != (Reso{100, 50}) {
		t.Errorf("min %v max %v", s.MinReso, s.MaxReso)
	}
	if len(s.Duplicates) != 1 || len(s.Duplicates[0]) != 2 || s.Duplicates[0][0].Rel != "5_dog/a.png" {
		t.Errorf("duplicates %v", s.Duplicates)
	}
	if !s.Usable() {
		t.Error("not usable")
	}
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"images: 5 (4 trainable, 1 failed", "images x repeats: 17", "5_dog/a.png = 5_dog/b.png", "2_cat/e.jpg: error: empty file", "images without tags: 2"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary text lacks %q:\n%s", want, b.String())
		}
	}

	freq := d.TagFrequency()
	if freq["5_dog"]["dog"] != 4 || freq["5_dog"]["running"] != 1 || freq["2_cat"]["cat"] != 1 {
		t.Errorf("tag frequency %v", freq)
	}
	dirs := d.DatasetDirs()
	if dirs["5_dog"]["n_repeats"] != 5 || dirs["5_dog"]["img_count"] != 3 || dirs["2_cat"]["img_count"] != 1 {
		t.Errorf("dataset dirs %v", dirs)
	}
	fp := d.Fingerprint()
	if len(fp) != 32 || fp != mustOpen(t, dir, Options{}).Fingerprint() {
		t.Errorf("fingerprint %q not stable", fp)
	}
	byRel(t, d, "5_dog/a.png").Tags = []string{"changed"}
	if d.Fingerprint() == fp {
		t.Error("fingerprint ignores captions")
	}
	items, imgs := d.BucketItems()
	if len(items) != 4 || len(imgs) != 4 || items[0].Repeats != 2 {
		t.Errorf("bucket items %v", items)
	}
}

func TestExtractDemo(t *testing.T) {
	dir := t.TempDir()
	root, err := ExtractDemo(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, root, Options{})
	s := d.Summary()
	if s.Images < 50 || s.Trainable != s.Images || s.Untagged != 0 || len(s.Failed) != 0 {
		t.Errorf("demo: %d images, %d trainable, %d untagged, %d failed", s.Images, s.Trainable, s.Untagged, len(s.Failed))
	}
	for _, f := range d.Folders {
		if !f.Kohya || f.Repeats < 1 || f.ClassTokens == "" {
			t.Errorf("demo folder %+v is not kohya layout", *f)
		}
	}
	for _, im := range d.Images {
		if im.Tags[0] != im.Folder.ClassTokens || min(im.Width, im.Height) != 256 {
			t.Errorf("%s: tags %q, %dx%d", im.Rel, im.Tags, im.Width, im.Height)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "references_and_licenses.txt")); err != nil {
		t.Error("credits missing:", err)
	}
	// A second extraction keeps the user's caption edits.
	im := d.Images[0]
	im.Tags = append(im.Tags, "my edit")
	if err := im.SaveCaption(); err != nil {
		t.Fatal(err)
	}
	if _, err := ExtractDemo(dir); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCaption(im.CaptionPath)
	if err != nil || c.Tags[len(c.Tags)-1] != "my edit" {
		t.Errorf("edit lost on re-extract: %v %v", c.Tags, err)
	}
}
