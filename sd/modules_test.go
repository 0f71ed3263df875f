package sd

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"lorastudio/nn"
)

// randSource hands out seeded random weights for any name, scaled like the
// fixtures: matrices with variance 1/fan_in, norm scales 1 +- 0.1, other
// vectors +- 0.05 (uniform, which is fast enough for the full-size model).
type randSource struct{ rng *rand.Rand }

func newRandSource(seed uint64) randSource { return randSource{rand.New(rand.NewPCG(seed, 1))} }

func (r randSource) Tensor(name string, want ...int) (*nn.Tensor, error) {
	t := nn.New(want...)
	std, mean := 0.05, 0.0
	if len(want) >= 2 {
		std = 1 / math.Sqrt(float64(nn.Numel(want[1:])))
	} else if strings.Contains(name, "norm") && strings.HasSuffix(name, ".weight") {
		std, mean = 0.1, 1
	}
	a := float32(std * math.Sqrt(3) / (1 << 31))
	for i := range t.Data {
		t.Data[i] = float32(mean) + a*float32(int32(r.rng.Uint32()))
	}
	return t, nil
}

func randTensor(rng *rand.Rand, scale float64, shape ...int) *nn.Tensor {
	t := nn.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(scale * rng.NormFloat64())
	}
	return t
}

func bindRandom(t *testing.T, seed uint64, m any) {
	t.Helper()
	if err := Bind(newRandSource(seed), "", m); err != nil {
		t.Fatal(err)
	}
}

// randomAdapter attaches a trainable adapter with a nonzero Up (kohya
// initialises Up to zero, which would hide bugs in Down's gradient).
func randomAdapter(t *testing.T, rng *rand.Rand, l *Linear, rank int) *Adapter {
	t.Helper()
	a := &Adapter{Down: randTensor(rng, 0.3, rank, l.In), Up: randTensor(rng, 0.3, l.Out, rank), Scale: 0.5, Multiplier: 0.8, Trainable: true}
	if err := l.Attach(a); err != nil {
		t.Fatal(err)
	}
	return a
}

// gradCase checks a module's Backward against central finite differences of
// L = sum(y * r) along random directions, in every input and adapter tensor.
type gradCase struct {
	name string
	// vars are the tensors L depends on; grads returns their analytic
	// gradients after backward (same order, nil = not differentiated).
	vars    []*nn.Tensor
	forward func(s *Scratch, train bool) *nn.Tensor
	grads   func(s *Scratch, dy *nn.Tensor) []*nn.Tensor
}

func dot(a, b []float32) float64 {
	sum := 0.0
	for i := range a {
		sum += float64(a[i]) * float64(b[i])
	}
	return sum
}

func runGradCase(t *testing.T, tc gradCase) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	var s Scratch
	y := tc.forward(&s, true)
	inf := tc.forward(&s, false)
	if d := maxAbsDiff(y.Data, inf.Data); d > 1e-5 {
		t.Errorf("Forward and ForwardTrain differ by %.3g", d)
	}
	r := randTensor(rng, 1, y.Shape...)
	grads := tc.grads(&s, r)
	loss := func() float64 {
		out := tc.forward(&s, false)
		l := dot(out.Data, r.Data)
		s.Release(out)
		return l
	}
	const eps = float32(1e-2)
	for i, v := range tc.vars {
		g := grads[i]
		if g == nil {
			continue
		}
		if !nn.SameShape(g.Shape, v.Shape) && len(g.Data) != len(v.Data) {
			t.Fatalf("var %d: gradient %v for %v", i, g.Shape, v.Shape)
		}
		for trial := 0; trial < 2; trial++ {
			dir := randTensor(rng, 1, v.Shape...)
			orig := append([]float32(nil), v.Data...)
			at := func(h float32) float64 {
				for j := range v.Data {
					v.Data[j] = orig[j] + h*dir.Data[j]
				}
				return loss()
			}
			// Fourth-order central difference: curvature of softmax and
			// SiLU stays out of the comparison even with float32 noise.
			fd := (8*(at(eps)-at(-eps)) - (at(2*eps) - at(-2*eps))) / (12 * float64(eps))
			copy(v.Data, orig)
			an := dot(g.Data, dir.Data)
			if math.Abs(fd-an) > 2e-3*math.Max(math.Abs(an), 1) {
				t.Errorf("var %d: analytic %.6g, finite difference %.6g", i, an, fd)
			}
		}
	}
}

func TestLinearBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	l := NewLinear(12, 10, true)
	bindRandom(t, 1, l)
	a := randomAdapter(t, rng, l, 3)
	frozen := randomAdapter(t, rng, l, 2)
	frozen.Trainable = false
	x := randTensor(rng, 1, 2, 5, 12)
	runGradCase(t, gradCase{
		vars: []*nn.Tensor{x, a.Down, a.Up, frozen.Down},
		forward: func(s *Scratch, _ bool) *nn.Tensor {
			return l.Forward(s, x)
		},
		grads: func(s *Scratch, dy *nn.Tensor) []*nn.Tensor {
			dx := l.Backward(s, dy, x, true)
			if frozen.GradDown != nil {
				t.Error("a frozen adapter got gradients")
			}
			return []*nn.Tensor{dx, a.GradDown, a.GradUp, nil}
		},
	})
}

func TestNormBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, silu := range []bool{false, true} {
		g := NewGroupNorm(64, 32, 1e-5, silu)
		bindRandom(t, 2, g)
		x := randTensor(rng, 1, 2, 64, 3, 5)
		runGradCase(t, gradCase{
			vars: []*nn.Tensor{x},
			forward: func(s *Scratch, train bool) *nn.Tensor {
				if train {
					return g.ForwardTrain(s, x)
				}
				return g.Forward(s, x)
			},
			grads: func(s *Scratch, dy *nn.Tensor) []*nn.Tensor { return []*nn.Tensor{g.Backward(s, dy, x)} },
		})
	}
	ln := NewLayerNorm(24, 1e-5)
	bindRandom(t, 3, ln)
	x := randTensor(rng, 1, 2, 7, 24)
	runGradCase(t, gradCase{
		vars: []*nn.Tensor{x},
		forward: func(s *Scratch, train bool) *nn.Tensor {
			if train {
				return ln.ForwardTrain(s, x)
			}
			return ln.Forward(s, x)
		},
		grads: func(s *Scratch, dy *nn.Tensor) []*nn.Tensor { return []*nn.Tensor{ln.Backward(s, dy, x)} },
	})
}

func TestResBlockBackward(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cin, cout int
		temb      int
	}{
		{"shortcut and time", 32, 64, 16},
		{"identity, no time (VAE)", 64, 64, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			r := NewResBlock(tc.cin, tc.cout, tc.temb, 1e-5)
			bindRandom(t, 4, r)
			x := randTensor(rng, 1, 2, tc.cin, 6, 5)
			var temb *nn.Tensor
			if tc.temb > 0 {
				temb = randTensor(rng, 1, 2, tc.temb)
			}
			runGradCase(t, gradCase{
				vars: []*nn.Tensor{x},
				forward: func(s *Scratch, train bool) *nn.Tensor {
					if train {
						return r.ForwardTrain(s, x, temb)
					}
					return r.Forward(s, x, temb)
				},
				grads: func(s *Scratch, dy *nn.Tensor) []*nn.Tensor { return []*nn.Tensor{r.Backward(s, dy)} },
			})
		})
	}
}

func TestResamplersBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	d := NewDownsample(32)
	bindRandom(t, 5, d)
	x := randTensor(rng, 1, 2, 32, 6, 8)
	runGradCase(t, gradCase{
		vars: []*nn.Tensor{x},
		forward: func(s *Scratch, train bool) *nn.Tensor {
			if train {
				return d.ForwardTrain(s, x)
			}
			return d.Forward(s, x)
		},
		grads: func(s *Scratch, dy *nn.Tensor) []*nn.Tensor { return []*nn.Tensor{d.Backward(s, dy)} },
	})
	u := NewUpsample(32)
	bindRandom(t, 6, u)
	x2 := randTensor(rng, 1, 1, 32, 3, 4)
	runGradCase(t, gradCase{
		vars: []*nn.Tensor{x2},
		forward: func(s *Scratch, train bool) *nn.Tensor {
			if train {
				return u.ForwardTrain(s, x2)
			}
			return u.Forward(s, x2)
		},
		grads: func(s *Scratch, dy *nn.Tensor) []*nn.Tensor { return []*nn.Tensor{u.Backward(s, dy)} },
	})
}

func TestAttentionBackward(t *testing.T) {
	for _, cross := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(10, 11))
		ctxDim := 0
		if cross {
			ctxDim = 12
		}
		a := NewAttention(16, ctxDim, 4, false)
		bindRandom(t, 7, a)
		var vars []*nn.Tensor
		var adapters []*Adapter
		for _, l := range []*Linear{a.ToQ, a.ToK, a.ToV, a.ToOut} {
			ad := randomAdapter(t, rng, l, 2)
			adapters = append(adapters, ad)
			vars = append(vars, ad.Down, ad.Up)
		}
		x := randTensor(rng, 1, 2, 9, 16)
		var ctx *nn.Tensor
		if cross {
			ctx = randTensor(rng, 1, 2, 5, 12)
		}
		vars = append(vars, x, ctx)
		runGradCase(t, gradCase{
			vars: vars,
			forward: func(s *Scratch, train bool) *nn.Tensor {
				if train {
					return a.ForwardTrain(s, x, ctx)
				}
				return a.Forward(s, x, ctx)
			},
			grads: func(s *Scratch, dy *nn.Tensor) []*nn.Tensor {
				dx, dctx := a.Backward(s, dy, true, cross)
				var g []*nn.Tensor
				for _, ad := range adapters {
					g = append(g, ad.GradDown, ad.GradUp)
				}
				return append(g, dx, dctx)
			},
		})
	}
}

func TestTransformerBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	st := NewSpatialTransformer(32, 12, 8)
	bindRandom(t, 8, st)
	var vars []*nn.Tensor
	var adapters []*Adapter
	// Adapters on every Linear, as kohya's full target set does.
	if err := Walk("", st, func(_ string, m any) error {
		if l, ok := m.(*Linear); ok {
			ad := randomAdapter(t, rng, l, 2)
			adapters = append(adapters, ad)
			vars = append(vars, ad.Down, ad.Up)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(adapters) != 12 {
		t.Fatalf("%d Linears in a transformer, want 12", len(adapters))
	}
	x := randTensor(rng, 1, 2, 32, 3, 4)
	ctx := randTensor(rng, 1, 2, 5, 12)
	vars = append(vars, x, ctx)
	runGradCase(t, gradCase{
		vars: vars,
		forward: func(s *Scratch, train bool) *nn.Tensor {
			if train {
				return st.ForwardTrain(s, x, ctx)
			}
			return st.Forward(s, x, ctx)
		},
		grads: func(s *Scratch, dy *nn.Tensor) []*nn.Tensor {
			dx, dctx := st.Backward(s, dy, true, true)
			var g []*nn.Tensor
			for _, ad := range adapters {
				g = append(g, ad.GradDown, ad.GradUp)
			}
			return append(g, dx, dctx)
		},
	})
}

func TestUNetBackwardContext(t *testing.T) {
	// The context gradient (for text-encoder training) against finite
	// differences through the whole tiny UNet.
	u := tinyUNet(t)
	rng := rand.New(rand.NewPCG(14, 15))
	x := randTensor(rng, 1, 1, 4, 8, 8)
	ctx := randTensor(rng, 1, 1, 6, 32)
	ts := []float32{500}
	runGradCase(t, gradCase{
		vars: []*nn.Tensor{ctx},
		forward: func(_ *Scratch, train bool) *nn.Tensor {
			var y *nn.Tensor
			var err error
			if train {
				y, err = u.ForwardTrain(x, ts, ctx)
			} else {
				y, err = u.Forward(x, ts, ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			return y
		},
		grads: func(_ *Scratch, dy *nn.Tensor) []*nn.Tensor {
			dctx, err := u.Backward(dy, true)
			if err != nil {
				t.Fatal(err)
			}
			return []*nn.Tensor{dctx}
		},
	})
}

// Without an input gradient the transformer skips everything below its
// lowest adapter; the adapter gradients must not change.
func TestTransformerBackwardStopsEarly(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 17))
	st := NewSpatialTransformer(32, 12, 8)
	bindRandom(t, 9, st)
	blk := st.Blocks[0]
	var adapters []*Adapter
	for _, l := range []*Linear{blk.Attn2.ToQ, blk.Attn2.ToK, blk.Attn2.ToV, blk.Attn2.ToOut} {
		adapters = append(adapters, randomAdapter(t, rng, l, 2))
	}
	x := randTensor(rng, 1, 2, 32, 3, 4)
	ctx := randTensor(rng, 1, 2, 5, 12)
	dy := randTensor(rng, 1, x.Shape...)
	var s Scratch
	grads := func(wantDX bool) []float32 {
		st.ForwardTrain(&s, x, ctx)
		dx, dctx := st.Backward(&s, dy, wantDX, false)
		if (dx != nil) != wantDX || dctx != nil {
			t.Errorf("wantDX %v: dx %v, dctx %v", wantDX, dx, dctx)
		}
		var all []float32
		for _, a := range adapters {
			all = append(all, a.GradDown.Data...)
			all = append(all, a.GradUp.Data...)
		}
		return all
	}
	full := grads(true)
	if d := maxAbsDiff(grads(false), full); d > 1e-6 {
		t.Errorf("adapter gradients differ by %.3g without the input gradient", d)
	}
}

func TestScratchReuse(t *testing.T) {
	var s Scratch
	a := s.Tensor(10, 10)
	b := s.Tensor(50)
	s.Release(a, b)
	if c := s.Tensor(40); &c.Data[0] != &b.Data[0] || len(c.Data) != 40 {
		t.Error("a 40-value request did not reuse the 50-value buffer (best fit)")
	}
	if d := s.Tensor(20); &d.Data[0] == &a.Data[0] {
		t.Error("a 20-value request took a 100-value buffer (over 4x)")
	}
	if e := s.Tensor(100); &e.Data[0] != &a.Data[0] {
		t.Error("the 100-value buffer was not reused")
	}
	if f := s.Tensor(3); len(f.Data) != 3 || len(s.caps) != 0 {
		t.Errorf("pool not empty: %v", s.caps)
	}
}
