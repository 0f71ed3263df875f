package sd

import (
	"errors"
	"fmt"

	"lorastudio/nn"
)

// Training the text encoder's LoRA adapters (kohya's lora_te_*): the
// gradient of the conditioning flows back through the final LayerNorm and
// the encoder layers that produced it, down to the lowest layer with a
// trainable adapter. Frozen weights and the embeddings get no gradients.

// clipTrainState is what a CLIPTextModel keeps between ForwardTrain and
// Backward.
type clipTrainState struct {
	ready bool
	used  int   // encoder layers run: Layers - clipSkip + 1
	shape []int // of the output, [B, T, Width]
	last  nn.Workspace
}

// clipLayerSaved is what a CLIPEncoderLayer keeps from ForwardTrain: the
// residual stream before each sub-layer (the LayerNorms' inputs), fc1's
// output (quick_gelu's input) and, for trainable adapters, the MLP Linears'
// inputs.
type clipLayerSaved struct {
	x0, x1, h, n2, g nn.Workspace
	shape            []int
}

// clipAttnSaved is what a CLIPAttention keeps from ForwardTrain: q, k, v,
// the attention output and its log-sum-exp, and the input when q/k/v_proj
// have trainable adapters.
type clipAttnSaved struct {
	x, q, k, v, o, lse nn.Workspace
	shape              []int
	keptX              bool
}

// ForwardTrain is Forward for a training step: the layers keep what
// Backward needs. Its result equals Forward's and belongs to the caller.
func (m *CLIPTextModel) ForwardTrain(ids []int, batch, clipSkip int) (*nn.Tensor, error) {
	tokens, err := m.check(ids, batch, clipSkip)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.train.ready = false
	s := &m.scratch
	x := s.Tensor(batch, tokens, m.Config.Width)
	m.Embeddings.forwardTo(x, ids, tokens)
	used := m.Config.Layers - clipSkip + 1
	for _, layer := range m.Layers[:used] {
		next := layer.ForwardTrain(s, x)
		s.Release(x)
		x = next
	}
	last := keepRelease(s, &m.train.last, x)
	out := m.FinalLayerNorm.ForwardTrain(s, last)
	res := out.Clone()
	s.Release(out)
	m.train.used = used
	m.train.shape = append(m.train.shape[:0], res.Shape...)
	m.train.ready = true
	return res, nil
}

// Backward propagates gradOut (d loss / d output of the last ForwardTrain,
// [B, T, Width]) through the text encoder and writes the gradients of its
// trainable adapters (Adapter.GradDown, GradUp). The adapters of layers that
// clip skip left out of the forward pass get zero gradients.
func (m *CLIPTextModel) Backward(gradOut *nn.Tensor) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.train.ready {
		return errors.New("text encoder: Backward without ForwardTrain")
	}
	if gradOut == nil || !nn.SameShape(gradOut.Shape, m.train.shape) || len(gradOut.Data) != nn.Numel(gradOut.Shape) {
		return fmt.Errorf("text encoder: output gradient %v, want shape %v", gradOut, m.train.shape)
	}
	used := m.train.used
	for _, layer := range m.Layers[used:] {
		layer.zeroGrads()
	}
	lowest := m.lowestTrainable(used)
	if lowest < 0 {
		return nil
	}
	s := &m.scratch
	last := nn.FromData(m.train.last.Floats(len(gradOut.Data)), m.train.shape...)
	dx := m.FinalLayerNorm.Backward(s, gradOut, last)
	for i := used - 1; i >= lowest; i-- {
		d := m.Layers[i].Backward(s, dx, i > lowest)
		s.Release(dx)
		dx = d
	}
	return nil
}

// SkippedAdapters returns the trainable adapters of the layers that clip
// skip leaves out of the forward pass. They have no gradient: Backward
// writes zeros, Graph leaves them out, and an optimizer should skip them as
// kohya's does (its parameters without a gradient get no update, not even
// weight decay).
func (m *CLIPTextModel) SkippedAdapters(clipSkip int) []*Adapter {
	var out []*Adapter
	for _, layer := range m.Layers[max(0, min(len(m.Layers), m.Config.Layers-clipSkip+1)):] {
		_ = Walk("", layer, func(_ string, mod any) error {
			if l, ok := mod.(*Linear); ok {
				for _, a := range l.Adapters {
					if a.Trainable {
						out = append(out, a)
					}
				}
			}
			return nil
		})
	}
	return out
}

// lowestTrainable is the index of the first of the first used layers with a
// trainable adapter, or -1: the backward pass stops there.
func (m *CLIPTextModel) lowestTrainable(used int) int {
	for i, layer := range m.Layers[:used] {
		if layer.trainable() {
			return i
		}
	}
	return -1
}

// releaseKept drops the activations kept for Backward.
func (l *CLIPEncoderLayer) releaseKept() { l.saved = clipLayerSaved{} }

// releaseKept drops the activations kept for Backward.
func (a *CLIPAttention) releaseKept() { a.saved = clipAttnSaved{} }

// trainable reports whether any layer of the encoder layer has a trainable
// adapter.
func (l *CLIPEncoderLayer) trainable() bool {
	return l.SelfAttn.trainable() || l.MLP.FC1.trainable() || l.MLP.FC2.trainable()
}

// trainable reports whether any projection has a trainable adapter.
func (a *CLIPAttention) trainable() bool {
	return a.QProj.trainable() || a.KProj.trainable() || a.VProj.trainable() || a.OutProj.trainable()
}

// zeroGrads sets the gradients of the layer's trainable adapters to zero,
// for a layer the forward pass did not use.
func (l *CLIPEncoderLayer) zeroGrads() {
	for _, lin := range []*Linear{l.SelfAttn.QProj, l.SelfAttn.KProj, l.SelfAttn.VProj, l.SelfAttn.OutProj, l.MLP.FC1, l.MLP.FC2} {
		for _, a := range lin.Adapters {
			if !a.Trainable {
				continue
			}
			if a.GradDown == nil {
				a.GradDown = nn.New(a.Down.Shape...)
				a.GradUp = nn.New(a.Up.Shape...)
				continue
			}
			clear(a.GradDown.Data)
			clear(a.GradUp.Data)
		}
	}
}

// ForwardTrain is Forward keeping what Backward needs.
func (l *CLIPEncoderLayer) ForwardTrain(s *Scratch, x *nn.Tensor) *nn.Tensor {
	sv := &l.saved
	sv.shape = append(sv.shape[:0], x.Shape...)
	fc1, fc2 := l.MLP.FC1, l.MLP.FC2
	rows := len(x.Data) / fc1.In
	x0 := keep(&sv.x0, x)

	n := l.LayerNorm1.ForwardTrain(s, x0)
	a := l.SelfAttn.ForwardTrain(s, n)
	s.Release(n)
	x1 := kept(&sv.x1, x.Shape...)
	nn.Add(x1.Data, x0.Data, a.Data)
	s.Release(a)

	n = l.LayerNorm2.ForwardTrain(s, x1)
	h := kept(&sv.h, rows, fc1.Out)
	fc1.forwardTo(s, h, n)
	if fc1.trainable() {
		keep(&sv.n2, n)
	}
	s.Release(n)
	var g *nn.Tensor
	if fc2.trainable() {
		g = kept(&sv.g, rows, fc1.Out)
	} else {
		g = s.Tensor(rows, fc1.Out)
	}
	nn.QuickGELU(g.Data, h.Data)
	y := fc2.Forward(s, g)
	if !fc2.trainable() {
		s.Release(g)
	}
	nn.AddInPlace(y.Data, x1.Data)
	y.Shape = append(y.Shape[:0], x.Shape...)
	return y
}

// Backward writes the trainable adapters' gradients and returns the
// gradient for the layer's input when wantDX (otherwise nil). Without
// trainable adapters in the attention and no input gradient wanted, it
// stops after the MLP.
func (l *CLIPEncoderLayer) Backward(s *Scratch, dy *nn.Tensor, wantDX bool) *nn.Tensor {
	if !wantDX && !l.trainable() {
		return nil
	}
	sv := &l.saved
	fc1, fc2 := l.MLP.FC1, l.MLP.FC2
	numel := nn.Numel(sv.shape)
	rows := numel / fc1.In
	x0 := nn.FromData(sv.x0.Floats(numel), sv.shape...)
	x1 := nn.FromData(sv.x1.Floats(numel), sv.shape...)
	h := nn.FromData(sv.h.Floats(rows*fc1.Out), rows, fc1.Out)
	var n2, g *nn.Tensor
	if fc1.trainable() {
		n2 = nn.FromData(sv.n2.Floats(numel), sv.shape...)
	}
	if fc2.trainable() {
		g = nn.FromData(sv.g.Floats(rows*fc1.Out), rows, fc1.Out)
	}
	needAttn := wantDX || l.SelfAttn.trainable() // the gradient at x1 is needed

	dg := fc2.Backward(s, dy, g, needAttn || fc1.trainable())
	if dg == nil {
		return nil
	}
	nn.QuickGELUBackward(dg.Data, dg.Data, h.Data)
	dn := fc1.Backward(s, dg, n2, needAttn)
	s.Release(dg)
	if !needAttn {
		return nil
	}
	dx1 := l.LayerNorm2.Backward(s, dn, x1)
	s.Release(dn)
	nn.AddInPlace(dx1.Data, dy.Data)

	dn = l.SelfAttn.Backward(s, dx1, wantDX)
	if !wantDX {
		s.Release(dx1)
		return nil
	}
	dx := l.LayerNorm1.Backward(s, dn, x0)
	s.Release(dn)
	nn.AddInPlace(dx.Data, dx1.Data)
	s.Release(dx1)
	return dx
}

// ForwardTrain is Forward keeping q, k, v, the attention output and its
// log-sum-exp, plus the input when q/k/v_proj have trainable adapters.
func (a *CLIPAttention) ForwardTrain(s *Scratch, x *nn.Tensor) *nn.Tensor {
	b, t := x.Shape[0], x.Shape[1]
	sv := &a.saved
	sv.shape = append(sv.shape[:0], x.Shape...)
	sv.keptX = a.QProj.trainable() || a.KProj.trainable() || a.VProj.trainable()
	if sv.keptX {
		keep(&sv.x, x)
	}
	q := kept(&sv.q, b, t, a.QProj.Out)
	k := kept(&sv.k, b, t, a.KProj.Out)
	v := kept(&sv.v, b, t, a.VProj.Out)
	a.QProj.forwardTo(s, q, x)
	a.KProj.forwardTo(s, k, x)
	a.VProj.forwardTo(s, v, x)
	o := kept(&sv.o, b, t, a.QProj.Out)
	lse := kept(&sv.lse, b*a.Heads*t)
	nn.AttentionForward(&s.WS, o.Data, lse.Data, q.Data, k.Data, v.Data, a.params(b, t))
	return a.OutProj.Forward(s, o)
}

// Backward writes the trainable adapters' gradients and returns the
// gradient for x when wantDX, else nil. With adapters on out_proj only and
// no input gradient wanted, the attention's own backward is skipped.
func (a *CLIPAttention) Backward(s *Scratch, dy *nn.Tensor, wantDX bool) *nn.Tensor {
	sv := &a.saved
	b, t, dim := sv.shape[0], sv.shape[1], a.QProj.Out
	o := nn.FromData(sv.o.Floats(b*t*dim), b, t, dim)
	needQKV := wantDX || sv.keptX
	do := a.OutProj.Backward(s, dy, o, needQKV)
	if !needQKV {
		return nil
	}
	q := sv.q.Floats(b * t * dim)
	k := sv.k.Floats(b * t * dim)
	v := sv.v.Floats(b * t * dim)
	lse := sv.lse.Floats(b * a.Heads * t)
	var x *nn.Tensor
	if sv.keptX {
		x = nn.FromData(sv.x.Floats(nn.Numel(sv.shape)), sv.shape...)
	}
	dq, dk, dv := s.Tensor(b, t, dim), s.Tensor(b, t, dim), s.Tensor(b, t, dim)
	nn.AttentionBackward(&s.WS, dq.Data, dk.Data, dv.Data, do.Data, q, k, v, o.Data, lse, a.params(b, t))
	s.Release(do)
	dx := a.QProj.Backward(s, dq, x, wantDX)
	dxk := a.KProj.Backward(s, dk, x, wantDX)
	dxv := a.VProj.Backward(s, dv, x, wantDX)
	s.Release(dq, dk, dv)
	if !wantDX {
		return nil
	}
	nn.AddInPlace(dx.Data, dxk.Data)
	nn.AddInPlace(dx.Data, dxv.Data)
	s.Release(dxk, dxv)
	return dx
}
