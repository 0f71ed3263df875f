package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// refConv is the direct definition of Conv2d in float64.
func refConv(c Conv2d, x, w, b []float64, n, h, wd int) []float64 {
	oh, ow := c.OutSize(h, wd)
	s := c.stride()
	y := make([]float64, n*c.Cout*oh*ow)
	for i := range n {
		for co := range c.Cout {
			for oy := range oh {
				for ox := range ow {
					acc := 0.0
					if b != nil {
						acc = b[co]
					}
					for ci := range c.Cin {
						for ky := range c.KH {
							iy := oy*s - c.PadTop + ky
							if iy < 0 || iy >= h {
								continue
							}
							for kx := range c.KW {
								ix := ox*s - c.PadLeft + kx
								if ix < 0 || ix >= wd {
									continue
								}
								acc += x[((i*c.Cin+ci)*h+iy)*wd+ix] * w[((co*c.Cin+ci)*c.KH+ky)*c.KW+kx]
							}
						}
					}
					y[((i*c.Cout+co)*oh+oy)*ow+ox] = acc
				}
			}
		}
	}
	return y
}

func TestConv2d(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		conv     Conv2d
		n, h, wd int
		bias     bool
	}{
		{Conv2d{Cin: 3, Cout: 5, KH: 3, KW: 3, Stride: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}, 2, 7, 6, true},
		{Conv2d{Cin: 3, Cout: 4, KH: 3, KW: 3, Stride: 2, PadBottom: 1, PadRight: 1}, 2, 9, 8, true},
		{Conv2d{Cin: 5, Cout: 3, KH: 1, KW: 1}, 3, 4, 5, true},
		{Conv2d{Cin: 5, Cout: 3, KH: 1, KW: 1, Stride: 2}, 2, 5, 5, false},
		{Conv2d{Cin: 2, Cout: 3, KH: 2, KW: 3, Stride: 2, PadTop: 2, PadLeft: 1, PadRight: 3}, 2, 6, 7, false},
		{Conv2d{Cin: 3, Cout: 2, KH: 3, KW: 3, Stride: 1}, 1, 3, 4, true},
	} {
		c := tc.conv
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			oh, ow := c.OutSize(tc.h, tc.wd)
			x := ktRand(rng, tc.n*c.Cin*tc.h*tc.wd, 1, 0)
			w := ktRand(rng, c.Cout*c.Cin*c.KH*c.KW, 1, 0)
			var b []float32
			var b64 []float64
			if tc.bias {
				b = ktRand(rng, c.Cout, 1, 0)
				b64 = kt64(b)
			}
			var ws Workspace
			y := ktRand(rng, tc.n*c.Cout*oh*ow, 1, 0)
			c.Forward(&ws, y, x, w, b, tc.n, tc.h, tc.wd)
			ktClose(t, "y", y, refConv(c, kt64(x), kt64(w), b64, tc.n, tc.h, tc.wd), 1e-5)

			dy := ktRand(rng, len(y), 1, 0)
			r := kt64(dy)
			dx := ktRand(rng, len(x), 1, 0)
			c.BackwardInput(&ws, dx, dy, w, tc.n, tc.h, tc.wd)
			ktClose(t, "dx", dx, ktNumGrad(func(v []float64) []float64 { return refConv(c, v, kt64(w), b64, tc.n, tc.h, tc.wd) }, kt64(x), r), 1e-5)

			dw := ktRand(rng, len(w), 1, 0)
			db := ktRand(rng, c.Cout, 1, 0)
			c.BackwardWeight(&ws, dw, db, dy, x, tc.n, tc.h, tc.wd)
			ktClose(t, "dw", dw, ktNumGrad(func(v []float64) []float64 { return refConv(c, kt64(x), v, b64, tc.n, tc.h, tc.wd) }, kt64(w), r), 1e-5)
			ktClose(t, "db", db, ktNumGrad(func(v []float64) []float64 { return refConv(c, kt64(x), kt64(w), v, tc.n, tc.h, tc.wd) }, make([]float64, c.Cout), r), 1e-5)
		})
	}
}

// TestConv2dBands checks a convolution large enough to be split into several
// im2col bands against the direct definition, including the gradients
// (which are linear, so the reference is the exact adjoint).
func TestConv2dBands(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	c := Conv2d{Cin: 130, Cout: 2, KH: 3, KW: 3, Stride: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}
	n, h, wd := 2, 90, 83
	if oh, ow := c.OutSize(h, wd); c.band(oh, ow) >= oh {
		t.Fatalf("shape fits one band (%d rows); the test needs several", c.band(oh, ow))
	}
	x := ktRand(rng, n*c.Cin*h*wd, 1, 0)
	w := ktRand(rng, c.Cout*c.Cin*c.KH*c.KW, 1, 0)
	b := ktRand(rng, c.Cout, 1, 0)
	var ws Workspace
	y := make([]float32, n*c.Cout*h*wd)
	c.Forward(&ws, y, x, w, b, n, h, wd)
	// Each output sums 1,170 float32 products of order 35; OpenBLAS's
	// summation order differs between its core types, so 1e-5 is too tight.
	ktClose(t, "y", y, refConv(c, kt64(x), kt64(w), kt64(b), n, h, wd), 5e-5)

	// For a linear map y = A x, <dy, A dx> = <A^T dy, dx>: checks both
	// gradients against the forward reference with random probes.
	dy := ktRand(rng, len(y), 1, 0)
	gx := make([]float32, len(x))
	c.BackwardInput(&ws, gx, dy, w, n, h, wd)
	gw := make([]float32, len(w))
	c.BackwardWeight(&ws, gw, nil, dy, x, n, h, wd)
	probe := ktRand(rng, len(x), 1, 0)
	dot := func(a []float64, b []float32) float64 {
		s := 0.0
		for i := range a {
			s += a[i] * float64(b[i])
		}
		return s
	}
	lhs := dot(refConv(c, kt64(probe), kt64(w), nil, n, h, wd), dy)
	rhs := dot(kt64(probe), gx)
	ktClose(t, "<dy, conv(probe)> vs <dx, probe>", []float32{float32(rhs)}, []float64{lhs}, 1e-4)
	probeW := ktRand(rng, len(w), 1, 0)
	lhs = dot(refConv(c, kt64(x), kt64(probeW), nil, n, h, wd), dy)
	rhs = dot(kt64(probeW), gw)
	ktClose(t, "<dy, conv(x; probeW)> vs <dw, probeW>", []float32{float32(rhs)}, []float64{lhs}, 1e-4)
}
