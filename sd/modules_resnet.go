package sd

import "lorastudio/nn"

// ResBlock is the residual block of the UNet and the VAE:
// out = skip(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))) + proj(temb)))), with
// skip a 1x1 convolution when the channel count changes. The VAE's blocks
// have no time embedding (TimeEmbProj nil).
type ResBlock struct {
	Norm1       *GroupNorm `st:"norm1"`
	Conv1       *Conv2d    `st:"conv1"`
	TimeEmbProj *Linear    `st:"time_emb_proj"`
	Norm2       *GroupNorm `st:"norm2"`
	Conv2       *Conv2d    `st:"conv2"`
	Shortcut    *Conv2d    `st:"conv_shortcut"`

	x, h  nn.Workspace // the input and norm2's input, for Backward
	shape []int
}

// NewResBlock returns a block from cin to cout channels; tembDim 0 means no
// time embedding. eps is the GroupNorms' epsilon (UNet 1e-5, VAE 1e-6).
func NewResBlock(cin, cout, tembDim int, eps float32) *ResBlock {
	r := &ResBlock{
		Norm1: NewGroupNorm(cin, 32, eps, true),
		Conv1: NewConv2d(cin, cout, 3, 1, 1),
		Norm2: NewGroupNorm(cout, 32, eps, true),
		Conv2: NewConv2d(cout, cout, 3, 1, 1),
	}
	if tembDim > 0 {
		r.TimeEmbProj = NewLinear(tembDim, cout, true)
	}
	if cin != cout {
		r.Shortcut = NewConv2d(cin, cout, 1, 1, 0)
	}
	return r
}

// Forward maps x [N, Cin, H, W] to [N, Cout, H, W]. temb is the already
// activated time embedding SiLU(emb) [N, tembDim] (the UNet computes it once
// for all blocks), or nil for a block without one.
func (r *ResBlock) Forward(s *Scratch, x, temb *nn.Tensor) *nn.Tensor {
	h := r.Norm1.Forward(s, x)
	h1 := r.Conv1.Forward(s, h)
	s.Release(h)
	r.addTime(s, h1, temb)
	h2 := r.Norm2.Forward(s, h1)
	s.Release(h1)
	out := r.Conv2.Forward(s, h2)
	s.Release(h2)
	r.addSkip(s, out, x)
	return out
}

// forwardOwned is Forward for a caller that gives x up (the VAE's
// chains). The shortcut is taken first so the first norm can overwrite x,
// and the second norm runs in place: a block with a shortcut then holds
// its input and two outputs at once instead of two inputs and an output,
// 134 MB less in the VAE's first 512 px block.
func (r *ResBlock) forwardOwned(s *Scratch, x *nn.Tensor) *nn.Tensor {
	if r.Shortcut == nil {
		out := r.Forward(s, x, nil)
		s.Release(x)
		return out
	}
	skip := r.Shortcut.Forward(s, x)
	r.Norm1.forwardInPlace(s, x)
	h := r.Conv1.Forward(s, x)
	s.Release(x)
	r.Norm2.forwardInPlace(s, h)
	out := r.Conv2.Forward(s, h)
	s.Release(h)
	nn.AddInPlace(out.Data, skip.Data)
	s.Release(skip)
	return out
}

// ForwardTrain is Forward keeping the block's input and inner activation.
func (r *ResBlock) ForwardTrain(s *Scratch, x, temb *nn.Tensor) *nn.Tensor {
	r.shape = append(r.shape[:0], x.Shape...)
	xk := keep(&r.x, x)
	h := r.Norm1.ForwardTrain(s, xk)
	h1 := kept(&r.h, x.Shape[0], r.Conv1.Spec.Cout, x.Shape[2], x.Shape[3])
	r.Conv1.forwardTo(s, h1, h)
	s.Release(h)
	r.addTime(s, h1, temb)
	h2 := r.Norm2.ForwardTrain(s, h1)
	out := r.Conv2.Forward(s, h2)
	s.Release(h2)
	r.addSkip(s, out, xk)
	return out
}

// Backward returns the input gradient of the last ForwardTrain. The time
// embedding gets none: it is frozen and carries no adapters.
func (r *ResBlock) Backward(s *Scratch, dy *nn.Tensor) *nn.Tensor {
	n, cin, h, w := r.shape[0], r.shape[1], r.shape[2], r.shape[3]
	xk := nn.FromData(r.x.Floats(n*cin*h*w), r.shape...)
	hk := nn.FromData(r.h.Floats(len(dy.Data)), dy.Shape...)
	d2 := r.Conv2.BackwardInput(s, dy, h, w)
	d1 := r.Norm2.Backward(s, d2, hk)
	s.Release(d2)
	d0 := r.Conv1.BackwardInput(s, d1, h, w)
	s.Release(d1)
	dx := r.Norm1.Backward(s, d0, xk)
	s.Release(d0)
	if r.Shortcut != nil {
		ds := r.Shortcut.BackwardInput(s, dy, h, w)
		nn.AddInPlace(dx.Data, ds.Data)
		s.Release(ds)
	} else {
		nn.AddInPlace(dx.Data, dy.Data)
	}
	return dx
}

// releaseKept drops the activations kept for Backward.
func (r *ResBlock) releaseKept() { r.x, r.h = nn.Workspace{}, nn.Workspace{} }

func (r *ResBlock) addTime(s *Scratch, h, temb *nn.Tensor) {
	if r.TimeEmbProj == nil || temb == nil {
		return
	}
	e := r.TimeEmbProj.Forward(s, temb)
	n, c := h.Shape[0], h.Shape[1]
	nn.AddChannelBias(h.Data, e.Data, n, c, len(h.Data)/(n*c))
	s.Release(e)
}

func (r *ResBlock) addSkip(s *Scratch, out, x *nn.Tensor) {
	if r.Shortcut == nil {
		nn.AddInPlace(out.Data, x.Data)
		return
	}
	sc := r.Shortcut.Forward(s, x)
	nn.AddInPlace(out.Data, sc.Data)
	s.Release(sc)
}

// forwardTo is Forward writing into y.
func (c *Conv2d) forwardTo(s *Scratch, y, x *nn.Tensor) {
	c.Spec.Forward(&s.WS, y.Data, x.Data, c.Weight.Data, c.Bias.Data, x.Shape[0], x.Shape[2], x.Shape[3])
}

// Downsample halves the resolution with a stride-2 3x3 convolution.
type Downsample struct {
	Conv *Conv2d `st:"conv"`

	h, w int
}

// NewDownsample returns the UNet's downsampler (symmetric padding 1).
func NewDownsample(c int) *Downsample {
	return &Downsample{Conv: NewConv2d(c, c, 3, 2, 1)}
}

// Forward maps [N, C, H, W] to [N, C, H/2, W/2].
func (d *Downsample) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor { return d.Conv.Forward(s, x) }

// ForwardTrain is Forward remembering the input size.
func (d *Downsample) ForwardTrain(s *Scratch, x *nn.Tensor) *nn.Tensor {
	d.h, d.w = x.Shape[2], x.Shape[3]
	return d.Conv.Forward(s, x)
}

// Backward returns the input gradient of the last ForwardTrain.
func (d *Downsample) Backward(s *Scratch, dy *nn.Tensor) *nn.Tensor {
	return d.Conv.BackwardInput(s, dy, d.h, d.w)
}

// Upsample doubles the resolution: nearest-neighbour x2, then a 3x3
// convolution.
type Upsample struct {
	Conv *Conv2d `st:"conv"`

	h, w int
}

// NewUpsample returns an upsampler over c channels.
func NewUpsample(c int) *Upsample {
	return &Upsample{Conv: NewConv2d(c, c, 3, 1, 1)}
}

// Forward maps [N, C, H, W] to [N, C, 2H, 2W] without building the
// upsampled input (nn.UpsampleConv).
func (u *Upsample) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	spec := nn.UpsampleConv{Cin: c, Cout: u.Conv.Spec.Cout}
	y := s.Tensor(n, spec.Cout, 2*h, 2*w)
	tmp := s.Tensor(spec.TempSize(n, h, w))
	spec.Forward(&s.WS, tmp.Data, y.Data, x.Data, u.Conv.Weight.Data, u.Conv.Bias.Data, n, h, w)
	s.Release(tmp)
	return y
}

// ForwardTrain is Forward remembering the input size.
func (u *Upsample) ForwardTrain(s *Scratch, x *nn.Tensor) *nn.Tensor {
	u.h, u.w = x.Shape[2], x.Shape[3]
	return u.Forward(s, x)
}

// Backward returns the input gradient of the last ForwardTrain.
func (u *Upsample) Backward(s *Scratch, dy *nn.Tensor) *nn.Tensor {
	n, c := dy.Shape[0], dy.Shape[1]
	dup := u.Conv.BackwardInput(s, dy, 2*u.h, 2*u.w)
	dx := s.Tensor(n, c, u.h, u.w)
	nn.Upsample2xBackward(dx.Data, dup.Data, n*c, u.h, u.w)
	s.Release(dup)
	return dx
}
