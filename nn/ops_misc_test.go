package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

func refUpsample(x []float64, nc, h, w int) []float64 {
	y := make([]float64, nc*4*h*w)
	for p := range nc {
		for i := range 2 * h {
			for j := range 2 * w {
				y[(p*2*h+i)*2*w+j] = x[(p*h+i/2)*w+j/2]
			}
		}
	}
	return y
}

func TestUpsample2x(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	nc, h, w := 5, 3, 4
	x := ktRand(rng, nc*h*w, 1, 0)
	y := make([]float32, nc*4*h*w)
	Upsample2x(y, x, nc, h, w)
	ktClose(t, "y", y, refUpsample(kt64(x), nc, h, w), 0)
	dy := ktRand(rng, len(y), 1, 0)
	dx := make([]float32, len(x))
	Upsample2xBackward(dx, dy, nc, h, w)
	ktClose(t, "dx", dx, ktNumGrad(func(v []float64) []float64 { return refUpsample(v, nc, h, w) }, kt64(x), kt64(dy)), 1e-6)
}

func TestConcatSplitChannels(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	n, ca, cb, hw := 2, 3, 5, 7
	a, b := ktRand(rng, n*ca*hw, 1, 0), ktRand(rng, n*cb*hw, 1, 0)
	y := make([]float32, n*(ca+cb)*hw)
	ConcatChannels(y, a, b, n, ca, cb, hw)
	want := make([]float64, 0, len(y))
	for i := range n {
		want = append(want, kt64(a[i*ca*hw:(i+1)*ca*hw])...)
		want = append(want, kt64(b[i*cb*hw:(i+1)*cb*hw])...)
	}
	ktClose(t, "concat", y, want, 0)
	da, db := make([]float32, len(a)), make([]float32, len(b))
	SplitChannels(da, db, y, n, ca, cb, hw)
	ktClose(t, "split a", da, kt64(a), 0)
	ktClose(t, "split b", db, kt64(b), 0)
	clear(db)
	SplitChannels(nil, db, y, n, ca, cb, hw)
	ktClose(t, "split b alone", db, kt64(b), 0)
}

func TestTokens(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, s := range []struct{ n, c, hw int }{{2, 3, 5}, {1, 70, 33}, {3, 40, 1}} {
		x := ktRand(rng, s.n*s.c*s.hw, 1, 0)
		y := make([]float32, len(x))
		ToTokens(y, x, s.n, s.c, s.hw)
		want := make([]float64, len(x))
		for b := range s.n {
			for ch := range s.c {
				for p := range s.hw {
					want[(b*s.hw+p)*s.c+ch] = float64(x[(b*s.c+ch)*s.hw+p])
				}
			}
		}
		ktClose(t, "tokens", y, want, 0)
		back := make([]float32, len(x))
		FromTokens(back, y, s.n, s.c, s.hw)
		ktClose(t, "round trip", back, kt64(x), 0)
	}
}

func TestElementwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	n := 2*elementGrain + 5
	a, b := ktRand(rng, n, 1, 0), ktRand(rng, n, 1, 0)
	sum, scaled := make([]float64, n), make([]float64, n)
	for i := range n {
		sum[i] = float64(a[i] + b[i])
		scaled[i] = float64((a[i] + b[i]) * 0.5)
	}
	y := make([]float32, n)
	Add(y, a, b)
	ktClose(t, "Add", y, sum, 0)
	y = append([]float32(nil), a...)
	AddInPlace(y, b)
	ktClose(t, "AddInPlace", y, sum, 0)
	Scale(y, 0.5)
	ktClose(t, "Scale", y, scaled, 0)

	nb, c, hw := 2, 3, 4
	x := ktRand(rng, nb*c*hw, 1, 0)
	bias := ktRand(rng, nb*c, 1, 0)
	want := make([]float64, len(x))
	for i := range x {
		want[i] = float64(x[i] + bias[i/hw])
	}
	AddChannelBias(x, bias, nb, c, hw)
	ktClose(t, "AddChannelBias", x, want, 0)
}

func TestTimestepEmbedding(t *testing.T) {
	for _, dim := range []int{320, 7} {
		ts := []float32{0, 1, 500, 999}
		dst := make([]float32, len(ts)*dim)
		for i := range dst {
			dst[i] = float32(math.NaN())
		}
		TimestepEmbedding(dst, ts, dim)
		half := dim / 2
		want := make([]float64, len(dst))
		for r, tv := range ts {
			for i := range half {
				arg := float64(tv) * math.Exp(-math.Log(10000)*float64(i)/float64(half))
				want[r*dim+i] = math.Cos(arg)
				want[r*dim+half+i] = math.Sin(arg)
			}
		}
		// float32 angles of up to 999 radians are off by up to 3e-5.
		ktClose(t, "embedding", dst, want, 1e-4)
	}
}

func TestMSE(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	p, q := ktRand(rng, 37, 2, 0), ktRand(rng, 37, 2, 0)
	ref := func(v []float64) []float64 {
		s := 0.0
		for i := range v {
			d := v[i] - float64(q[i])
			s += d * d
		}
		return []float64{s / float64(len(v))}
	}
	ktClose(t, "MSE", []float32{MSE(p, q)}, ref(kt64(p)), 1e-6)
	d := make([]float32, len(p))
	MSEBackward(d, p, q, 0.25)
	ktClose(t, "MSEBackward", d, ktNumGrad(ref, kt64(p), []float64{0.25}), 1e-6)
}

// TestKernelsAllocateNothing checks the promise of the Workspace design:
// after a warm-up call, no kernel allocates, even when split across cores.
func TestKernelsAllocateNothing(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	n, c, h, w, groups := 2, 16, 24, 20, 4
	conv := Conv2d{Cin: c, Cout: c, KH: 3, KW: 3, Stride: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}
	x := ktRand(rng, n*c*h*w, 1, 0)
	y, dx := make([]float32, len(x)), make([]float32, len(x))
	wt := ktRand(rng, c*c*9, 1, 0)
	dw, db := make([]float32, len(wt)), make([]float32, c)
	mean, rstd := make([]float32, n*h*w), make([]float32, n*h*w)
	gamma, beta := ktRand(rng, c, 1, 1), ktRand(rng, c, 1, 0)
	var ws Workspace
	for _, tc := range []struct {
		name string
		run  func()
	}{
		{"Conv2d", func() {
			conv.Forward(&ws, y, x, wt, db, n, h, w)
			conv.BackwardInput(&ws, dx, y, wt, n, h, w)
			conv.BackwardWeight(&ws, dw, db, y, x, n, h, w)
		}},
		{"GroupNorm", func() {
			GroupNormForward(y, mean, rstd, x, gamma, beta, n, c, h*w, groups, 1e-5, true)
			GroupNormBackward(dx, dw[:c], db, y, x, mean, rstd, gamma, beta, n, c, h*w, groups, true)
		}},
		{"LayerNorm", func() {
			LayerNormForward(y, mean, rstd, x, gamma, beta, n*h*w, c, 1e-5)
			LayerNormBackward(dx, dw[:c], db, y, x, mean, rstd, gamma, n*h*w, c)
		}},
		{"Activations", func() {
			SiLU(y, x)
			GELU(y, x)
			GELUBackward(dx, y, x)
			GEGLU(y[:len(x)/2], x, n*h*w, c/2)
		}},
		{"Elementwise", func() {
			ToTokens(y, x, n, c, h*w)
			Add(dx, x, y)
			AddInPlace(dx, y)
			Scale(dx, 0.5)
			LinearForward(y, x, wt[:c*c], db, n*h*w, c, c)
			LinearBackward(dx, dw[:c*c], db, y, x, wt[:c*c], n*h*w, c, c)
		}},
	} {
		tc.run()
		if allocs := testing.AllocsPerRun(5, tc.run); allocs != 0 {
			t.Errorf("%s: %v allocations per run", tc.name, allocs)
		}
	}
}
