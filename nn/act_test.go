package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

func refGELU(v float64) float64 { return 0.5 * v * math.Erfc(-v/math.Sqrt2) }

func refGELUTanh(v float64) float64 {
	return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
}

func refQuickGELU(v float64) float64 { return v / (1 + math.Exp(-1.702*v)) }

func ktMap(f func(float64) float64) func([]float64) []float64 {
	return func(x []float64) []float64 {
		y := make([]float64, len(x))
		for i, v := range x {
			y[i] = f(v)
		}
		return y
	}
}

// ktActInputs spans the range where the activations bend, the tails where
// exp under- or overflows, exact zeros, and enough values for both cores.
func ktActInputs(rng *rand.Rand) []float32 {
	x := ktRand(rng, 3*elementGrain+37, 6, 0)
	copy(x, []float32{0, -0, 1e-8, -1e-8, 30, -30, 90, -90, 200, -200, 0.5, -0.5, 3, -3})
	return x
}

func TestActivations(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	x := ktActInputs(rng)
	small := ktRand(rng, 41, 4, 0)
	for _, tc := range []struct {
		name string
		fwd  func(y, x []float32)
		bwd  func(dx, dy, x []float32)
		ref  func(float64) float64
	}{
		{"SiLU", SiLU, SiLUBackward, refSiLU},
		{"GELU", GELU, GELUBackward, refGELU},
		{"GELUTanh", GELUTanh, nil, refGELUTanh},
		{"QuickGELU", QuickGELU, QuickGELUBackward, refQuickGELU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := make([]float32, len(x))
			tc.fwd(y, x)
			ktClose(t, "y", y, ktMap(tc.ref)(kt64(x)), 2e-6)
			if tc.bwd == nil {
				return
			}
			dy := ktRand(rng, len(small), 1, 0)
			dx := make([]float32, len(small))
			tc.bwd(dx, dy, small)
			ktClose(t, "dx", dx, ktNumGrad(ktMap(tc.ref), kt64(small), kt64(dy)), 1e-5)
			// The tails: the gradient is 0 or 1 (times dy) and must not be NaN.
			ones := make([]float32, len(x))
			for i := range ones {
				ones[i] = 1
			}
			dx = make([]float32, len(x))
			tc.bwd(dx, ones, x)
			for i, v := range dx {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("dx[%d] = %g at x = %g", i, v, x[i])
				}
			}
		})
	}
}

// TestGELUTails checks relative accuracy where GELU and its gradient are
// tiny: x*Phi(x) for negative x must not come from 1+erf, which cancels.
func TestGELUTails(t *testing.T) {
	var x []float32
	for v := -12.0; v <= 0; v += 0.01 {
		x = append(x, float32(v))
	}
	y, dx := make([]float32, len(x)), make([]float32, len(x))
	ones := make([]float32, len(x))
	for i := range ones {
		ones[i] = 1
	}
	GELU(y, x)
	GELUBackward(dx, ones, x)
	for i, v := range x {
		xv := float64(v)
		want := refGELU(xv)
		wantGrad := 0.5*math.Erfc(-xv/math.Sqrt2) + xv*math.Exp(-0.5*xv*xv)/math.Sqrt(2*math.Pi)
		if math.Abs(want) > 1e-30 && math.Abs(float64(y[i])-want) > 3e-5*math.Abs(want) {
			t.Errorf("GELU(%g) = %g, want %g", v, y[i], want)
		}
		if math.Abs(wantGrad) > 1e-30 && math.Abs(float64(dx[i])-wantGrad) > 3e-5*math.Abs(wantGrad)+1e-7 {
			t.Errorf("GELU'(%g) = %g, want %g", v, dx[i], wantGrad)
		}
	}
}

func refGEGLU(x []float64, rows, dim int) []float64 {
	y := make([]float64, rows*dim)
	for r := range rows {
		for j := range dim {
			y[r*dim+j] = x[r*2*dim+j] * refGELU(x[r*2*dim+dim+j])
		}
	}
	return y
}

func TestGEGLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, tc := range []struct{ rows, dim int }{{3, 7}, {1, 1}, {5, 2000}} {
		x := ktRand(rng, tc.rows*2*tc.dim, 3, 0)
		y := make([]float32, tc.rows*tc.dim)
		GEGLU(y, x, tc.rows, tc.dim)
		ktClose(t, "y", y, refGEGLU(kt64(x), tc.rows, tc.dim), 2e-6)
		if tc.rows*tc.dim > 100 {
			continue
		}
		dy := ktRand(rng, len(y), 1, 0)
		dx := make([]float32, len(x))
		GEGLUBackward(dx, dy, x, tc.rows, tc.dim)
		ktClose(t, "dx", dx, ktNumGrad(func(v []float64) []float64 { return refGEGLU(v, tc.rows, tc.dim) }, kt64(x), kt64(dy)), 1e-5)
	}
}
