package nn

import (
	"math/rand/v2"
	"testing"
)

// TestUpsampleConv checks the parity decomposition against upsampling the
// input and convolving it, in float64.
func TestUpsampleConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tt := range []struct {
		name         string
		n, cin, cout int
		h, w         int
		bias         bool
	}{
		{"square", 1, 8, 8, 5, 5, true},
		{"batch, no bias", 2, 6, 4, 3, 7, false},
		{"one pixel", 1, 3, 5, 1, 1, true},
		{"several im2col bands", 1, 300, 3, 40, 100, true},
	} {
		u := UpsampleConv{Cin: tt.cin, Cout: tt.cout}
		x := ktRand(rng, tt.n*tt.cin*tt.h*tt.w, 1, 0)
		w := ktRand(rng, tt.cout*tt.cin*9, 1, 0)
		var b []float32
		if tt.bias {
			b = ktRand(rng, tt.cout, 1, 0)
		}
		y := make([]float32, tt.n*tt.cout*4*tt.h*tt.w)
		var ws Workspace
		u.Forward(&ws, make([]float32, u.TempSize(tt.n, tt.h, tt.w)), y, x, w, b, tt.n, tt.h, tt.w)

		up := make([]float32, tt.n*tt.cin*4*tt.h*tt.w)
		Upsample2x(up, x, tt.n*tt.cin, tt.h, tt.w)
		c := Conv2d{Cin: tt.cin, Cout: tt.cout, KH: 3, KW: 3, Stride: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}
		var b64 []float64
		if b != nil {
			b64 = kt64(b)
		}
		t.Run(tt.name, func(t *testing.T) {
			ktClose(t, "y", y, refConv(c, kt64(up), kt64(w), b64, tt.n, 2*tt.h, 2*tt.w), 5e-5)
		})
	}
}

// BenchmarkUpsampleConv is the VAE decoder's largest upsampler (256
// channels to 512x512) fused, against upsampling then convolving.
func BenchmarkUpsampleConv(b *testing.B) {
	const n, c, h, w = 1, 256, 256, 256
	rng := rand.New(rand.NewPCG(1, 1))
	x, wt, bias := ktRand(rng, n*c*h*w, 1, 0), ktRand(rng, c*c*9, 1, 0), ktRand(rng, c, 1, 0)
	y := make([]float32, n*c*4*h*w)
	var ws Workspace
	b.Run("fused", func(b *testing.B) {
		u := UpsampleConv{Cin: c, Cout: c}
		tmp := make([]float32, u.TempSize(n, h, w))
		for b.Loop() {
			u.Forward(&ws, tmp, y, x, wt, bias, n, h, w)
		}
	})
	b.Run("upsample+conv", func(b *testing.B) {
		up := make([]float32, n*c*4*h*w)
		conv := Conv2d{Cin: c, Cout: c, KH: 3, KW: 3, Stride: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}
		for b.Loop() {
			Upsample2x(up, x, n*c, h, w)
			conv.Forward(&ws, y, up, wt, bias, n, 2*h, 2*w)
		}
	})
}
