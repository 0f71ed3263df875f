package sd

import (
	"errors"
	"fmt"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"lorastudio/nn"
)

// UNetGraph is a UNet placed in a gorgonia graph as about a hundred coarse
// nodes (nn.Apply of one nn.Differentiable per step: conv_in, each ResBlock,
// SpatialTransformer and resampler, the output head, plus the time
// embedding). The frozen weights are fields of those nodes; the trainable
// LoRA matrices are graph inputs, so gorgonia.Grad(loss, g.Params...) gives
// exactly the adapter gradients.
type UNetGraph struct {
	Output *gorgonia.Node // the predicted noise [B, 4, H, W]
	// Params holds lora_down and lora_up of every trainable adapter, in
	// pairs: Params[2i] and Params[2i+1] belong to Adapters[i], which is
	// attached to the Linear named Names[i]. Their values share memory with
	// the adapters' Down and Up, so a solver updating them in place updates
	// the model.
	Params   []*gorgonia.Node
	Adapters []*Adapter
	Names    []string
}

// Graph adds the UNet to the graph of its inputs: latents [B, 4, H, W],
// timesteps [B] (float32) and the text context [B, tokens, D]. Attach the
// trainable adapters before calling it; each call makes new nodes, and a
// UNet belongs to at most one graph at a time (its modules keep the
// activations of their single application). The context's gradient is
// computed when the graph needs it (text-encoder training); the latents and
// timesteps get none.
func (u *UNet) Graph(latents, timesteps, ctx *gorgonia.Node) (*UNetGraph, error) {
	g := latents.Graph()
	out := &UNetGraph{}
	temb, err := nn.Apply(&timeNode{u: u}, timesteps)
	if err != nil {
		return nil, err
	}
	outs := make([]*gorgonia.Node, len(u.steps))
	for i := range u.steps {
		st := &u.steps[i]
		n := &stepNode{u: u, st: st}
		x := latents
		if st.in >= 0 {
			x = outs[st.in]
		}
		inputs := []*gorgonia.Node{x}
		if st.skip >= 0 {
			n.skipC = u.steps[st.skip].outC
			inputs = append(inputs, outs[st.skip])
		}
		switch st.blk.(type) {
		case resStep:
			n.tembAt = len(inputs)
			inputs = append(inputs, temb)
		case attnStep:
			n.ctxAt = len(inputs)
			inputs = append(inputs, ctx)
		}
		n.adaptersAt = len(inputs)
		adapters, params, names, err := trainableParams(g, st.name+".", st.blk.module())
		if err != nil {
			return nil, err
		}
		n.adapters = adapters
		inputs = append(inputs, params...)
		out.Params = append(out.Params, params...)
		out.Adapters = append(out.Adapters, adapters...)
		out.Names = append(out.Names, names...)
		if outs[i], err = nn.Apply(n, inputs...); err != nil {
			return nil, err
		}
	}
	out.Output = outs[len(outs)-1]
	return out, nil
}

// trainableParams makes the lora_down and lora_up graph inputs of every
// trainable adapter attached to a Linear under mod, whose names start with
// prefix. It returns the adapters, their inputs in pairs (down, up) and the
// name of the Linear each adapter belongs to, all in Walk order.
func trainableParams(g *gorgonia.ExprGraph, prefix string, mod any) (adapters []*Adapter, params []*gorgonia.Node, names []string, err error) {
	err = Walk(prefix, mod, func(name string, m any) error {
		l, ok := m.(*Linear)
		if !ok {
			return nil
		}
		for _, a := range l.Adapters {
			if a.Trainable {
				adapters = append(adapters, a)
				params = append(params, paramNode(g, name+".lora_down", a.Down), paramNode(g, name+".lora_up", a.Up))
				names = append(names, name)
			}
		}
		return nil
	})
	return adapters, params, names, err
}

// paramNode is a graph input whose value shares t's memory.
func paramNode(g *gorgonia.ExprGraph, name string, t *nn.Tensor) *gorgonia.Node {
	v := tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(t.Data))
	return gorgonia.NewTensor(g, tensor.Float32, len(t.Shape), gorgonia.WithShape(t.Shape...), gorgonia.WithName(name), gorgonia.WithValue(v))
}

// timeNode computes the activated time embedding from the timesteps.
type timeNode struct {
	u   *UNet
	out nn.Workspace
}

func (t *timeNode) Name() string { return "unet.time_embedding" }

func (t *timeNode) OutputShape(in [][]int) ([]int, error) {
	if len(in) != 1 || len(in[0]) != 1 {
		return nil, fmt.Errorf("timesteps %v, want [B]", in)
	}
	return []int{in[0][0], t.u.Config.TimeDim()}, nil
}

func (t *timeNode) Forward(in []*nn.Tensor) (*nn.Tensor, error) {
	t.u.mu.Lock()
	defer t.u.mu.Unlock()
	s := &t.u.scratch
	e := t.u.timeEmbedding(s, in[0].Data)
	k := keep(&t.out, e)
	s.Release(e)
	return k, nil
}

func (t *timeNode) Backward(_ *nn.Tensor, need []bool) ([]*nn.Tensor, error) {
	if need[0] {
		return nil, errors.New("the time embedding is frozen: timesteps have no gradient")
	}
	return make([]*nn.Tensor, 1), nil
}

// stepNode is one plan step as an nn.Differentiable. Inputs: x, the skip
// (up-path ResBlocks), the time embedding (ResBlocks) or the context
// (transformers), then lora_down and lora_up of each trainable adapter in
// the step. Outputs and gradients live in node-owned buffers, as gorgonia
// keeps references to them.
type stepNode struct {
	u                         *UNet
	st                        *step
	skipC                     int
	tembAt, ctxAt, adaptersAt int
	adapters                  []*Adapter

	out, dx, dskip, dctx nn.Workspace
}

func (n *stepNode) Name() string { return "unet." + n.st.name }

func (n *stepNode) OutputShape(in [][]int) ([]int, error) {
	if want := n.adaptersAt + 2*len(n.adapters); len(in) != want {
		return nil, fmt.Errorf("%d inputs, want %d", len(in), want)
	}
	x := in[0]
	if len(x) != 4 {
		return nil, fmt.Errorf("input %v, want [B, C, H, W]", x)
	}
	h, w := x[2], x[3]
	switch n.st.resize {
	case -1:
		h, w = (h+1)/2, (w+1)/2
	case 1:
		h, w = 2*h, 2*w
	}
	return []int{x[0], n.st.outC, h, w}, nil
}

func (n *stepNode) Forward(in []*nn.Tensor) (*nn.Tensor, error) {
	n.u.mu.Lock()
	defer n.u.mu.Unlock()
	for i, a := range n.adapters {
		syncParam(a.Down, in[n.adaptersAt+2*i])
		syncParam(a.Up, in[n.adaptersAt+2*i+1])
	}
	var skip *nn.Tensor
	if n.st.skip >= 0 {
		skip = in[1]
	}
	var c cond
	if n.tembAt > 0 {
		c.temb = in[n.tembAt]
	}
	if n.ctxAt > 0 {
		c.ctx = in[n.ctxAt]
	}
	s := &n.u.scratch
	y := forwardStep(s, n.st, in[0], skip, c, true)
	k := keep(&n.out, y)
	s.Release(y)
	return k, nil
}

// syncParam makes an adapter matrix hold the graph's current value: normally
// they share memory already.
func syncParam(dst, src *nn.Tensor) {
	if len(dst.Data) > 0 && len(src.Data) > 0 && &dst.Data[0] != &src.Data[0] {
		copy(dst.Data, src.Data)
	}
}

func (n *stepNode) Backward(dy *nn.Tensor, need []bool) ([]*nn.Tensor, error) {
	n.u.mu.Lock()
	defer n.u.mu.Unlock()
	grads := make([]*nn.Tensor, len(need))
	if n.tembAt > 0 && need[n.tembAt] {
		return nil, errors.New("the time embedding is frozen: it has no gradient")
	}
	s := &n.u.scratch
	wantDX := need[0] || (n.st.skip >= 0 && need[1])
	wantCtx := n.ctxAt > 0 && need[n.ctxAt]
	if !wantDX && !wantCtx && len(n.adapters) == 0 {
		return grads, nil
	}
	dx, dskip, dctx := backwardStep(s, n.st, n.skipC, dy, wantDX, wantCtx)
	if need[0] {
		grads[0] = keep(&n.dx, dx)
	}
	if dskip != nil && need[1] {
		grads[1] = keep(&n.dskip, dskip)
	}
	if wantCtx {
		grads[n.ctxAt] = keep(&n.dctx, dctx)
	}
	s.Release(dx, dskip, dctx)
	for i, a := range n.adapters {
		grads[n.adaptersAt+2*i] = a.GradDown
		grads[n.adaptersAt+2*i+1] = a.GradUp
	}
	return grads, nil
}
