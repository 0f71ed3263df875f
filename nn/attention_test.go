package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"lorastudio/internal/benchmetrics"
)

// attnRef is plain softmax attention in float64 for the query rows
// [rowLo, rowHi) of every batch and head. It returns out [B, Tq, H*D] (rows
// outside the range are zero) and lse [B*H*Tq].
func attnRef(q, k, v []float64, p AttnParams, rowLo, rowHi int) (out, lse []float64) {
	ld, d := p.Heads*p.HeadDim, p.HeadDim
	scale := float64(p.scale())
	out = make([]float64, p.Batch*p.Tq*ld)
	lse = make([]float64, p.Batch*p.Heads*p.Tq)
	s := make([]float64, p.Tk)
	for b := range p.Batch {
		for h := range p.Heads {
			for i := rowLo; i < rowHi; i++ {
				qi := q[(b*p.Tq+i)*ld+h*d:][:d]
				n := p.Tk
				if p.Causal {
					n = min(n, i+1)
				}
				mx := math.Inf(-1)
				for j := range n {
					kj := k[(b*p.Tk+j)*ld+h*d:][:d]
					dot := 0.0
					for c := range d {
						dot += qi[c] * kj[c]
					}
					s[j] = scale * dot
					mx = math.Max(mx, s[j])
				}
				sum := 0.0
				for j := range n {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				oi := out[(b*p.Tq+i)*ld+h*d:][:d]
				for j := range n {
					vj := v[(b*p.Tk+j)*ld+h*d:][:d]
					for c := range d {
						oi[c] += s[j] / sum * vj[c]
					}
				}
				lse[(b*p.Heads+h)*p.Tq+i] = mx + math.Log(sum)
			}
		}
	}
	return out, lse
}

// attnRefGrad is the analytic float64 gradient of sum(dout*attention) with
// respect to q, k and v.
func attnRefGrad(q, k, v, dout []float64, p AttnParams) (dq, dk, dv []float64) {
	ld, d := p.Heads*p.HeadDim, p.HeadDim
	scale := float64(p.scale())
	dq, dk, dv = make([]float64, len(q)), make([]float64, len(k)), make([]float64, len(v))
	out, lse := attnRef(q, k, v, p, 0, p.Tq)
	pr := make([]float64, p.Tk)
	for b := range p.Batch {
		for h := range p.Heads {
			for i := range p.Tq {
				row := (b*p.Tq+i)*ld + h*d
				qi, oi, gi := q[row:][:d], out[row:][:d], dout[row:][:d]
				delta := 0.0
				for c := range d {
					delta += gi[c] * oi[c]
				}
				n := p.Tk
				if p.Causal {
					n = min(n, i+1)
				}
				l := lse[(b*p.Heads+h)*p.Tq+i]
				for j := range n {
					col := (b*p.Tk+j)*ld + h*d
					dot := 0.0
					for c := range d {
						dot += qi[c] * k[col+c]
					}
					pr[j] = math.Exp(scale*dot - l)
					dp := 0.0
					for c := range d {
						dp += gi[c] * v[col+c]
						dv[col+c] += pr[j] * gi[c]
					}
					ds := pr[j] * (dp - delta) * scale
					for c := range d {
						dq[row+c] += ds * k[col+c]
						dk[col+c] += ds * qi[c]
					}
				}
			}
		}
	}
	return dq, dk, dv
}

func attnRand(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32((rng.Float64()*2 - 1) * scale)
	}
	return x
}

func attn64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// attnCompare fails when some |got-want| > tol*(1+|want|) among the
// indices accepted by keep (nil keeps all).
func attnCompare(t *testing.T, what string, got []float32, want []float64, tol float64, keep func(i int) bool) {
	t.Helper()
	worst, at := 0.0, -1
	for i, w := range want {
		if keep != nil && !keep(i) {
			continue
		}
		e := math.Abs(float64(got[i])-w) / (1 + math.Abs(w))
		if e > worst || math.IsNaN(e) {
			worst, at = e, i
			if math.IsNaN(e) {
				break
			}
		}
	}
	if at >= 0 && (worst > tol || math.IsNaN(worst)) {
		t.Errorf("%s: [%d] = %g, want %g (relative error %.3g > %.3g)", what, at, got[at], want[at], worst, tol)
	}
}

type attnCase struct {
	p      AttnParams
	tiling attnTiling
}

func (c attnCase) String() string {
	p := c.p
	return fmt.Sprintf("b%dh%d_q%dk%dd%d_causal%v_m%dbk%dhead%v", p.Batch, p.Heads, p.Tq, p.Tk, p.HeadDim, p.Causal, c.tiling.m, c.tiling.bk, c.tiling.byHead)
}

// attnCases covers odd shapes, both masks, query tiles and key blocks that
// do not divide the sequences (so the online softmax rescales), and both
// ways of splitting the backward.
func attnCases() []attnCase {
	var cases []attnCase
	for _, p := range []AttnParams{
		{Batch: 2, Heads: 3, Tq: 5, Tk: 7, HeadDim: 3},
		{Batch: 2, Heads: 2, Tq: 9, Tk: 4, HeadDim: 5, Causal: true},
		{Batch: 2, Heads: 3, Tq: 7, Tk: 7, HeadDim: 5, Causal: true},
		{Batch: 1, Heads: 1, Tq: 6, Tk: 11, HeadDim: 3, Causal: true},
		{Batch: 2, Heads: 1, Tq: 4, Tk: 9, HeadDim: 40, Scale: 0.3},
	} {
		for _, t := range []attnTiling{
			{m: p.Tq, bk: p.Tk, byHead: true},
			{m: 2, bk: 3, byHead: false},
			{m: 3, bk: 2, byHead: true},
		} {
			cases = append(cases, attnCase{p, t})
		}
	}
	return cases
}

func TestAttentionForwardSmall(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range attnCases() {
		t.Run(c.String(), func(t *testing.T) {
			p := c.p
			nq, nk := p.Batch*p.Tq*p.Heads*p.HeadDim, p.Batch*p.Tk*p.Heads*p.HeadDim
			q, k, v := attnRand(rng, nq, 2), attnRand(rng, nk, 2), attnRand(rng, nk, 1)
			out, lse := make([]float32, nq), make([]float32, p.Batch*p.Heads*p.Tq)
			attentionForward(new(Workspace), out, lse, q, k, v, p, c.tiling)
			wantOut, wantLse := attnRef(attn64(q), attn64(k), attn64(v), p, 0, p.Tq)
			attnCompare(t, "out", out, wantOut, 2e-6, nil)
			attnCompare(t, "lse", lse, wantLse, 2e-6, nil)
			clear(out)
			attentionForward(new(Workspace), out, nil, q, k, v, p, c.tiling)
			attnCompare(t, "out without lse", out, wantOut, 2e-6, nil)
		})
	}
}

// TestAttentionBackwardFiniteDifferences checks the backward kernel against
// central differences of the float64 reference, the loss being sum(r*out).
func TestAttentionBackwardFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range attnCases() {
		t.Run(c.String(), func(t *testing.T) {
			p := c.p
			nq, nk := p.Batch*p.Tq*p.Heads*p.HeadDim, p.Batch*p.Tk*p.Heads*p.HeadDim
			q, k, v := attnRand(rng, nq, 2), attnRand(rng, nk, 2), attnRand(rng, nk, 1)
			r := attnRand(rng, nq, 1)
			ws := new(Workspace)
			out, lse := make([]float32, nq), make([]float32, p.Batch*p.Heads*p.Tq)
			attentionForward(ws, out, lse, q, k, v, p, c.tiling)
			dq, dk, dv := attnRand(rng, nq, 9), attnRand(rng, nk, 9), attnRand(rng, nk, 9)
			attentionBackward(ws, dq, dk, dv, r, q, k, v, out, lse, p, c.tiling)

			q64, k64, v64, r64 := attn64(q), attn64(k), attn64(v), attn64(r)
			loss := func() float64 {
				o, _ := attnRef(q64, k64, v64, p, 0, p.Tq)
				s := 0.0
				for i, x := range o {
					s += x * r64[i]
				}
				return s
			}
			numGrad := func(x []float64) []float64 {
				const h = 1e-5
				g := make([]float64, len(x))
				for i := range x {
					x0 := x[i]
					x[i] = x0 + h
					up := loss()
					x[i] = x0 - h
					down := loss()
					x[i] = x0
					g[i] = (up - down) / (2 * h)
				}
				return g
			}
			attnCompare(t, "dq", dq, numGrad(q64), 2e-5, nil)
			attnCompare(t, "dk", dk, numGrad(k64), 2e-5, nil)
			attnCompare(t, "dv", dv, numGrad(v64), 2e-5, nil)
		})
	}
}

// TestAttentionDefaultTiling runs the exported functions on shapes bigger
// than a tile and a key block (CLIP, a cross-attention, a VAE-like single
// head) against the analytic float64 gradients.
func TestAttentionDefaultTiling(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, p := range []AttnParams{
		{Batch: 2, Heads: 12, Tq: 77, Tk: 77, HeadDim: 64, Causal: true},
		{Batch: 1, Heads: 8, Tq: 300, Tk: 77, HeadDim: 40},
		{Batch: 1, Heads: 1, Tq: 257, Tk: 1500, HeadDim: 24, Causal: true},
		{Batch: 1, Heads: 3, Tq: 1100, Tk: 1030, HeadDim: 8},
	} {
		t.Run(fmt.Sprintf("b%dh%d_q%dk%dd%d_causal%v", p.Batch, p.Heads, p.Tq, p.Tk, p.HeadDim, p.Causal), func(t *testing.T) {
			nq, nk := p.Batch*p.Tq*p.Heads*p.HeadDim, p.Batch*p.Tk*p.Heads*p.HeadDim
			q, k, v := attnRand(rng, nq, 1), attnRand(rng, nk, 1), attnRand(rng, nk, 1)
			dout := attnRand(rng, nq, 1)
			ws := new(Workspace)
			out, lse := make([]float32, nq), make([]float32, p.Batch*p.Heads*p.Tq)
			AttentionForward(ws, out, lse, q, k, v, p)
			dq, dk, dv := make([]float32, nq), make([]float32, nk), make([]float32, nk)
			AttentionBackward(ws, dq, dk, dv, dout, q, k, v, out, lse, p)
			q64, k64, v64 := attn64(q), attn64(k), attn64(v)
			wantOut, wantLse := attnRef(q64, k64, v64, p, 0, p.Tq)
			attnCompare(t, "out", out, wantOut, 1e-5, nil)
			attnCompare(t, "lse", lse, wantLse, 1e-5, nil)
			wq, wk, wv := attnRefGrad(q64, k64, v64, attn64(dout), p)
			attnCompare(t, "dq", dq, wq, 1e-5, nil)
			attnCompare(t, "dk", dk, wk, 1e-5, nil)
			attnCompare(t, "dv", dv, wv, 1e-5, nil)
		})
	}
}

// TestAttentionLargeScores uses scores in the hundreds, so that the running
// maximum jumps between key blocks and most probabilities underflow.
func TestAttentionLargeScores(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, c := range attnCases() {
		t.Run(c.String(), func(t *testing.T) {
			p := c.p
			nq, nk := p.Batch*p.Tq*p.Heads*p.HeadDim, p.Batch*p.Tk*p.Heads*p.HeadDim
			q, k, v, dout := attnRand(rng, nq, 15), attnRand(rng, nk, 15), attnRand(rng, nk, 1), attnRand(rng, nq, 1)
			ws := new(Workspace)
			out, lse := make([]float32, nq), make([]float32, p.Batch*p.Heads*p.Tq)
			attentionForward(ws, out, lse, q, k, v, p, c.tiling)
			dq, dk, dv := make([]float32, nq), make([]float32, nk), make([]float32, nk)
			attentionBackward(ws, dq, dk, dv, dout, q, k, v, out, lse, p, c.tiling)
			q64, k64, v64 := attn64(q), attn64(k), attn64(v)
			wantOut, wantLse := attnRef(q64, k64, v64, p, 0, p.Tq)
			attnCompare(t, "out", out, wantOut, 1e-5, nil)
			attnCompare(t, "lse", lse, wantLse, 1e-5, nil)
			wq, wk, wv := attnRefGrad(q64, k64, v64, attn64(dout), p)
			// Scores ~100 amplify float32 rounding of q and k in the
			// gradients by their size: compare relative to the largest.
			for _, g := range []struct {
				name string
				got  []float32
				want []float64
			}{{"dq", dq, wq}, {"dk", dk, wk}, {"dv", dv, wv}} {
				big := 0.0
				for _, w := range g.want {
					big = math.Max(big, math.Abs(w))
				}
				for i, w := range g.want {
					if e := math.Abs(float64(g.got[i])-w) / (1 + big); e > 1e-4 || math.IsNaN(e) {
						t.Fatalf("%s[%d] = %g, want %g", g.name, i, g.got[i], w)
					}
				}
			}
		})
	}
}

// TestAttentionForwardSDShape checks SD's largest self-attention (8 heads,
// 4096 tokens, head dim 40) on a sample of query rows.
func TestAttentionForwardSDShape(t *testing.T) {
	p := AttnParams{Batch: 1, Heads: 8, Tq: 4096, Tk: 4096, HeadDim: 40}
	rng := rand.New(rand.NewPCG(9, 10))
	n := p.Tq * p.Heads * p.HeadDim
	q, k, v := attnRand(rng, n, 2), attnRand(rng, n, 2), attnRand(rng, n, 1)
	out, lse := make([]float32, n), make([]float32, p.Heads*p.Tq)
	AttentionForward(new(Workspace), out, lse, q, k, v, p)
	const lo, hi = 2000, 2050 // crosses a query tile boundary
	wantOut, wantLse := attnRef(attn64(q), attn64(k), attn64(v), p, lo, hi)
	ld := p.Heads * p.HeadDim
	attnCompare(t, "out", out, wantOut, 1e-5, func(i int) bool { return i/ld >= lo && i/ld < hi })
	attnCompare(t, "lse", lse, wantLse, 1e-5, func(i int) bool { return i%p.Tq >= lo && i%p.Tq < hi })
}

// TestAttentionBackwardSDShape checks the backward on SD's largest
// self-attention for sampled query rows (dq) and key rows (dk, dv). The
// float64 reference takes lse and D_i = rowsum(dout*out) from the forward,
// whose rows TestAttentionForwardSDShape checks; recomputing them for all
// 4096 rows in float64 would take seconds.
func TestAttentionBackwardSDShape(t *testing.T) {
	p := AttnParams{Batch: 1, Heads: 8, Tq: 4096, Tk: 4096, HeadDim: 40}
	rng := rand.New(rand.NewPCG(15, 16))
	n := p.Tq * p.Heads * p.HeadDim
	q, k, v, dout := attnRand(rng, n, 2), attnRand(rng, n, 2), attnRand(rng, n, 1), attnRand(rng, n, 1)
	ws := new(Workspace)
	out, lse := make([]float32, n), make([]float32, p.Heads*p.Tq)
	AttentionForward(ws, out, lse, q, k, v, p)
	dq, dk, dv := make([]float32, n), make([]float32, n), make([]float32, n)
	AttentionBackward(ws, dq, dk, dv, dout, q, k, v, out, lse, p)

	d, ld, scale := p.HeadDim, p.Heads*p.HeadDim, float64(p.scale())
	dot := func(a, b []float32) float64 {
		s := 0.0
		for c := range d {
			s += float64(a[c]) * float64(b[c])
		}
		return s
	}
	row := func(x []float32, i, h int) []float32 { return x[i*ld+h*d:][:d] }
	// prob returns P_ij and dS_ij/scale of head h.
	prob := func(i, j, h int) (pr, ds float64) {
		pr = math.Exp(scale*dot(row(q, i, h), row(k, j, h)) - float64(lse[h*p.Tq+i]))
		delta := dot(row(dout, i, h), row(out, i, h))
		return pr, pr * (dot(row(dout, i, h), row(v, j, h)) - delta)
	}
	samples := []int{0, 1, 1000, 2047, 2048, 4095}
	for h := range p.Heads {
		for _, i := range samples {
			want := make([]float64, d)
			for j := range p.Tk {
				_, ds := prob(i, j, h)
				for c, kc := range row(k, j, h) {
					want[c] += scale * ds * float64(kc)
				}
			}
			attnCompare(t, fmt.Sprintf("dq[h%d,i%d]", h, i), row(dq, i, h), want, 1e-5, nil)
		}
		for _, j := range samples {
			wantK, wantV := make([]float64, d), make([]float64, d)
			for i := range p.Tq {
				pr, ds := prob(i, j, h)
				for c := range d {
					wantK[c] += scale * ds * float64(row(q, i, h)[c])
					wantV[c] += pr * float64(row(dout, i, h)[c])
				}
			}
			attnCompare(t, fmt.Sprintf("dk[h%d,j%d]", h, j), row(dk, j, h), wantK, 1e-5, nil)
			attnCompare(t, fmt.Sprintf("dv[h%d,j%d]", h, j), row(dv, j, h), wantV, 1e-5, nil)
		}
	}
}

// TestAttentionConcurrent runs calls with their own workspaces at the same
// time (the worker pool then runs some on the calling goroutine alone) and
// checks the results and that OpenBLAS gets its thread count back.
func TestAttentionConcurrent(t *testing.T) {
	threads := BLASInfo().Threads
	p := AttnParams{Batch: 2, Heads: 3, Tq: 300, Tk: 200, HeadDim: 16, Causal: true}
	rng := rand.New(rand.NewPCG(13, 14))
	nq, nk := p.Batch*p.Tq*p.Heads*p.HeadDim, p.Batch*p.Tk*p.Heads*p.HeadDim
	q, k, v, dout := attnRand(rng, nq, 1), attnRand(rng, nk, 1), attnRand(rng, nk, 1), attnRand(rng, nq, 1)
	run := func() [][]float32 {
		ws := new(Workspace)
		out, lse := make([]float32, nq), make([]float32, p.Batch*p.Heads*p.Tq)
		dq, dk, dv := make([]float32, nq), make([]float32, nk), make([]float32, nk)
		AttentionForward(ws, out, lse, q, k, v, p)
		AttentionBackward(ws, dq, dk, dv, dout, q, k, v, out, lse, p)
		return [][]float32{out, lse, dq, dk, dv}
	}
	want := run()
	const n = 4
	got := make(chan [][]float32, n)
	for range n {
		go func() { got <- run() }()
	}
	for range n {
		g := <-got
		for i, x := range g {
			for j := range x {
				if x[j] != want[i][j] {
					t.Fatalf("result %d differs at %d: %g != %g", i, j, x[j], want[i][j])
				}
			}
		}
	}
	if after := BLASInfo().Threads; after != threads {
		t.Errorf("OpenBLAS threads %d after attention, %d before", after, threads)
	}
}

func benchAttention(b *testing.B, p AttnParams, backward bool) {
	rng := rand.New(rand.NewPCG(11, 12))
	nq, nk := p.Batch*p.Tq*p.Heads*p.HeadDim, p.Batch*p.Tk*p.Heads*p.HeadDim
	q, k, v := attnRand(rng, nq, 1), attnRand(rng, nk, 1), attnRand(rng, nk, 1)
	dout := attnRand(rng, nq, 1)
	out, lse := make([]float32, nq), make([]float32, p.Batch*p.Heads*p.Tq)
	dq, dk, dv := make([]float32, nq), make([]float32, nk), make([]float32, nk)
	ws := new(Workspace)
	step := func() {
		AttentionForward(ws, out, lse, q, k, v, p)
		if backward {
			AttentionBackward(ws, dq, dk, dv, dout, q, k, v, out, lse, p)
		}
	}
	step()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := benchmetrics.CPUTime()
	for range b.N {
		step()
	}
	b.StopTimer()
	b.ReportMetric(float64(benchmetrics.CPUTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(4*cap(ws.Floats(0)))/(1<<20), "scratchMB")
}

// BenchmarkAttention times the attention shapes of the models: SD 1.x's
// UNet self-attention at every resolution and its cross-attention to the 77
// text tokens, CLIP's causal self-attention, the VAE's single-head mid-block
// attention and the WD14 tagger's ViT. fwd is AttentionForward alone,
// fwdbwd adds AttentionBackward.
func BenchmarkAttention(b *testing.B) {
	for _, c := range []struct {
		name string
		p    AttnParams
	}{
		{"sd_self_4096x40", AttnParams{Batch: 1, Heads: 8, Tq: 4096, Tk: 4096, HeadDim: 40}},
		{"sd_cross_4096x77x40", AttnParams{Batch: 1, Heads: 8, Tq: 4096, Tk: 77, HeadDim: 40}},
		{"sd_self_1024x80", AttnParams{Batch: 1, Heads: 8, Tq: 1024, Tk: 1024, HeadDim: 80}},
		{"sd_self_256x160", AttnParams{Batch: 1, Heads: 8, Tq: 256, Tk: 256, HeadDim: 160}},
		{"sd_self_64x160", AttnParams{Batch: 1, Heads: 8, Tq: 64, Tk: 64, HeadDim: 160}},
		{"clip_77x64_causal", AttnParams{Batch: 1, Heads: 12, Tq: 77, Tk: 77, HeadDim: 64, Causal: true}},
		{"vae_mid_4096x512", AttnParams{Batch: 1, Heads: 1, Tq: 4096, Tk: 4096, HeadDim: 512}},
		{"wd14_784x64", AttnParams{Batch: 1, Heads: 12, Tq: 784, Tk: 784, HeadDim: 64}},
	} {
		b.Run(c.name+"/fwd", func(b *testing.B) { benchAttention(b, c.p, false) })
		b.Run(c.name+"/fwdbwd", func(b *testing.B) { benchAttention(b, c.p, true) })
	}
}
