package dataset

import (
	"image"
	"image/color"
	"math"
	"testing"
)

func TestLoadForTraining(t *testing.T) {
	dir := t.TempDir()
	// 200x100, three vertical bands: red | green | blue (each ~67 px).
	bands := image.NewRGBA(image.Rect(0, 0, 200, 100))
	for y := range 100 {
		for x := range 200 {
			c := color.RGBA{255, 0, 0, 255}
			if x >= 67 {
				c = color.RGBA{0, 255, 0, 255}
			}
			if x >= 134 {
				c = color.RGBA{0, 0, 255, 255}
			}
			bands.Set(x, y, c)
		}
	}
	p := writeFile(t, dir, "bands.png", encodePNG(t, bands))
	// A 64x64 bucket: scaled to 128x64, the centre 64 columns are the
	// middle of the image: mostly green, red at the far left only if the
	// crop reached it (it must not).
	x, err := LoadForTraining(p, Reso{64, 64})
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != 3*64*64 {
		t.Fatalf("len %d", len(x))
	}
	at := func(c, y, xx int) float32 { return x[c*64*64+y*64+xx] }
	for _, v := range x {
		if v < -1 || v > 1 || math.IsNaN(float64(v)) {
			t.Fatalf("value %v outside [-1, 1]", v)
		}
	}
	if at(1, 32, 32) < 0.99 || at(0, 32, 32) > -0.99 {
		t.Errorf("centre not green: r %v g %v", at(0, 32, 32), at(1, 32, 32))
	}
	// Left edge of the crop is image column 32*200/128 = 50: red.
	if at(0, 32, 0) < 0.9 {
		t.Errorf("left edge of crop not red: %v", at(0, 32, 0))
	}
	// Right edge is column 96*200/128 = 150: blue.
	if at(2, 32, 63) < 0.9 {
		t.Errorf("right edge of crop not blue: %v", at(2, 32, 63))
	}

	// Transparent pixels are composited on white.
	tr := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	tr.Set(0, 0, color.NRGBA{0, 0, 0, 255})
	p = writeFile(t, dir, "alpha.png", encodePNG(t, tr))
	x, err = LoadForTraining(p, Reso{32, 32})
	if err != nil {
		t.Fatal(err)
	}
	if x[0] != -1 || x[5] != 1 || x[32*32+5] != 1 || x[2*32*32+100] != 1 {
		t.Errorf("alpha: opaque black %v, transparent %v %v %v", x[0], x[5], x[32*32+5], x[2*32*32+100])
	}

	// Grayscale becomes three equal channels.
	g := image.NewGray(image.Rect(0, 0, 16, 16))
	for i := range g.Pix {
		g.Pix[i] = 51
	}
	p = writeFile(t, dir, "gray.png", encodePNG(t, g))
	x, err = LoadForTraining(p, Reso{16, 16})
	if err != nil {
		t.Fatal(err)
	}
	want := float32(51)/127.5 - 1
	if x[0] != want || x[256] != want || x[512] != want {
		t.Errorf("gray: %v %v %v, want %v", x[0], x[256], x[512], want)
	}

	// Upscaling works too (a 16x16 image into a 64x64 bucket).
	x, err = LoadForTraining(p, Reso{64, 64})
	if err != nil || len(x) != 3*64*64 {
		t.Errorf("upscale: %v, len %d", err, len(x))
	}

	if _, err := LoadForTraining(writeFile(t, dir, "bad.jpg", []byte("text")), Reso{64, 64}); err == nil {
		t.Error("text file loaded")
	}
	if _, err := LoadForTraining(p, Reso{0, 64}); err == nil {
		t.Error("zero bucket accepted")
	}
	huge := writeFile(t, dir, "huge.png", pngHeaderOnly(20000, 20000))
	if _, err := LoadForTraining(huge, Reso{64, 64}); err == nil {
		t.Error("400 MP image accepted")
	}
}

func TestCoverSize(t *testing.T) {
	tests := []struct {
		w, h   int
		bucket Reso
		want   Reso
	}{
		{200, 100, Reso{64, 64}, Reso{128, 64}},
		{100, 200, Reso{64, 64}, Reso{64, 128}},
		{512, 512, Reso{512, 512}, Reso{512, 512}},
		{1000, 750, Reso{576, 448}, Reso{597, 448}},
	}
	for _, tt := range tests {
		if got := CoverSize(tt.w, tt.h, tt.bucket); got != tt.want {
			t.Errorf("CoverSize(%d, %d, %v) = %v, want %v", tt.w, tt.h, tt.bucket, got, tt.want)
		}
	}
}
