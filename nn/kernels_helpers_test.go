package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ktRand returns n values uniform in [-scale, scale) + shift.
func ktRand(rng *rand.Rand, n int, scale, shift float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32((rng.Float64()*2-1)*scale + shift)
	}
	return x
}

func kt64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// ktClose fails the test when some |got-want| > tol*(1+|want|).
func ktClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i, w := range want {
		d := math.Abs(float64(got[i])-w) / (1 + math.Abs(w))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol || (at >= 0 && math.IsNaN(worst)) {
		t.Errorf("%s: [%d] = %g, want %g (relative error %.3g > %.3g)", what, at, got[at], want[at], worst, tol)
	}
}

// ktNumGrad returns the central finite-difference gradient of
// sum(r * f(x)) with respect to x, all in float64.
func ktNumGrad(f func(x []float64) []float64, x, r []float64) []float64 {
	const h = 1e-5
	g := make([]float64, len(x))
	xp := append([]float64(nil), x...)
	dot := func(y []float64) float64 {
		s := 0.0
		for i, v := range y {
			s += v * r[i]
		}
		return s
	}
	for i := range x {
		xp[i] = x[i] + h
		up := dot(f(xp))
		xp[i] = x[i] - h
		down := dot(f(xp))
		xp[i] = x[i]
		g[i] = (up - down) / (2 * h)
	}
	return g
}

// ktRound rounds float64 values to float32 precision, so that finite
// differences see the same inputs the float32 kernels do.
func ktRound(x []float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(float32(v))
	}
	return y
}
