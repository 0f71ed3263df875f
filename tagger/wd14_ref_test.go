package tagger

import (
	"context"
	"math"
	"testing"
)

// refForward is a plain float64 ViT forward written from the timm
// definition, independent of the nn kernels: it checks the 784-token path
// (several attention tiles, the 448-pixel patch grid) that the tiny
// fixture model does not reach.
func refForward(m *ViT, x []float32) []float64 {
	c := m.Config
	n, d, g := c.Tokens(), c.Dim, c.ImageSize/c.Patch
	f := func(t []float32) []float64 {
		out := make([]float64, len(t))
		for i, v := range t {
			out[i] = float64(v)
		}
		return out
	}
	lin := func(l linear, in []float64, rows int) []float64 {
		w, b := f(l.Weight.Data), f(l.Bias.Data)
		out := make([]float64, rows*l.Out)
		for r := range rows {
			for o := range l.Out {
				s := b[o]
				for i := range l.In {
					s += in[r*l.In+i] * w[o*l.In+i]
				}
				out[r*l.Out+o] = s
			}
		}
		return out
	}
	norm := func(ln layerNorm, in []float64, rows int) []float64 {
		w, b := f(ln.Weight.Data), f(ln.Bias.Data)
		out := make([]float64, len(in))
		for r := range rows {
			row := in[r*d : (r+1)*d]
			mean, vari := 0.0, 0.0
			for _, v := range row {
				mean += v
			}
			mean /= float64(d)
			for _, v := range row {
				vari += (v - mean) * (v - mean)
			}
			rstd := 1 / math.Sqrt(vari/float64(d)+vitLayerNormEps)
			for i, v := range row {
				out[r*d+i] = (v-mean)*rstd*w[i] + b[i]
			}
		}
		return out
	}
	// Patch embedding: token (py, px) sees pixels [py*P, py*P+P) x [px*P, ...).
	t := make([]float64, n*d)
	pw, pb, pos := f(m.PatchEmbed.Weight.Data), f(m.PatchEmbed.Bias.Data), f(m.PosEmbed.Data)
	P, S := c.Patch, c.ImageSize
	for py := range g {
		for px := range g {
			tok := py*g + px
			for o := range d {
				s := pb[o]
				for ch := range 3 {
					for ky := range P {
						for kx := range P {
							s += pw[((o*3+ch)*P+ky)*P+kx] * float64(x[(ch*S+py*P+ky)*S+px*P+kx])
						}
					}
				}
				t[tok*d+o] = s + pos[tok*d+o]
			}
		}
	}
	for _, blk := range m.Blocks {
		h := norm(blk.Norm1, t, n)
		q, k, v := lin(blk.Attn.Q, h, n), lin(blk.Attn.K, h, n), lin(blk.Attn.V, h, n)
		heads := blk.Attn.Heads
		hd := d / heads
		att := make([]float64, n*d)
		scores := make([]float64, n)
		for hh := range heads {
			for i := range n {
				mx := math.Inf(-1)
				for j := range n {
					s := 0.0
					for e := range hd {
						s += q[i*d+hh*hd+e] * k[j*d+hh*hd+e]
					}
					scores[j] = s / math.Sqrt(float64(hd))
					mx = math.Max(mx, scores[j])
				}
				sum := 0.0
				for j := range n {
					scores[j] = math.Exp(scores[j] - mx)
					sum += scores[j]
				}
				for j := range n {
					p := scores[j] / sum
					for e := range hd {
						att[i*d+hh*hd+e] += p * v[j*d+hh*hd+e]
					}
				}
			}
		}
		proj := lin(blk.Attn.Proj, att, n)
		for i := range t {
			t[i] += proj[i]
		}
		h = lin(blk.MLP.FC1, norm(blk.Norm2, t, n), n)
		for i, v := range h {
			h[i] = 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
		}
		out := lin(blk.MLP.FC2, h, n)
		for i := range t {
			t[i] += out[i]
		}
	}
	t = norm(m.Norm, t, n)
	pooled := make([]float64, d)
	for i := range n {
		for e := range d {
			pooled[e] += t[i*d+e] / float64(n)
		}
	}
	return lin(m.Head, pooled, 1)
}

// TestRefForwardTiny checks the float64 reference itself against timm.
func TestRefForwardTiny(t *testing.T) {
	m := loadTiny(t).Model
	g := goldens(t)
	want := golden(t, g, "a.logits")
	got := refForward(m, golden(t, g, "a.input"))
	for i := range want {
		if d := math.Abs(got[i] - float64(want[i])); d > 1e-5 {
			t.Fatalf("logit %d: %v, timm %v", i, got[i], want[i])
		}
	}
}

func TestWD14Forward784Tokens(t *testing.T) {
	c := ViTConfig{ImageSize: 448, Patch: 16, Dim: 48, Depth: 2, Heads: 3, MLPHidden: 96, Classes: 10}
	m := randomViT(c, 3)
	// Real taggers' logits span about -10..10; so should the test's.
	for i := range m.Head.Weight.Data {
		m.Head.Weight.Data[i] *= 20
	}
	x := make([]float32, 3*448*448)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37))*0.9 + float32(i%7)*0.01
	}
	got, err := m.Forward(context.Background(), x, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := refForward(m, x)
	d, scale := 0.0, 0.0
	for i := range got {
		d = max(d, math.Abs(float64(got[i])-want[i]))
		scale = max(scale, math.Abs(want[i]))
	}
	t.Logf("784 tokens: logits up to %.3g, max|diff| %.3g vs float64 reference", scale, d)
	if d > 1e-4 {
		t.Errorf("logits max|diff| %g > 1e-4", d)
	}
}
