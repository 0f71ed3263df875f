package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func refGemm(transA, transB bool, m, n, k int, alpha float64, a []float32, lda int, b []float32, ldb int, beta float64, c []float32, ldc int) []float64 {
	out := kt64(c)
	for i := range m {
		for j := range n {
			s := 0.0
			for p := range k {
				ai, bi := i*lda+p, p*ldb+j
				if transA {
					ai = p*lda + i
				}
				if transB {
					bi = j*ldb + p
				}
				av, bv := a[ai], b[bi]
				s += float64(av) * float64(bv)
			}
			out[i*ldc+j] = alpha*s + beta*float64(c[i*ldc+j])
		}
	}
	return out
}

func TestSgemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		transA, transB bool
		m, n, k, pad   int
		alpha, beta    float32
	}{
		{false, false, 7, 5, 3, 0, 1, 0},
		{true, false, 9, 4, 11, 2, 0.5, 1},
		{false, true, 3, 13, 6, 1, 1, -0.5},
		{true, true, 17, 9, 5, 3, -2, 0.25},
		{false, false, 4, 6, 0, 0, 1, 0.5},
	} {
		t.Run(fmt.Sprintf("%v%v_%dx%dx%d", tc.transA, tc.transB, tc.m, tc.n, tc.k), func(t *testing.T) {
			ar, ac := tc.m, tc.k
			if tc.transA {
				ar, ac = tc.k, tc.m
			}
			br, bc := tc.k, tc.n
			if tc.transB {
				br, bc = tc.n, tc.k
			}
			lda, ldb, ldc := ac+tc.pad, bc+tc.pad, tc.n+tc.pad
			a := ktRand(rng, ar*lda, 1, 0)
			b := ktRand(rng, br*ldb, 1, 0)
			c := ktRand(rng, tc.m*ldc, 1, 0)
			want := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, float64(tc.alpha), a, lda, b, ldb, float64(tc.beta), c, ldc)
			Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
			ktClose(t, "C", c, want, 1e-5)
		})
	}
}

func refLinear(x, w, b []float64, rows, in, out int) []float64 {
	y := make([]float64, rows*out)
	for r := range rows {
		for o := range out {
			s := 0.0
			if b != nil {
				s = b[o]
			}
			for i := range in {
				s += x[r*in+i] * w[o*in+i]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func TestLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		rows, in, out int
		bias          bool
	}{
		{1, 1, 1, true},
		{6, 5, 7, true},
		{10, 13, 3, false},
	} {
		t.Run(fmt.Sprintf("%dx%dx%d", tc.rows, tc.in, tc.out), func(t *testing.T) {
			x := ktRand(rng, tc.rows*tc.in, 1, 0)
			w := ktRand(rng, tc.out*tc.in, 1, 0)
			var b []float32
			var b64 []float64
			if tc.bias {
				b = ktRand(rng, tc.out, 1, 0)
				b64 = kt64(b)
			}
			y := make([]float32, tc.rows*tc.out)
			LinearForward(y, x, w, b, tc.rows, tc.in, tc.out)
			ktClose(t, "y", y, refLinear(kt64(x), kt64(w), b64, tc.rows, tc.in, tc.out), 1e-5)

			dy := ktRand(rng, tc.rows*tc.out, 1, 0)
			dx := ktRand(rng, len(x), 1, 0)
			dw := ktRand(rng, len(w), 1, 0)
			db := ktRand(rng, tc.out, 1, 0)
			LinearBackward(dx, dw, db, dy, x, w, tc.rows, tc.in, tc.out)
			r := kt64(dy)
			ktClose(t, "dx", dx, ktNumGrad(func(v []float64) []float64 { return refLinear(v, kt64(w), b64, tc.rows, tc.in, tc.out) }, kt64(x), r), 1e-6)
			ktClose(t, "dw", dw, ktNumGrad(func(v []float64) []float64 { return refLinear(kt64(x), v, b64, tc.rows, tc.in, tc.out) }, kt64(w), r), 1e-6)
			ktClose(t, "db", db, ktNumGrad(func(v []float64) []float64 { return refLinear(kt64(x), kt64(w), v, tc.rows, tc.in, tc.out) }, make([]float64, tc.out), r), 1e-6)

			dx2 := make([]float32, len(x))
			LinearBackward(dx2, nil, nil, dy, x, w, tc.rows, tc.in, tc.out)
			ktClose(t, "dx alone", dx2, kt64(dx), 0)
		})
	}
}
