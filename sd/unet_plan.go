package sd

import (
	"fmt"

	"lorastudio/nn"
)

// The UNet runs as a flat plan of coarse steps (conv_in, each ResBlock,
// SpatialTransformer, resampler, and the output head): inference, training
// and the gorgonia graph all walk the same list. A step reads the output of
// an earlier step (or the latents) and, for the up path's ResBlocks, a skip
// connection concatenated after it.

// block is one coarse step's module.
type block interface {
	// forward maps x under the conditioning; train keeps what backward needs.
	forward(s *Scratch, x *nn.Tensor, c cond, train bool) *nn.Tensor
	// backward writes the gradients of the block's trainable adapters after
	// a training forward and returns the gradient for x when wantDX (blocks
	// without adapters are only asked when it is) and for the context when
	// wantCtx and the block reads it.
	backward(s *Scratch, dy *nn.Tensor, wantDX, wantCtx bool) (dx, dctx *nn.Tensor)
	// module is the module tree the step runs (for Walk).
	module() any
}

// cond is what every step may read besides its input: the activated time
// embedding [B, TimeDim] and the text context [B, tokens, D].
type cond struct{ temb, ctx *nn.Tensor }

type step struct {
	name    string // diffusers module name
	blk     block
	in      int // step whose output is the input; -1 for the latents
	skip    int // step whose output is concatenated after the input; -1 for none
	outC    int // output channels
	resize  int // -1 halves the resolution, +1 doubles it
	lastUse int // last step reading this step's output
}

type resStep struct{ *ResBlock }

func (r resStep) forward(s *Scratch, x *nn.Tensor, c cond, train bool) *nn.Tensor {
	if train {
		return r.ForwardTrain(s, x, c.temb)
	}
	return r.Forward(s, x, c.temb)
}

func (r resStep) backward(s *Scratch, dy *nn.Tensor, _, _ bool) (*nn.Tensor, *nn.Tensor) {
	return r.Backward(s, dy), nil
}

func (r resStep) module() any { return r.ResBlock }

type attnStep struct{ *SpatialTransformer }

func (a attnStep) module() any { return a.SpatialTransformer }

func (a attnStep) forward(s *Scratch, x *nn.Tensor, c cond, train bool) *nn.Tensor {
	if train {
		return a.ForwardTrain(s, x, c.ctx)
	}
	return a.Forward(s, x, c.ctx)
}

func (a attnStep) backward(s *Scratch, dy *nn.Tensor, wantDX, wantCtx bool) (*nn.Tensor, *nn.Tensor) {
	return a.Backward(s, dy, wantDX, wantCtx)
}

type downStep struct{ *Downsample }

func (d downStep) forward(s *Scratch, x *nn.Tensor, _ cond, train bool) *nn.Tensor {
	if train {
		return d.ForwardTrain(s, x)
	}
	return d.Forward(s, x)
}

func (d downStep) backward(s *Scratch, dy *nn.Tensor, _, _ bool) (*nn.Tensor, *nn.Tensor) {
	return d.Backward(s, dy), nil
}

func (d downStep) module() any { return d.Downsample }

type upStep struct{ *Upsample }

func (u upStep) module() any { return u.Upsample }

func (u upStep) forward(s *Scratch, x *nn.Tensor, _ cond, train bool) *nn.Tensor {
	if train {
		return u.ForwardTrain(s, x)
	}
	return u.Forward(s, x)
}

func (u upStep) backward(s *Scratch, dy *nn.Tensor, _, _ bool) (*nn.Tensor, *nn.Tensor) {
	return u.Backward(s, dy), nil
}

// convStep is a stride-1 convolution (conv_in).
type convStep struct {
	conv *Conv2d
	h, w *int
}

func (c convStep) forward(s *Scratch, x *nn.Tensor, _ cond, train bool) *nn.Tensor {
	if train {
		*c.h, *c.w = x.Shape[2], x.Shape[3]
	}
	return c.conv.Forward(s, x)
}

func (c convStep) module() any { return c.conv }

func (c convStep) backward(s *Scratch, dy *nn.Tensor, _, _ bool) (*nn.Tensor, *nn.Tensor) {
	return c.conv.BackwardInput(s, dy, *c.h, *c.w), nil
}

// headStep is the output head: conv_out(SiLU(conv_norm_out(x))).
type headStep struct {
	norm *GroupNorm
	conv *Conv2d
	x    *nn.Workspace
	sh   *[]int
}

func (o headStep) forward(s *Scratch, x *nn.Tensor, _ cond, train bool) *nn.Tensor {
	var n *nn.Tensor
	if train {
		*o.sh = append((*o.sh)[:0], x.Shape...)
		n = o.norm.ForwardTrain(s, keep(o.x, x))
	} else {
		n = o.norm.Forward(s, x)
	}
	y := o.conv.Forward(s, n)
	s.Release(n)
	return y
}

func (o headStep) module() any { return o.conv }

func (o headStep) backward(s *Scratch, dy *nn.Tensor, _, _ bool) (*nn.Tensor, *nn.Tensor) {
	sh := *o.sh
	d := o.conv.BackwardInput(s, dy, sh[2], sh[3])
	dx := o.norm.Backward(s, d, nn.FromData(o.x.Floats(nn.Numel(sh)), sh...))
	s.Release(d)
	return dx, nil
}

// trainState is what the UNet keeps between ForwardTrain and Backward
// besides the modules' own buffers.
type trainState struct {
	ready            bool
	outShape         []int
	convInH, convInW int
	head             nn.Workspace
	headShape        []int
}

// plan lists the UNet's steps in execution order.
func (u *UNet) plan() []step {
	var steps []step
	add := func(name string, b block, in, skip, outC int) int {
		steps = append(steps, step{name: name, blk: b, in: in, skip: skip, outC: outC})
		return len(steps) - 1
	}
	cur := add("conv_in", convStep{u.ConvIn, &u.train.convInH, &u.train.convInW}, -1, -1, u.Config.Channels[0])
	skips := []int{cur}
	for i, d := range u.Down {
		c := u.Config.Channels[i]
		for j, r := range d.Resnets {
			cur = add(fmt.Sprintf("down_blocks.%d.resnets.%d", i, j), resStep{r}, cur, -1, c)
			if j < len(d.Attentions) {
				cur = add(fmt.Sprintf("down_blocks.%d.attentions.%d", i, j), attnStep{d.Attentions[j]}, cur, -1, c)
			}
			skips = append(skips, cur)
		}
		for _, ds := range d.Downsamplers {
			cur = add(fmt.Sprintf("down_blocks.%d.downsamplers.0", i), downStep{ds}, cur, -1, c)
			steps[cur].resize = -1
			skips = append(skips, cur)
		}
	}
	last := u.Config.Channels[len(u.Config.Channels)-1]
	cur = add("mid_block.resnets.0", resStep{u.Mid.Resnets[0]}, cur, -1, last)
	cur = add("mid_block.attentions.0", attnStep{u.Mid.Attentions[0]}, cur, -1, last)
	cur = add("mid_block.resnets.1", resStep{u.Mid.Resnets[1]}, cur, -1, last)
	for i, up := range u.Up {
		c := u.Config.Channels[len(u.Config.Channels)-1-i]
		for j, r := range up.Resnets {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			cur = add(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), resStep{r}, cur, skip, c)
			if j < len(up.Attentions) {
				cur = add(fmt.Sprintf("up_blocks.%d.attentions.%d", i, j), attnStep{up.Attentions[j]}, cur, -1, c)
			}
		}
		for _, us := range up.Upsamplers {
			cur = add(fmt.Sprintf("up_blocks.%d.upsamplers.0", i), upStep{us}, cur, -1, c)
			steps[cur].resize = 1
		}
	}
	add("conv_out", headStep{u.NormOut, u.ConvOut, &u.train.head, &u.train.headShape}, cur, -1, u.Config.OutChannels)
	for i, st := range steps {
		if st.in >= 0 {
			steps[st.in].lastUse = i
		}
		if st.skip >= 0 {
			steps[st.skip].lastUse = max(steps[st.skip].lastUse, i)
		}
	}
	return steps
}

// concat returns [x, skip] along channels.
func concat(s *Scratch, x, skip *nn.Tensor) *nn.Tensor {
	n, ca, cb, h, w := x.Shape[0], x.Shape[1], skip.Shape[1], x.Shape[2], x.Shape[3]
	y := s.Tensor(n, ca+cb, h, w)
	nn.ConcatChannels(y.Data, x.Data, skip.Data, n, ca, cb, h*w)
	return y
}

// forwardStep runs step st on x (concatenated with skip, if any).
func forwardStep(s *Scratch, st *step, x, skip *nn.Tensor, c cond, train bool) *nn.Tensor {
	if skip == nil {
		return st.blk.forward(s, x, c, train)
	}
	cat := concat(s, x, skip)
	y := st.blk.forward(s, cat, c, train)
	s.Release(cat)
	return y
}

// backwardStep writes the step's adapter gradients and returns the
// gradients for its input and skip input (nil without one) when wantDX and,
// with wantCtx, for the context (nil if it reads none).
func backwardStep(s *Scratch, st *step, skipC int, dy *nn.Tensor, wantDX, wantCtx bool) (dx, dskip, dctx *nn.Tensor) {
	dx, dctx = st.blk.backward(s, dy, wantDX, wantCtx)
	if st.skip < 0 || dx == nil {
		return dx, nil, dctx
	}
	b, h, w := dx.Shape[0], dx.Shape[2], dx.Shape[3]
	ca := dx.Shape[1] - skipC
	da, db := s.Tensor(b, ca, h, w), s.Tensor(b, skipC, h, w)
	nn.SplitChannels(da.Data, db.Data, dx.Data, b, ca, skipC, h*w)
	s.Release(dx)
	return da, db, dctx
}

// trainable reports whether a step holds trainable adapters.
func (st *step) trainable() bool {
	found := false
	_ = Walk("", st.blk.module(), func(_ string, m any) error {
		if l, ok := m.(*Linear); ok && l.trainable() {
			found = true
		}
		return nil
	})
	return found
}

// readsCtx reports whether a step reads the text context.
func (st *step) readsCtx() bool {
	_, ok := st.blk.(attnStep)
	return ok
}

// run executes the plan; intermediate outputs go back to the pool after
// their last reader.
func (u *UNet) run(s *Scratch, latents *nn.Tensor, timesteps []float32, ctx *nn.Tensor, train bool) *nn.Tensor {
	c := cond{temb: u.timeEmbedding(s, timesteps), ctx: ctx}
	outs := make([]*nn.Tensor, len(u.steps))
	for i := range u.steps {
		st := &u.steps[i]
		x, skip := latents, (*nn.Tensor)(nil)
		if st.in >= 0 {
			x = outs[st.in]
		}
		if st.skip >= 0 {
			skip = outs[st.skip]
		}
		outs[i] = forwardStep(s, st, x, skip, c, train)
		for _, p := range [2]int{st.in, st.skip} {
			if p >= 0 && u.steps[p].lastUse == i {
				s.Release(outs[p])
				outs[p] = nil
			}
		}
	}
	s.Release(c.temb)
	return outs[len(outs)-1]
}

// backward runs the plan in reverse after a training forward. Gradients of
// step outputs are summed where an output feeds two steps (skips).
func (u *UNet) backward(s *Scratch, gradOut *nn.Tensor, wantCtx bool) *nn.Tensor {
	n := len(u.steps)
	grads := make([]*nn.Tensor, n)
	grads[n-1] = gradOut
	var dctx *nn.Tensor
	add := func(i int, g *nn.Tensor) {
		if g == nil {
			return
		}
		if grads[i] == nil {
			grads[i] = g
			return
		}
		nn.AddInPlace(grads[i].Data, g.Data)
		s.Release(g)
	}
	// needs[i]: the gradient of step i's output is needed, because the step
	// or one before it has trainable adapters (or reads a wanted context).
	needs := make([]bool, n)
	for i := range u.steps {
		st := &u.steps[i]
		needs[i] = st.trainable() || (wantCtx && st.readsCtx()) || u.inputNeeds(needs, st)
	}
	for i := n - 1; i >= 0; i-- {
		st := &u.steps[i]
		dy := grads[i]
		grads[i] = nil
		if dy != nil && needs[i] {
			skipC := 0
			if st.skip >= 0 {
				skipC = u.steps[st.skip].outC
			}
			dx, dskip, dc := backwardStep(s, st, skipC, dy, u.inputNeeds(needs, st), wantCtx)
			if st.in >= 0 {
				add(st.in, dx)
			}
			if st.skip >= 0 {
				add(st.skip, dskip)
			}
			if dc != nil && dctx != nil {
				nn.AddInPlace(dctx.Data, dc.Data)
				s.Release(dc)
			} else if dc != nil {
				dctx = dc
			}
		}
		if i != n-1 {
			s.Release(dy)
		}
	}
	return dctx
}

// inputNeeds reports whether a gradient is needed at step st's inputs.
func (u *UNet) inputNeeds(needs []bool, st *step) bool {
	return (st.in >= 0 && needs[st.in]) || (st.skip >= 0 && needs[st.skip])
}
