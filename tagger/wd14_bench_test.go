package tagger

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"lorastudio/internal/benchmetrics"
	"lorastudio/nn"
)

// randomViT builds a ViT of size c with seeded random weights scaled like
// an initialised network (N(0, 1/fan_in)), for timing the real size.
func randomViT(c ViTConfig, seed uint64) *ViT {
	rng := rand.New(rand.NewPCG(seed, 1))
	randn := func(std float64, shape ...int) *nn.Tensor {
		t := nn.New(shape...)
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64() * std)
		}
		return t
	}
	ones := func(n int) *nn.Tensor {
		t := nn.New(n)
		for i := range t.Data {
			t.Data[i] = 1
		}
		return t
	}
	lin := func(in, out int) linear {
		return linear{Weight: randn(1/math.Sqrt(float64(in)), out, in), Bias: randn(0.02, out), In: in, Out: out}
	}
	ln := func(d int) layerNorm { return layerNorm{Weight: ones(d), Bias: nn.New(d), Dim: d} }
	k := 3 * c.Patch * c.Patch
	m := &ViT{
		Config:     c,
		PatchEmbed: patchEmbed{Weight: randn(1/math.Sqrt(float64(k)), c.Dim, 3, c.Patch, c.Patch), Bias: randn(0.02, c.Dim), Patch: c.Patch, Dim: c.Dim},
		PosEmbed:   randn(0.02, 1, c.Tokens(), c.Dim),
		Norm:       ln(c.Dim),
		Head:       lin(c.Dim, c.Classes),
		Blocks:     make([]block, c.Depth),
	}
	for i := range m.Blocks {
		qkv := splitRows(lin(c.Dim, 3*c.Dim), 3)
		m.Blocks[i] = block{
			Norm1: ln(c.Dim),
			Attn:  attention{Q: qkv[0], K: qkv[1], V: qkv[2], Proj: lin(c.Dim, c.Dim), Heads: c.Heads},
			Norm2: ln(c.Dim),
			MLP:   mlp{FC1: lin(c.Dim, c.MLPHidden), FC2: lin(c.MLPHidden, c.Dim)},
		}
	}
	return m
}

// wdViTB448 is wd-vit-tagger-v3's size: 784 tokens, 10861 tags.
var wdViTB448 = ViTConfig{ImageSize: 448, Patch: 16, Dim: 768, Depth: 12, Heads: 12, MLPHidden: 3072, Classes: 10861}

func benchForward(b *testing.B, m *ViT) {
	c := m.Config
	x := make([]float32, 3*c.ImageSize*c.ImageSize)
	for i := range x {
		x[i] = float32(i%255)/127.5 - 1
	}
	ctx := context.Background()
	cpu0 := benchmetrics.CPUTime()
	for b.Loop() {
		if _, err := m.Forward(ctx, x, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/image")
	// CPU time is what a loaded machine inflates least.
	b.ReportMetric((benchmetrics.CPUTime()-cpu0).Seconds()/float64(b.N), "cpu-s/image")
}

// BenchmarkWD14TinyForward times the fixture's tiny ViT (16 tokens).
func BenchmarkWD14TinyForward(b *testing.B) {
	benchForward(b, randomViT(ViTConfig{ImageSize: 64, Patch: 16, Dim: 32, Depth: 2, Heads: 4, MLPHidden: 128, Classes: 12}, 1))
}

// BenchmarkWD14ViTB448Forward times a full-size ViT-B/16 at 448 with random
// weights (the real tagger's cost per image).
func BenchmarkWD14ViTB448Forward(b *testing.B) {
	benchForward(b, randomViT(wdViTB448, 1))
}

// BenchmarkWD14Preprocess times decode-independent preprocessing of a
// 512x512 photo (composite, pad, Pillow bicubic to 448, BGR floats).
func BenchmarkWD14Preprocess(b *testing.B) {
	img := decodeFile(b, "photo_cat.jpg")
	for b.Loop() {
		Preprocess(img, 448)
	}
}
