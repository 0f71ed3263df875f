package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func refSiLU(z float64) float64 { return z / (1 + math.Exp(-z)) }

// refGroupNorm is the definition of GroupNorm (two-pass float64 statistics).
func refGroupNorm(x, gamma, beta []float64, n, c, hw, groups int, eps float64, silu bool) []float64 {
	y := make([]float64, len(x))
	size := c / groups * hw
	for g := range n * groups {
		xs := x[g*size : (g+1)*size]
		m, v := 0.0, 0.0
		for _, e := range xs {
			m += e
		}
		m /= float64(size)
		for _, e := range xs {
			v += (e - m) * (e - m)
		}
		r := 1 / math.Sqrt(v/float64(size)+eps)
		for i, e := range xs {
			ch := (g%groups)*(c/groups) + i/hw
			z := (e - m) * r
			if gamma != nil {
				z *= gamma[ch]
			}
			if beta != nil {
				z += beta[ch]
			}
			if silu {
				z = refSiLU(z)
			}
			y[g*size+i] = z
		}
	}
	return y
}

func TestGroupNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		n, c, hw, groups int
		affine, silu     bool
	}{
		{2, 6, 35, 3, true, false},
		{2, 6, 35, 3, true, true},
		{3, 4, 5, 4, false, true},
		{1, 9, 7, 1, true, false},
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			const eps = 1e-5
			x := ktRand(rng, tc.n*tc.c*tc.hw, 2, 0.5)
			var gamma, beta []float32
			var g64, b64 []float64
			if tc.affine {
				gamma, beta = ktRand(rng, tc.c, 1, 0.5), ktRand(rng, tc.c, 1, 0)
				g64, b64 = kt64(gamma), kt64(beta)
			}
			y := make([]float32, len(x))
			mean, rstd := make([]float32, tc.n*tc.groups), make([]float32, tc.n*tc.groups)
			GroupNormForward(y, mean, rstd, x, gamma, beta, tc.n, tc.c, tc.hw, tc.groups, eps, tc.silu)
			ktClose(t, "y", y, refGroupNorm(kt64(x), g64, b64, tc.n, tc.c, tc.hw, tc.groups, eps, tc.silu), 1e-5)

			dy := ktRand(rng, len(x), 1, 0)
			r := kt64(dy)
			dx := make([]float32, len(x))
			var dgamma, dbeta []float32
			if tc.affine {
				dgamma, dbeta = ktRand(rng, tc.c, 1, 0), ktRand(rng, tc.c, 1, 0)
			}
			GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, tc.n, tc.c, tc.hw, tc.groups, tc.silu)
			f := func(x, g, b []float64) []float64 {
				return refGroupNorm(x, g, b, tc.n, tc.c, tc.hw, tc.groups, eps, tc.silu)
			}
			ktClose(t, "dx", dx, ktNumGrad(func(v []float64) []float64 { return f(v, g64, b64) }, kt64(x), r), 1e-4)
			if tc.affine {
				ktClose(t, "dgamma", dgamma, ktNumGrad(func(v []float64) []float64 { return f(kt64(x), v, b64) }, g64, r), 1e-4)
				ktClose(t, "dbeta", dbeta, ktNumGrad(func(v []float64) []float64 { return f(kt64(x), g64, v) }, b64, r), 1e-4)
				dx2 := make([]float32, len(x))
				GroupNormBackward(dx2, nil, nil, dy, x, mean, rstd, gamma, beta, tc.n, tc.c, tc.hw, tc.groups, tc.silu)
				ktClose(t, "dx without parameter gradients", dx2, kt64(dx), 0)
			}
		})
	}
}

// TestGroupNormSDShape checks SD's largest GroupNorm (groups of 40,960
// values), where float32 accumulation and gorgonia's op go wrong, on data
// whose mean is large next to its spread.
func TestGroupNormSDShape(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	n, c, hw, groups := 1, 320, 64*64, 32
	x := ktRand(rng, n*c*hw, 0.5, 7)
	gamma, beta := ktRand(rng, c, 1, 1), ktRand(rng, c, 1, 0)
	for _, silu := range []bool{false, true} {
		y := make([]float32, len(x))
		mean, rstd := make([]float32, groups), make([]float32, groups)
		GroupNormForward(y, mean, rstd, x, gamma, beta, n, c, hw, groups, 1e-5, silu)
		ktClose(t, fmt.Sprintf("y (silu %v)", silu), y, refGroupNorm(kt64(x), kt64(gamma), kt64(beta), n, c, hw, groups, 1e-5, silu), 2e-6)
	}
}

func refLayerNorm(x, gamma, beta []float64, rows, dim int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := range rows {
		xs := x[r*dim : (r+1)*dim]
		m, v := 0.0, 0.0
		for _, e := range xs {
			m += e
		}
		m /= float64(dim)
		for _, e := range xs {
			v += (e - m) * (e - m)
		}
		rs := 1 / math.Sqrt(v/float64(dim)+eps)
		for j, e := range xs {
			z := (e - m) * rs
			if gamma != nil {
				z *= gamma[j]
			}
			if beta != nil {
				z += beta[j]
			}
			y[r*dim+j] = z
		}
	}
	return y
}

func TestLayerNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, tc := range []struct {
		rows, dim int
		affine    bool
	}{
		{5, 13, true},
		{1, 1, true},
		{7, 33, false},
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			const eps = 1e-5
			x := ktRand(rng, tc.rows*tc.dim, 2, 1)
			var gamma, beta []float32
			var g64, b64 []float64
			if tc.affine {
				gamma, beta = ktRand(rng, tc.dim, 1, 0.5), ktRand(rng, tc.dim, 1, 0)
				g64, b64 = kt64(gamma), kt64(beta)
			}
			y := make([]float32, len(x))
			mean, rstd := make([]float32, tc.rows), make([]float32, tc.rows)
			LayerNormForward(y, mean, rstd, x, gamma, beta, tc.rows, tc.dim, eps)
			ktClose(t, "y", y, refLayerNorm(kt64(x), g64, b64, tc.rows, tc.dim, eps), 1e-5)

			dy := ktRand(rng, len(x), 1, 0)
			r := kt64(dy)
			dx := make([]float32, len(x))
			var dgamma, dbeta []float32
			if tc.affine {
				dgamma, dbeta = ktRand(rng, tc.dim, 1, 0), ktRand(rng, tc.dim, 1, 0)
			}
			LayerNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, tc.rows, tc.dim)
			f := func(x, g, b []float64) []float64 { return refLayerNorm(x, g, b, tc.rows, tc.dim, eps) }
			ktClose(t, "dx", dx, ktNumGrad(func(v []float64) []float64 { return f(v, g64, b64) }, kt64(x), r), 1e-4)
			if tc.affine {
				ktClose(t, "dgamma", dgamma, ktNumGrad(func(v []float64) []float64 { return f(kt64(x), v, b64) }, g64, r), 1e-4)
				ktClose(t, "dbeta", dbeta, ktNumGrad(func(v []float64) []float64 { return f(kt64(x), g64, v) }, b64, r), 1e-4)
			}
		})
	}
}
