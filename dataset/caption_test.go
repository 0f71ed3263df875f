package dataset

import (
	"errors"
	"image/color"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseCaption(t *testing.T) {
	tests := []struct {
		name string
		text string
		tags []string
		tail string
		crlf bool
	}{
		{"simple", "a, b, c", []string{"a", "b", "c"}, "", false},
		{"no spaces", "a,b,c", []string{"a", "b", "c"}, "", false},
		{"trailing spaces", "  a ,\tb  , c   \n", []string{"a", "b", "c"}, "", false},
		{"empty tags", "a,, ,b,", []string{"a", "b"}, "", false},
		{"unicode", "café, 猫, naïve, emoji 🐶", []string{"café", "猫", "naïve", "emoji 🐶"}, "", false},
		{"crlf", "a, b\r\nsecond line\r\n", []string{"a", "b"}, "second line\r\n", true},
		{"second line kept", "a, b\nwildcard line\n", []string{"a", "b"}, "wildcard line\n", false},
		{"bom", "\uFEFFa, b", []string{"a", "b"}, "", false},
		{"empty", "", []string{}, "", false},
		{"only newline", "\n", []string{}, "", false},
		{"spaces inside tags", "long hair, blue eyes", []string{"long hair", "blue eyes"}, "", false},
		{"parentheses", "(masterpiece:1.2), a \\(b\\)", []string{"(masterpiece:1.2)", "a \\(b\\)"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCaption(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Tags, tt.tags) || c.Tail != tt.tail || c.CRLF != tt.crlf {
				t.Errorf("got %q tail %q crlf %v; want %q tail %q crlf %v", c.Tags, c.Tail, c.CRLF, tt.tags, tt.tail, tt.crlf)
			}
			// Round trip: what Format writes parses to the same caption.
			again, err := ParseCaption(c.Format())
			if err != nil || !slices.Equal(again.Tags, c.Tags) || again.Tail != c.Tail {
				t.Errorf("round trip: %q -> %q", c.Format(), again.Tags)
			}
		})
	}
	if _, err := ParseCaption("caf\xe9"); !errors.Is(err, ErrCaptionEncoding) {
		t.Errorf("invalid UTF-8: err = %v", err)
	}
}

func TestCaptionFileRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		edit  []string
		saved string
	}{
		{"plain", "a, b", []string{"a", "b", "c"}, "a, b, c"},
		{"unicode", "猫", []string{"猫", "café"}, "猫, café"},
		{"crlf with tail", "a\r\nkeep me\r\n", []string{"x"}, "x\r\nkeep me\r\n"},
		{"lf with tail", "a\nkeep me", []string{"x", "y"}, "x, y\nkeep me"},
		{"trailing spaces dropped", "a ,  b  ", []string{"a", "b"}, "a, b"},
		{"to empty", "a", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "img.png", encodePNG(t, solid(2, 2, color.White)))
			capPath := writeFile(t, dir, "img.txt", []byte(tt.file))
			d := mustOpen(t, dir, Options{})
			im := d.Images[0]
			im.Tags = tt.edit
			if err := im.SaveCaption(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(capPath)
			if string(b) != tt.saved {
				t.Errorf("saved %q, want %q", b, tt.saved)
			}
			d2 := mustOpen(t, dir, Options{})
			if got := d2.Images[0].Tags; !slices.Equal(got, tt.edit) && !(len(got) == 0 && len(tt.edit) == 0) {
				t.Errorf("reread %q, want %q", got, tt.edit)
			}
		})
	}
}

func TestSaverCoalesces(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.png", encodePNG(t, solid(2, 2, color.White)))
	writeFile(t, dir, "b.png", encodePNG(t, solid(2, 2, color.White)))
	d := mustOpen(t, dir, Options{})
	var mu sync.Mutex
	saved := map[string]int{}
	s := NewSaver(50*time.Millisecond, func(path string, st SaveStatus) {
		if st.State == Saved {
			mu.Lock()
			saved[filepath.Base(path)]++
			mu.Unlock()
		}
	})
	a, b := d.Images[0], d.Images[1]
	for i := range 20 {
		a.Tags = []string{"edit", strings.Repeat("x", i)}
		s.Queue(a)
	}
	b.Tags = []string{"b"}
	s.Queue(b)
	if st := s.Status(a.CaptionPath); st.State != Pending {
		t.Errorf("state right after edit = %v", st.State)
	}
	if _, err := os.Stat(a.CaptionPath); !errors.Is(err, fs.ErrNotExist) {
		t.Error("written before the delay")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Unsaved()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if saved["a.txt"] != 1 || saved["b.txt"] != 1 {
		t.Errorf("writes per file = %v, want one each", saved)
	}
	got, _ := os.ReadFile(a.CaptionPath)
	if string(got) != "edit, "+strings.Repeat("x", 19) {
		t.Errorf("a.txt = %q", got)
	}
}

func TestSaverFlush(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.png", encodePNG(t, solid(2, 2, color.White)))
	d := mustOpen(t, dir, Options{})
	s := NewSaver(time.Hour, nil)
	defer s.Close()
	im := d.Images[0]
	im.Tags = []string{"now"}
	s.Queue(im)
	if len(s.Unsaved()) != 1 {
		t.Fatalf("unsaved = %v", s.Unsaved())
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(im.CaptionPath); string(b) != "now" {
		t.Errorf("after Flush: %q", b)
	}
	if st := s.Status(im.CaptionPath); st.State != Saved || len(s.Unsaved()) != 0 {
		t.Errorf("after Flush: %+v %v", st, s.Unsaved())
	}
}

func FuzzParseCaption(f *testing.F) {
	for _, s := range []string{"a, b", "a\r\nb", "\uFEFF,,", "猫, café", "a,\n,b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCaption(s)
		if err != nil {
			return
		}
		for _, tag := range c.Tags {
			if tag == "" || strings.TrimSpace(tag) != tag || strings.ContainsAny(tag, ",\n") {
				t.Fatalf("bad tag %q from %q", tag, s)
			}
		}
		again, err := ParseCaption(c.Format())
		if err != nil || !slices.Equal(again.Tags, c.Tags) {
			t.Fatalf("round trip of %q: %q -> %q", s, c.Tags, again.Tags)
		}
	})
}

func FuzzProbe(f *testing.F) {
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10})
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBP"))
	f.Add([]byte("BM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{"x.jpg", "x.png", "x.webp", "x.bmp"} {
			im := &Image{Path: name, Orientation: 1}
			probeContent(im, data, 1<<20)
			if im.Format == "" && im.Trainable() {
				t.Fatalf("unreadable content trainable: %v", im.Problems)
			}
		}
	})
}
