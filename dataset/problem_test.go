package dataset

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"
)

// pngHeaderOnly is a PNG signature and IHDR claiming w x h, nothing else.
func pngHeaderOnly(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	jpg := encodeJPEG(t, gradient(64, 48))
	pngData := encodePNG(t, gradient(64, 48))
	small := encodePNG(t, gradient(8, 6))
	gray16 := image.NewGray16(image.Rect(0, 0, 8, 8))
	rgba64 := image.NewRGBA64(image.Rect(0, 0, 8, 8))
	for i := range rgba64.Pix {
		rgba64.Pix[i] = 0xff
	}
	transparent := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	transparent.Set(1, 1, color.NRGBA{255, 0, 0, 128})
	pal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.NRGBA{0, 0, 0, 0}, color.NRGBA{255, 255, 255, 255}})
	opaquePal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White})
	cmyk, err := os.ReadFile("testdata/cmyk.jpeg")
	if err != nil {
		t.Fatal(err)
	}
	webp, err := os.ReadFile("testdata/small.webp")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data     []byte
		kind     Kind
		severity Severity // 0: no problem expected
		opts     Options
	}{
		{"good.jpg", jpg, "", 0, Options{}},
		{"good.png", pngData, "", 0, Options{}},
		{"good.webp", webp, "", 0, Options{}},
		{"opaque-palette.png", encodePNG(t, opaquePal), "", 0, Options{}},
		{"zero.jpg", nil, EmptyFile, Error, Options{}},
		{"truncated.jpg", jpg[:len(jpg)/2], Truncated, Error, Options{}},
		{"truncated-header.jpg", jpg[:20], Truncated, Error, Options{}},
		{"truncated.png", pngData[:len(pngData)-20], Truncated, Error, Options{}},
		{"truncated.webp", webp[:len(webp)/2], Truncated, Error, Options{}},
		{"text.jpg", []byte("hello, I am a text file\nnot a photo\n"), NotAnImage, Error, Options{}},
		{"binary.png", bytes.Repeat([]byte{1, 2, 3, 250}, 100), NotAnImage, Error, Options{}},
		{"huge.png", pngHeaderOnly(12000, 10000), TooLarge, Error, Options{}},
		{"limit.png", pngData, TooLarge, Error, Options{MaxPixels: 1000}},
		{"gray16.png", encodePNG(t, gray16), SixteenBit, Warning, Options{}},
		{"rgb16.png", encodePNG(t, rgba64), SixteenBit, Warning, Options{}},
		{"gray.png", encodePNG(t, image.NewGray(image.Rect(0, 0, 8, 8))), Grayscale, Warning, Options{}},
		{"gray.jpg", encodeJPEG(t, image.NewGray(image.Rect(0, 0, 8, 8))), Grayscale, Warning, Options{}},
		{"cmyk.jpg", cmyk, CMYK, Warning, Options{}},
		{"alpha.png", encodePNG(t, transparent), Transparent, Warning, Options{}},
		{"palette-alpha.png", encodePNG(t, pal), Transparent, Warning, Options{}},
		{"really-png.jpg", pngData, ExtensionMismatch, Warning, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := filepath.Join(dir, tt.name+".d")
			writeFile(t, sub, tt.name, tt.data)
			writeFile(t, sub, "other.png", small)
			d := mustOpen(t, sub, tt.opts)
			if len(d.Images) != 2 {
				t.Fatalf("%d images imported, want 2", len(d.Images))
			}
			other := byRel(t, d, "other.png")
			if len(other.Problems) > 0 || !other.Trainable() {
				t.Errorf("the good file got problems: %v", other.Problems)
			}
			im := byRel(t, d, tt.name)
			if tt.severity == 0 {
				if len(im.Problems) > 0 {
					t.Errorf("unexpected problems: %v", im.Problems)
				}
				return
			}
			if !hasProblem(im, tt.kind, tt.severity) {
				t.Fatalf("problems %v, want %s %s", im.Problems, tt.severity, tt.kind)
			}
			if im.Trainable() != (tt.severity == Warning) {
				t.Errorf("trainable = %v with %v", im.Trainable(), im.Problems)
			}
			for _, p := range im.Problems {
				if p.Detail == "" {
					t.Errorf("problem %s has no explanation", p.Kind)
				}
			}
			if tt.severity == Warning {
				// A warned file still loads for training.
				if _, err := LoadForTraining(im.Path, Reso{64, 64}); err != nil {
					t.Errorf("warned file does not load: %v", err)
				}
			}
			s := d.Summary()
			if (tt.severity == Error) != (len(s.Failed) == 1) {
				t.Errorf("summary failed = %d", len(s.Failed))
			}
		})
	}
}

func TestCaptionNotUTF8(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.png", encodePNG(t, solid(4, 4, color.White)))
	bad := []byte("caf\xe9, na\xefve\n") // Latin-1
	capPath := writeFile(t, dir, "a.txt", bad)
	d := mustOpen(t, dir, Options{})
	im := d.Images[0]
	if !hasProblem(im, CaptionNotUTF8, Error) || !im.CaptionLocked {
		t.Fatalf("problems %v, locked %v", im.Problems, im.CaptionLocked)
	}
	im.Tags = []string{"replaced"}
	if err := im.SaveCaption(); err == nil {
		t.Error("SaveCaption overwrote a non-UTF-8 caption")
	}
	s := NewSaver(1, nil)
	s.Queue(im)
	if err := s.Close(); err == nil {
		t.Error("Saver reported success on a protected caption")
	}
	if st := s.Status(im.CaptionPath); st.State != Failed {
		t.Errorf("state %v", st.State)
	}
	got, _ := os.ReadFile(capPath)
	if !bytes.Equal(got, bad) {
		t.Errorf("caption file changed to %q", got)
	}
}

func TestEXIFOrientation(t *testing.T) {
	dir := t.TempDir()
	// 40x20: left half red, right half blue.
	img := image.NewRGBA(image.Rect(0, 0, 40, 20))
	for y := range 20 {
		for x := range 40 {
			c := color.RGBA{255, 0, 0, 255}
			if x >= 20 {
				c = color.RGBA{0, 0, 255, 255}
			}
			img.Set(x, y, c)
		}
	}
	jpg := encodeJPEG(t, img)
	writeFile(t, dir, "o1.jpg", jpg)
	writeFile(t, dir, "o6.jpg", withOrientation(jpg, 6, false))
	writeFile(t, dir, "o8.jpg", withOrientation(jpg, 8, true))
	writeFile(t, dir, "o3.jpg", withOrientation(jpg, 3, false))
	d := mustOpen(t, dir, Options{})
	tests := []struct {
		rel         string
		orientation int
		w, h        int
		topIsRed    bool // for rotated images: is the top half red?
	}{
		{"o1.jpg", 1, 40, 20, false},
		{"o3.jpg", 3, 40, 20, false},
		{"o6.jpg", 6, 20, 40, false}, // 90° clockwise: left (red) goes to the top
		{"o8.jpg", 8, 20, 40, false},
	}
	for _, tt := range tests {
		im := byRel(t, d, tt.rel)
		if im.Orientation != tt.orientation || im.Width != tt.w || im.Height != tt.h {
			t.Errorf("%s: orientation %d %dx%d, want %d %dx%d", tt.rel, im.Orientation, im.Width, im.Height, tt.orientation, tt.w, tt.h)
		}
		if len(im.Problems) > 0 {
			t.Errorf("%s: %v", tt.rel, im.Problems)
		}
		dec, err := DecodeImage(im.Path, 0)
		if err != nil {
			t.Fatal(err)
		}
		if b := dec.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
			t.Errorf("%s: decoded %v", tt.rel, b)
		}
	}
	red := func(c color.Color) bool { r, _, b, _ := c.RGBA(); return r > b }
	o6, _ := DecodeImage(byRel(t, d, "o6.jpg").Path, 0)
	o8, _ := DecodeImage(byRel(t, d, "o8.jpg").Path, 0)
	o3, _ := DecodeImage(byRel(t, d, "o3.jpg").Path, 0)
	if !red(o6.At(10, 5)) || red(o6.At(10, 35)) {
		t.Error("orientation 6: red should be on top")
	}
	if red(o8.At(10, 5)) || !red(o8.At(10, 35)) {
		t.Error("orientation 8: red should be at the bottom")
	}
	if red(o3.At(5, 10)) || !red(o3.At(35, 10)) {
		t.Error("orientation 3: red should be on the right")
	}
}
