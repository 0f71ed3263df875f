package tagger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lorastudio/dataset"
	"lorastudio/nn"
)

const wd14Testdata = "testdata/wd14"

func loadTiny(t *testing.T) *WD14 {
	t.Helper()
	m, err := LoadWD14(filepath.Join(wd14Testdata, "tiny_vit"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func goldens(t *testing.T) *nn.File {
	t.Helper()
	f, err := nn.OpenSafetensors(filepath.Join(wd14Testdata, "golden_wd14.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func golden(t *testing.T, f *nn.File, name string) []float32 {
	t.Helper()
	g, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return g.Data
}

func maxDiff(t *testing.T, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	d := 0.0
	for i := range got {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
	}
	return d
}

func TestWD14TinyConfigFromShapes(t *testing.T) {
	m := loadTiny(t)
	want := ViTConfig{ImageSize: 64, Patch: 16, Dim: 32, Depth: 2, Heads: 4, MLPHidden: 128, Classes: 12}
	if m.Model.Config != want {
		t.Fatalf("config %+v, want %+v", m.Model.Config, want)
	}
	if len(m.Labels) != 12 || m.Labels[11].Name != "ganyu_(genshin_impact)" || m.Labels[11].Category != CategoryCharacter {
		t.Fatalf("labels %+v", m.Labels)
	}
}

// TestWD14TinyActivations checks every module of the tiny ViT against timm.
func TestWD14TinyActivations(t *testing.T) {
	m := loadTiny(t).Model
	g := goldens(t)
	c := m.Config
	n, dim := c.Tokens(), c.Dim
	for _, img := range []string{"a", "b"} {
		t.Run(img, func(t *testing.T) {
			x := golden(t, g, img+".input")
			var ws nn.Workspace
			tok := make([]float32, n*dim)
			m.PatchEmbed.Forward(&ws, tok, x, 1, c.ImageSize)
			check := func(name string, got []float32) {
				t.Helper()
				if d := maxDiff(t, got, golden(t, g, img+".act."+name)); d > 1e-4 {
					t.Errorf("%s: max|diff| %g > 1e-4", name, d)
				}
			}
			check("patch_embed", tok)
			nn.AddInPlace(tok, m.PosEmbed.Data)
			check("pos_embed_added", tok)
			for i := range m.Blocks {
				m.Blocks[i].Forward(&ws, tok, 1, n)
				check("block"+string(rune('0'+i)), tok)
			}
			normed := make([]float32, n*dim)
			m.Norm.Forward(normed, tok, make([]float32, 2*n), n)
			check("norm", normed)
			check("pooled", meanTokens(normed, 1, n, dim))
		})
	}
}

func TestWD14TinyLogits(t *testing.T) {
	tg := loadTiny(t)
	g := goldens(t)
	for _, tc := range []struct {
		name string
		b    int
	}{{"a", 1}, {"b", 1}, {"batch", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			x := golden(t, g, tc.name+".input")
			logits, err := tg.Model.Forward(context.Background(), x, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(t, logits, golden(t, g, tc.name+".logits")); d > 1e-4 {
				t.Errorf("logits max|diff| %g > 1e-4", d)
			}
			if tc.b != 1 {
				return
			}
			probs, err := tg.ProbabilitiesOf(context.Background(), x, 1)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(t, probs[0], golden(t, g, tc.name+".probs")); d > 1e-5 {
				t.Errorf("probs max|diff| %g > 1e-5", d)
			}
		})
	}
}

func decodeFile(t testing.TB, name string) image.Image {
	t.Helper()
	img, err := dataset.DecodeImage(filepath.Join(wd14Testdata, name), 0)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestWD14Preprocess checks the whole pipeline from PNG files (alpha,
// padding, down- and upscaling) bit for bit against timm's input.
func TestWD14Preprocess(t *testing.T) {
	g := goldens(t)
	for _, img := range []string{"a", "b"} {
		x := Preprocess(decodeFile(t, "synth_"+img+".png"), 64)
		if d := maxDiff(t, x, golden(t, g, img+".input")); d != 0 {
			t.Errorf("synth_%s: max|diff| %g, want 0", img, d)
		}
	}
}

// levelDiff compares a resized image with a reference PNG in 0..255
// levels.
func levelDiff(t *testing.T, got rgb8, refName string) (maxLvl int, meanLvl float64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(wd14Testdata, refName))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Bounds().Dx() != got.W || ref.Bounds().Dy() != got.H {
		t.Fatalf("%s is %v, got %dx%d", refName, ref.Bounds(), got.W, got.H)
	}
	sum := 0
	for y := range got.H {
		for x := range got.W {
			r, g, bl, _ := ref.At(x, y).RGBA()
			want := [3]int{int(r >> 8), int(g >> 8), int(bl >> 8)}
			for c := range 3 {
				d := int(got.Pix[3*(y*got.W+x)+c]) - want[c]
				d = max(d, -d)
				maxLvl = max(maxLvl, d)
				sum += d
			}
		}
	}
	return maxLvl, float64(sum) / float64(3*got.W*got.H)
}

func TestWD14PreprocessPhotos(t *testing.T) {
	tests := []struct {
		file, ref string
		maxLvl    int
		meanLvl   float64
	}{
		// Lossless input: Pillow's integer resize reproduced exactly.
		{"photo_dog_crop320x512.png", "photo_dog_crop_resized448_rgb.png", 0, 0},
		// Go's JPEG decoder differs from libjpeg (the fixture README's
		// bounds for the full pipeline).
		{"photo_cat.jpg", "photo_cat_resized448_rgb.png", 40, 0.8},
	}
	for _, tt := range tests {
		got := squareRGB(decodeFile(t, tt.file), 448)
		maxLvl, mean := levelDiff(t, got, tt.ref)
		t.Logf("%s: max %d levels, mean %.3f", tt.file, maxLvl, mean)
		if maxLvl > tt.maxLvl || mean > tt.meanLvl {
			t.Errorf("%s: max %d levels (bound %d), mean %.3f (bound %.3f)", tt.file, maxLvl, tt.maxLvl, mean, tt.meanLvl)
		}
	}
}

func TestWD14PredictImage(t *testing.T) {
	tg := loadTiny(t)
	g := goldens(t)
	p, err := tg.Probabilities(context.Background(), []image.Image{decodeFile(t, "synth_a.png"), decodeFile(t, "synth_b.png")})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b"} {
		if d := maxDiff(t, p[i], golden(t, g, name+".probs")); d > 1e-5 {
			t.Errorf("%s: probs max|diff| %g > 1e-5", name, d)
		}
	}
}

func TestLoadWD14Errors(t *testing.T) {
	tiny := filepath.Join(wd14Testdata, "tiny_vit")
	weights, err := os.ReadFile(filepath.Join(tiny, WD14WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile(filepath.Join(tiny, WD14LabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	folder := func(t *testing.T, files map[string][]byte) string {
		dir := t.TempDir()
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	shortCSV := []byte(strings.Join(strings.Split(string(csv), "\n")[:6], "\n"))
	tests := []struct {
		name  string
		files map[string][]byte
		want  []string
	}{
		{"no weights", map[string][]byte{WD14LabelsFile: csv}, []string{WD14WeightsFile, "missing"}},
		{"onnx only", map[string][]byte{"model.onnx": []byte("onnx"), WD14LabelsFile: csv}, []string{WD14WeightsFile, "missing", "model.onnx"}},
		{"no labels", map[string][]byte{WD14WeightsFile: weights}, []string{WD14LabelsFile, "missing"}},
		{"label count", map[string][]byte{WD14WeightsFile: weights, WD14LabelsFile: shortCSV}, []string{"12 outputs", "lists 5 tags"}},
		{"bad csv", map[string][]byte{WD14WeightsFile: weights, WD14LabelsFile: []byte("a,b\n1,2\n")}, []string{WD14LabelsFile, "no name and category"}},
		{"not safetensors", map[string][]byte{WD14WeightsFile: []byte("hello world, not a model"), WD14LabelsFile: csv}, []string{WD14WeightsFile}},
		{"swinv2 config", map[string][]byte{WD14WeightsFile: weights, WD14LabelsFile: csv, "config.json": []byte(`{"architecture":"swinv2_base_window8_256"}`)}, []string{"swinv2", "not supported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadWD14(folder(t, tt.files))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := LoadWD14(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing folder: %v", err)
	}
}

// TestLoadWD14WrongShapes rewrites the tiny model with one tensor of the
// wrong shape, and without a tensor.
func TestLoadWD14WrongShapes(t *testing.T) {
	tiny := filepath.Join(wd14Testdata, "tiny_vit")
	src, err := nn.OpenSafetensors(filepath.Join(tiny, WD14WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	csv, err := os.ReadFile(filepath.Join(tiny, WD14LabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		edit   func(map[string]*nn.Tensor)
		want   string
		notViT bool
	}{
		{"fc2 shape", func(m map[string]*nn.Tensor) { m["blocks.1.mlp.fc2.weight"] = nn.New(32, 64) }, `"blocks.1.mlp.fc2.weight" has shape [32 64], want [32 128]`, false},
		{"missing norm", func(m map[string]*nn.Tensor) { delete(m, "norm.bias") }, `missing tensor "norm.bias"`, false},
		{"class token", func(m map[string]*nn.Tensor) { m["cls_token"] = nn.New(1, 1, 32) }, "class token", true},
		{"no pos_embed", func(m map[string]*nn.Tensor) { delete(m, "pos_embed") }, "pos_embed", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]*nn.Tensor{}
			for _, name := range src.Names() {
				if m[name], err = src.Float32(name); err != nil {
					t.Fatal(err)
				}
			}
			tt.edit(m)
			dir := t.TempDir()
			if err := nn.WriteSafetensors(filepath.Join(dir, WD14WeightsFile), m, "F32", nil); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, WD14LabelsFile), csv, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadWD14(filepath.Join(dir, WD14WeightsFile))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to mention %q", err, tt.want)
			}
			if errors.Is(err, ErrNotViT) != tt.notViT {
				t.Errorf("errors.Is(ErrNotViT) = %v, want %v", !tt.notViT, tt.notViT)
			}
		})
	}
}

// shapeSource serves zero tensors of the shapes in a key list and records
// what the loader reads.
type shapeSource struct {
	shapes map[string][]int
	read   map[string]bool
}

func (s *shapeSource) Info(name string) (string, []int, bool) {
	sh, ok := s.shapes[name]
	return "F32", sh, ok
}

func (s *shapeSource) Float32(name string) (*nn.Tensor, error) {
	s.read[name] = true
	return nn.New(s.shapes[name]...), nil
}

// TestLoadRealViTKeys loads the key names and shapes of the real
// wd-vit-tagger-v3 (as timm builds it from its config.json): every tensor
// is used and the size comes out as ViT-B/16 at 448.
func TestLoadRealViTKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates the full model (378 MB)")
	}
	b, err := os.ReadFile(filepath.Join(wd14Testdata, "real_vit_b16_448_keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	src := &shapeSource{read: map[string]bool{}}
	if err := json.Unmarshal(b, &src.shapes); err != nil {
		t.Fatal(err)
	}
	m, err := loadViT(src, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := ViTConfig{ImageSize: 448, Patch: 16, Dim: 768, Depth: 12, Heads: 12, MLPHidden: 3072, Classes: 10861}
	if m.Config != want {
		t.Errorf("config %+v, want %+v", m.Config, want)
	}
	if m.Config.Tokens() != 784 {
		t.Errorf("%d tokens, want 784", m.Config.Tokens())
	}
	for name := range src.shapes {
		if !src.read[name] {
			t.Errorf("tensor %s not used", name)
		}
	}
	if len(src.shapes) != 151 {
		t.Errorf("%d keys, want 151", len(src.shapes))
	}
}

func TestPreprocessShapes(t *testing.T) {
	solid := func(w, h int, c color.Color) image.Image {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		draw.Draw(img, img.Bounds(), image.NewUniform(c), image.Point{}, draw.Src)
		return img
	}
	offset := image.NewRGBA(image.Rect(0, 0, 50, 30)).SubImage(image.Rect(10, 5, 40, 25))
	pal := image.NewPaletted(image.Rect(0, 0, 7, 3), color.Palette{color.NRGBA{0, 0, 0, 0}, color.NRGBA{0, 0, 0, 255}})
	tests := []struct {
		name string
		img  image.Image
		// corner is the expected value of pixel (0, 0) in every channel
		// (1 = white).
		corner float32
	}{
		{"1x1 black", solid(1, 1, color.Black), -1},
		{"thin tall", solid(1, 700, color.Black), 1},
		{"thin wide", solid(700, 1, color.Black), 1},
		{"exact size", solid(64, 64, color.Black), -1},
		{"transparent", solid(20, 30, color.NRGBA{0, 0, 0, 0}), 1},
		{"sub-image", offset, 1},
		{"gray", image.NewGray(image.Rect(0, 0, 3, 3)), -1},
		{"paletted with transparency", pal, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := Preprocess(tt.img, 64)
			if len(x) != 3*64*64 {
				t.Fatalf("%d values", len(x))
			}
			for i, v := range x {
				if !(v >= -1 && v <= 1) {
					t.Fatalf("value %d is %v", i, v)
				}
			}
			for c := range 3 {
				if got := x[c*64*64]; got != tt.corner {
					t.Errorf("channel %d corner %v, want %v", c, got, tt.corner)
				}
			}
		})
	}
}

func TestWD14Cancel(t *testing.T) {
	tg := loadTiny(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tg.Probabilities(ctx, []image.Image{decodeFile(t, "synth_a.png")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Probabilities after cancel: %v", err)
	}
	paths := []string{filepath.Join(wd14Testdata, "synth_a.png")}
	err := tg.PredictFiles(ctx, paths, 0, DefaultSelectOptions(), func(FileResult) { t.Error("result after cancel") })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("PredictFiles after cancel: %v", err)
	}
}

func TestWD14PredictFiles(t *testing.T) {
	tg := loadTiny(t)
	paths := []string{
		filepath.Join(wd14Testdata, "synth_a.png"),
		filepath.Join(wd14Testdata, "golden_tags.json"),
		filepath.Join(wd14Testdata, "synth_b.png"),
	}
	var got []FileResult
	err := tg.PredictFiles(context.Background(), paths, 0, DefaultSelectOptions(), func(r FileResult) { got = append(got, r) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Err != nil || got[1].Err == nil || got[2].Err != nil {
		t.Fatalf("results %+v", got)
	}
	if !strings.Contains(got[1].Err.Error(), "golden_tags.json") {
		t.Errorf("error %q does not name the file", got[1].Err)
	}
	if tags := strings.Join(got[2].Prediction.Tags(DefaultSelectOptions()), ", "); tags != ":d, long hair, blue eyes, ^_^, 1girl" {
		t.Errorf("synth_b tags %q", tags)
	}
}
