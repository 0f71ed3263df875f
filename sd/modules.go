package sd

import (
	"fmt"
	"slices"

	"lorastudio/nn"
)

// The building blocks shared by the UNet, the VAE and the text encoder. Every
// module is a struct whose tagged fields are its weights (see Bind) and has
//
//   - Forward, for inference: it returns a new tensor from the Scratch pool
//     and keeps nothing;
//   - ForwardTrain and Backward, for training: ForwardTrain keeps what the
//     backward pass needs in module-owned buffers (nn.Workspace fields, reused
//     from step to step) and Backward returns the input gradients and writes
//     the gradients of trainable LoRA adapters. Frozen weights never get
//     gradients, so a convolution or linear layer without an adapter costs
//     only its input-gradient product.
//
// The leaf modules (Linear, Conv2d, GroupNorm, LayerNorm) keep no
// activations: their callers pass the forward input back to Backward. Modules
// are not safe for concurrent use.

// Scratch is the temporary memory of model calls: the kernels' workspace and
// a pool of activation buffers. Modules take their outputs and temporaries
// from it; callers give tensors back with Release when they are done so the
// next call reuses them, which keeps the resident size near the live
// activations instead of everything a forward pass ever touched.
//
// A request takes the smallest free buffer that holds it, up to four times
// its size, so steps of another resolution (training buckets, a preview
// between steps) reuse the buffers of earlier ones instead of piling up a
// set per shape. The zero value is ready to use. A Scratch must not be shared
// by concurrent calls.
type Scratch struct {
	WS   nn.Workspace
	free map[int][][]float32 // by capacity
	caps []int               // the keys of free, ascending
}

// Tensor returns a tensor of the given shape with undefined contents.
func (s *Scratch) Tensor(shape ...int) *nn.Tensor {
	n := nn.Numel(shape)
	i, _ := slices.BinarySearch(s.caps, n)
	for ; i < len(s.caps) && s.caps[i] <= 4*n; i++ {
		c := s.caps[i]
		l := s.free[c]
		d := l[len(l)-1]
		if len(l) == 1 {
			delete(s.free, c)
			s.caps = slices.Delete(s.caps, i, i+1)
		} else {
			s.free[c] = l[:len(l)-1]
		}
		return nn.FromData(d[:n], shape...)
	}
	return nn.FromData(make([]float32, n), shape...)
}

// Release gives tensors' memory back to the pool. A released tensor (or any
// view of it) must not be used again. Nil tensors are ignored.
func (s *Scratch) Release(ts ...*nn.Tensor) {
	if s.free == nil {
		s.free = map[int][][]float32{}
	}
	for _, t := range ts {
		if t == nil || cap(t.Data) == 0 {
			continue
		}
		c := cap(t.Data)
		if _, ok := s.free[c]; !ok {
			i, _ := slices.BinarySearch(s.caps, c)
			s.caps = slices.Insert(s.caps, i, c)
		}
		s.free[c] = append(s.free[c], t.Data[:c])
	}
}

// Drop forgets every pooled buffer so the garbage collector can return the
// memory.
func (s *Scratch) Drop() {
	s.free, s.caps = nil, nil
	s.WS = nn.Workspace{}
}

// kept returns a tensor of the given shape backed by the module-owned buffer
// w, which keeps an activation from ForwardTrain to Backward.
func kept(w *nn.Workspace, shape ...int) *nn.Tensor {
	return nn.FromData(w.Floats(nn.Numel(shape)), shape...)
}

// keep copies t into the module-owned buffer w.
func keep(w *nn.Workspace, t *nn.Tensor) *nn.Tensor {
	k := kept(w, t.Shape...)
	copy(k.Data, t.Data)
	return k
}

// withLast returns shape with its last dimension replaced by d.
func withLast(shape []int, d int) []int {
	s := append([]int(nil), shape...)
	s[len(s)-1] = d
	return s
}

// Adapter is a LoRA pair attached to a Linear:
// y = W x + b + Scale*Multiplier * Up(Down(x)), with Scale = alpha/rank.
// Down is [rank, in] and Up is [out, rank] (kohya's 1x1-conv forms
// [rank, in, 1, 1] and [out, rank, 1, 1] have the same layout).
type Adapter struct {
	Down, Up          *nn.Tensor
	Scale, Multiplier float32
	// Trainable adapters get GradDown and GradUp (same shapes as Down and
	// Up) written by every Backward through their Linear.
	Trainable        bool
	GradDown, GradUp *nn.Tensor
}

// Rank is the adapter's inner dimension.
func (a *Adapter) Rank() int { return a.Down.Shape[0] }

// Linear is y = x W^T + b over the last dimension, with optional LoRA
// adapters. SD 1.x's 1x1 convolutions (proj_in, proj_out) are Linears over
// the token layout whose weights keep the checkpoint's [out, in, 1, 1] shape.
type Linear struct {
	Weight   *nn.Tensor `st:"weight"`
	Bias     *nn.Tensor `st:"bias"`
	In, Out  int
	Adapters []*Adapter
}

// NewLinear returns a Linear of the given size, with or without bias.
func NewLinear(in, out int, bias bool) *Linear {
	l := &Linear{Weight: weight(out, in), In: in, Out: out}
	if bias {
		l.Bias = weight(out)
	}
	return l
}

// NewConv1x1 returns a 1x1 convolution with bias as a Linear over tokens.
func NewConv1x1(in, out int) *Linear {
	return &Linear{Weight: weight(out, in, 1, 1), Bias: weight(out), In: in, Out: out}
}

// Attach adds an adapter after checking its shapes against the layer.
func (l *Linear) Attach(a *Adapter) error {
	if a.Down == nil || a.Up == nil || len(a.Down.Shape) == 0 {
		return fmt.Errorf("lora: adapter without weights")
	}
	r := a.Down.Shape[0]
	if r <= 0 || len(a.Down.Data) != r*l.In || len(a.Up.Data) != l.Out*r || a.Up.Shape[0] != l.Out {
		return fmt.Errorf("lora: down %v and up %v do not fit a %d->%d layer", a.Down.Shape, a.Up.Shape, l.In, l.Out)
	}
	l.Adapters = append(l.Adapters, a)
	return nil
}

// Detach removes every adapter.
func (l *Linear) Detach() { l.Adapters = nil }

func (l *Linear) bias() []float32 {
	if l.Bias == nil {
		return nil
	}
	return l.Bias.Data
}

// trainable reports whether Backward has adapter gradients to compute, i.e.
// whether the caller must keep the forward input for it.
func (l *Linear) trainable() bool {
	for _, a := range l.Adapters {
		if a.Trainable {
			return true
		}
	}
	return false
}

// Forward maps x [..., In] to [..., Out].
func (l *Linear) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	y := s.Tensor(withLast(x.Shape, l.Out)...)
	l.forwardTo(s, y, x)
	return y
}

// forwardTo is Forward writing into y.
func (l *Linear) forwardTo(s *Scratch, y, x *nn.Tensor) {
	rows := len(x.Data) / l.In
	nn.LinearForward(y.Data, x.Data, l.Weight.Data, l.bias(), rows, l.In, l.Out)
	for _, a := range l.Adapters {
		r := a.Rank()
		z := s.Tensor(rows, r)
		nn.Sgemm(false, true, rows, r, l.In, 1, x.Data, l.In, a.Down.Data, l.In, 0, z.Data, r)
		nn.Sgemm(false, true, rows, l.Out, r, a.Scale*a.Multiplier, z.Data, r, a.Up.Data, r, 1, y.Data, l.Out)
		s.Release(z)
	}
}

// Backward returns dx = dy W (+ the adapters' terms) when wantDX, else nil,
// and writes the trainable adapters' gradients. x is the forward input; it is
// read only for adapter gradients and may be nil when there are none.
func (l *Linear) Backward(s *Scratch, dy, x *nn.Tensor, wantDX bool) *nn.Tensor {
	rows := len(dy.Data) / l.Out
	var dx *nn.Tensor
	if wantDX {
		dx = s.Tensor(withLast(dy.Shape, l.In)...)
		nn.LinearBackward(dx.Data, nil, nil, dy.Data, nil, l.Weight.Data, rows, l.In, l.Out)
	}
	for _, a := range l.Adapters {
		if !a.Trainable && !wantDX {
			continue
		}
		r, sc := a.Rank(), a.Scale*a.Multiplier
		u := s.Tensor(rows, r) // dy Up: the gradient reaching Down's output, unscaled
		nn.Sgemm(false, false, rows, r, l.Out, 1, dy.Data, l.Out, a.Up.Data, r, 0, u.Data, r)
		if wantDX {
			nn.Sgemm(false, false, rows, l.In, r, sc, u.Data, r, a.Down.Data, l.In, 1, dx.Data, l.In)
		}
		if a.Trainable {
			if a.GradDown == nil {
				a.GradDown = nn.New(a.Down.Shape...)
				a.GradUp = nn.New(a.Up.Shape...)
			}
			z := s.Tensor(rows, r)
			nn.Sgemm(false, true, rows, r, l.In, 1, x.Data, l.In, a.Down.Data, l.In, 0, z.Data, r)
			nn.Sgemm(true, false, l.Out, r, rows, sc, dy.Data, l.Out, z.Data, r, 0, a.GradUp.Data, r)
			nn.Sgemm(true, false, r, l.In, rows, sc, u.Data, r, x.Data, l.In, 0, a.GradDown.Data, l.In)
			s.Release(z)
		}
		s.Release(u)
	}
	return dx
}

// Conv2d is a 2-D convolution over NCHW tensors.
type Conv2d struct {
	Weight *nn.Tensor `st:"weight"`
	Bias   *nn.Tensor `st:"bias"`
	Spec   nn.Conv2d
}

// NewConv2d returns a square-kernel convolution with bias and symmetric
// padding.
func NewConv2d(cin, cout, k, stride, pad int) *Conv2d {
	return &Conv2d{
		Weight: weight(cout, cin, k, k),
		Bias:   weight(cout),
		Spec:   nn.Conv2d{Cin: cin, Cout: cout, KH: k, KW: k, Stride: stride, PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: pad},
	}
}

// Forward maps x [N, Cin, H, W] to [N, Cout, OH, OW].
func (c *Conv2d) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	n, h, w := x.Shape[0], x.Shape[2], x.Shape[3]
	oh, ow := c.Spec.OutSize(h, w)
	y := s.Tensor(n, c.Spec.Cout, oh, ow)
	c.Spec.Forward(&s.WS, y.Data, x.Data, c.Weight.Data, c.Bias.Data, n, h, w)
	return y
}

// BackwardInput returns the gradient for an input of spatial size h x w.
func (c *Conv2d) BackwardInput(s *Scratch, dy *nn.Tensor, h, w int) *nn.Tensor {
	n := dy.Shape[0]
	dx := s.Tensor(n, c.Spec.Cin, h, w)
	c.Spec.BackwardInput(&s.WS, dx.Data, dy.Data, c.Weight.Data, n, h, w)
	return dx
}

// GroupNorm normalises NCHW tensors over channel groups, optionally followed
// by SiLU (fused: the UNet and VAE always activate after their norms except
// in the transformers). ForwardTrain keeps the group statistics for Backward.
type GroupNorm struct {
	Weight *nn.Tensor `st:"weight"`
	Bias   *nn.Tensor `st:"bias"`
	C      int
	Groups int
	Eps    float32
	SiLU   bool

	mean, rstd nn.Workspace
}

// NewGroupNorm returns a GroupNorm over c channels.
func NewGroupNorm(c, groups int, eps float32, silu bool) *GroupNorm {
	return &GroupNorm{Weight: weight(c), Bias: weight(c), C: c, Groups: groups, Eps: eps, SiLU: silu}
}

// Forward normalises x [N, C, ...].
func (g *GroupNorm) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	n := x.Shape[0]
	stats := s.Tensor(2, n*g.Groups)
	y := g.forward(s, x, stats.Data[:n*g.Groups], stats.Data[n*g.Groups:])
	s.Release(stats)
	return y
}

// forwardInPlace normalises x in place (each group's statistics are taken
// before its values are overwritten).
func (g *GroupNorm) forwardInPlace(s *Scratch, x *nn.Tensor) {
	n := x.Shape[0]
	stats := s.Tensor(2, n*g.Groups)
	nn.GroupNormForward(x.Data, stats.Data[:n*g.Groups], stats.Data[n*g.Groups:], x.Data, g.Weight.Data, g.Bias.Data,
		n, g.C, len(x.Data)/(n*g.C), g.Groups, g.Eps, g.SiLU)
	s.Release(stats)
}

// ForwardTrain is Forward keeping the statistics for Backward.
func (g *GroupNorm) ForwardTrain(s *Scratch, x *nn.Tensor) *nn.Tensor {
	m := x.Shape[0] * g.Groups
	return g.forward(s, x, g.mean.Floats(m), g.rstd.Floats(m))
}

func (g *GroupNorm) forward(s *Scratch, x *nn.Tensor, mean, rstd []float32) *nn.Tensor {
	n := x.Shape[0]
	hw := len(x.Data) / (n * g.C)
	y := s.Tensor(x.Shape...)
	nn.GroupNormForward(y.Data, mean, rstd, x.Data, g.Weight.Data, g.Bias.Data, n, g.C, hw, g.Groups, g.Eps, g.SiLU)
	return y
}

// Backward returns the input gradient; x is the input of the last
// ForwardTrain.
func (g *GroupNorm) Backward(s *Scratch, dy, x *nn.Tensor) *nn.Tensor {
	n := x.Shape[0]
	hw := len(x.Data) / (n * g.C)
	m := n * g.Groups
	dx := s.Tensor(x.Shape...)
	nn.GroupNormBackward(dx.Data, nil, nil, dy.Data, x.Data, g.mean.Floats(m), g.rstd.Floats(m), g.Weight.Data, g.Bias.Data, n, g.C, hw, g.Groups, g.SiLU)
	return dx
}

// LayerNorm normalises the last dimension.
type LayerNorm struct {
	Weight *nn.Tensor `st:"weight"`
	Bias   *nn.Tensor `st:"bias"`
	Dim    int
	Eps    float32

	mean, rstd nn.Workspace
}

// NewLayerNorm returns a LayerNorm over dim features.
func NewLayerNorm(dim int, eps float32) *LayerNorm {
	return &LayerNorm{Weight: weight(dim), Bias: weight(dim), Dim: dim, Eps: eps}
}

// Forward normalises x [..., Dim].
func (l *LayerNorm) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	rows := len(x.Data) / l.Dim
	stats := s.Tensor(2, rows)
	y := l.forward(s, x, stats.Data[:rows], stats.Data[rows:])
	s.Release(stats)
	return y
}

// ForwardTrain is Forward keeping the statistics for Backward.
func (l *LayerNorm) ForwardTrain(s *Scratch, x *nn.Tensor) *nn.Tensor {
	rows := len(x.Data) / l.Dim
	return l.forward(s, x, l.mean.Floats(rows), l.rstd.Floats(rows))
}

func (l *LayerNorm) forward(s *Scratch, x *nn.Tensor, mean, rstd []float32) *nn.Tensor {
	y := s.Tensor(x.Shape...)
	nn.LayerNormForward(y.Data, mean, rstd, x.Data, l.Weight.Data, l.Bias.Data, len(x.Data)/l.Dim, l.Dim, l.Eps)
	return y
}

// Backward returns the input gradient; x is the input of the last
// ForwardTrain.
func (l *LayerNorm) Backward(s *Scratch, dy, x *nn.Tensor) *nn.Tensor {
	rows := len(x.Data) / l.Dim
	dx := s.Tensor(x.Shape...)
	nn.LayerNormBackward(dx.Data, nil, nil, dy.Data, x.Data, l.mean.Floats(rows), l.rstd.Floats(rows), l.Weight.Data, rows, l.Dim)
	return dx
}

// releaseKept drops the statistics kept for Backward.
func (g *GroupNorm) releaseKept() { g.mean, g.rstd = nn.Workspace{}, nn.Workspace{} }

// releaseKept drops the statistics kept for Backward.
func (l *LayerNorm) releaseKept() { l.mean, l.rstd = nn.Workspace{}, nn.Workspace{} }
