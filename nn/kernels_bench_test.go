package nn

import (
	"math/rand/v2"
	"testing"
)

// The benchmarks use SD 1.x's shapes at 512x512 (64x64 latents). Run them
// with OPENBLAS_CORETYPE set as the brief says until the app detects it.

func BenchmarkSgemm1024(b *testing.B) {
	const n = 1024
	rng := rand.New(rand.NewPCG(1, 1))
	x, y, z := ktRand(rng, n*n, 1, 0), ktRand(rng, n*n, 1, 0), make([]float32, n*n)
	b.ReportAllocs()
	for b.Loop() {
		Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n)
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func benchConv(b *testing.B, c Conv2d, h, w int, backward bool) {
	rng := rand.New(rand.NewPCG(2, 2))
	oh, ow := c.OutSize(h, w)
	x := ktRand(rng, c.Cin*h*w, 1, 0)
	wt := ktRand(rng, c.Cout*c.Cin*c.KH*c.KW, 0.05, 0)
	bias := ktRand(rng, c.Cout, 1, 0)
	y := make([]float32, c.Cout*oh*ow)
	dx := make([]float32, len(x))
	var ws Workspace
	c.Forward(&ws, y, x, wt, bias, 1, h, w)
	if backward {
		c.BackwardInput(&ws, dx, y, wt, 1, h, w)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.Forward(&ws, y, x, wt, bias, 1, h, w)
		if backward {
			c.BackwardInput(&ws, dx, y, wt, 1, h, w)
		}
	}
	flops := 2 * float64(c.Cout*c.Cin*c.KH*c.KW*oh*ow)
	if backward {
		flops *= 2
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

var sdConv = Conv2d{Cin: 320, Cout: 320, KH: 3, KW: 3, Stride: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}

func BenchmarkConv2dForward(b *testing.B)              { benchConv(b, sdConv, 64, 64, false) }
func BenchmarkConv2dForwardBackwardInput(b *testing.B) { benchConv(b, sdConv, 64, 64, true) }

func BenchmarkConv2dBackwardWeight(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	c := sdConv
	x := ktRand(rng, c.Cin*64*64, 1, 0)
	dy := ktRand(rng, c.Cout*64*64, 1, 0)
	dw := make([]float32, c.Cout*c.Cin*9)
	db := make([]float32, c.Cout)
	var ws Workspace
	c.BackwardWeight(&ws, dw, db, dy, x, 1, 64, 64)
	b.ReportAllocs()
	for b.Loop() {
		c.BackwardWeight(&ws, dw, db, dy, x, 1, 64, 64)
	}
}

func benchGroupNorm(b *testing.B, silu, backward bool) {
	rng := rand.New(rand.NewPCG(4, 4))
	n, c, hw, g := 1, 320, 64*64, 32
	x := ktRand(rng, n*c*hw, 1, 0)
	gamma, beta := ktRand(rng, c, 1, 1), ktRand(rng, c, 1, 0)
	y, dx := make([]float32, len(x)), make([]float32, len(x))
	dgamma, dbeta := make([]float32, c), make([]float32, c)
	mean, rstd := make([]float32, n*g), make([]float32, n*g)
	b.ReportAllocs()
	for b.Loop() {
		GroupNormForward(y, mean, rstd, x, gamma, beta, n, c, hw, g, 1e-5, silu)
		if backward {
			GroupNormBackward(dx, dgamma, dbeta, y, x, mean, rstd, gamma, beta, n, c, hw, g, silu)
		}
	}
}

func BenchmarkGroupNormForward(b *testing.B)             { benchGroupNorm(b, false, false) }
func BenchmarkGroupNormSiLUForward(b *testing.B)         { benchGroupNorm(b, true, false) }
func BenchmarkGroupNormSiLUForwardBackward(b *testing.B) { benchGroupNorm(b, true, true) }

func BenchmarkLayerNormForwardBackward(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	rows, dim := 4096, 320
	x := ktRand(rng, rows*dim, 1, 0)
	gamma, beta := ktRand(rng, dim, 1, 1), ktRand(rng, dim, 1, 0)
	y, dx := make([]float32, len(x)), make([]float32, len(x))
	dgamma, dbeta := make([]float32, dim), make([]float32, dim)
	mean, rstd := make([]float32, rows), make([]float32, rows)
	b.ReportAllocs()
	for b.Loop() {
		LayerNormForward(y, mean, rstd, x, gamma, beta, rows, dim, 1e-5)
		LayerNormBackward(dx, dgamma, dbeta, y, x, mean, rstd, gamma, rows, dim)
	}
}

func benchUnary(b *testing.B, f func(y, x []float32)) {
	rng := rand.New(rand.NewPCG(6, 6))
	x := ktRand(rng, 320*64*64, 4, 0)
	y := make([]float32, len(x))
	b.ReportAllocs()
	for b.Loop() {
		f(y, x)
	}
	b.SetBytes(int64(4 * len(x)))
}

func BenchmarkSiLU(b *testing.B)      { benchUnary(b, SiLU) }
func BenchmarkGELU(b *testing.B)      { benchUnary(b, GELU) }
func BenchmarkGELUTanh(b *testing.B)  { benchUnary(b, GELUTanh) }
func BenchmarkQuickGELU(b *testing.B) { benchUnary(b, QuickGELU) }
func BenchmarkSiLUBackward(b *testing.B) {
	benchUnary(b, func(y, x []float32) { SiLUBackward(y, x, x) })
}
func BenchmarkGELUBackward(b *testing.B) {
	benchUnary(b, func(y, x []float32) { GELUBackward(y, x, x) })
}

func BenchmarkGEGLUForwardBackward(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	rows, dim := 4096, 1280
	x := ktRand(rng, rows*2*dim, 3, 0)
	y, dx := make([]float32, rows*dim), make([]float32, len(x))
	b.ReportAllocs()
	for b.Loop() {
		GEGLU(y, x, rows, dim)
		GEGLUBackward(dx, y, x, rows, dim)
	}
}

func BenchmarkToTokensFromTokens(b *testing.B) {
	rng := rand.New(rand.NewPCG(8, 8))
	x := ktRand(rng, 320*4096, 1, 0)
	y := make([]float32, len(x))
	b.ReportAllocs()
	for b.Loop() {
		ToTokens(y, x, 1, 320, 4096)
		FromTokens(x, y, 1, 320, 4096)
	}
}

func BenchmarkAddInPlace(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 9))
	x, y := ktRand(rng, 320*4096, 1, 0), ktRand(rng, 320*4096, 1, 0)
	b.ReportAllocs()
	for b.Loop() {
		AddInPlace(y, x)
	}
}
