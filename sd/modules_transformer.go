package sd

import (
	"math"

	"lorastudio/nn"
)

// Attention is multi-head scaled dot-product attention with diffusers'
// names: self-attention (attn1) when built without a context dimension,
// cross-attention (attn2) over the text context otherwise.
type Attention struct {
	ToQ   *Linear `st:"to_q"`
	ToK   *Linear `st:"to_k"`
	ToV   *Linear `st:"to_v"`
	ToOut *Linear `st:"to_out.0"`
	Heads int
	Cross bool

	saved attnSaved
}

// attnSaved is what an Attention keeps from ForwardTrain for Backward.
type attnSaved struct {
	x, ctx, q, k, v, o, lse nn.Workspace
	xShape, ctxShape        []int
	keptX, keptCtx          bool
}

// NewAttention returns attention over dim features with the given number of
// heads; ctxDim 0 makes it self-attention. qkvBias is false in the UNet and
// true in the VAE.
func NewAttention(dim, ctxDim, heads int, qkvBias bool) *Attention {
	kv := ctxDim
	if kv == 0 {
		kv = dim
	}
	return &Attention{
		ToQ:   NewLinear(dim, dim, qkvBias),
		ToK:   NewLinear(kv, dim, qkvBias),
		ToV:   NewLinear(kv, dim, qkvBias),
		ToOut: NewLinear(dim, dim, true),
		Heads: heads,
		Cross: ctxDim > 0,
	}
}

func (a *Attention) params(b, tq, tk int) nn.AttnParams {
	hd := a.ToQ.Out / a.Heads
	return nn.AttnParams{Batch: b, Heads: a.Heads, Tq: tq, Tk: tk, HeadDim: hd, Scale: float32(1 / math.Sqrt(float64(hd)))}
}

// source is what keys and values are computed from.
func (a *Attention) source(x, ctx *nn.Tensor) *nn.Tensor {
	if a.Cross {
		return ctx
	}
	return x
}

// Forward maps x [B, T, C] (and, for cross-attention, ctx [B, Tk, D]) to
// [B, T, C].
func (a *Attention) Forward(s *Scratch, x, ctx *nn.Tensor) *nn.Tensor {
	src := a.source(x, ctx)
	b, tq, tk := x.Shape[0], x.Shape[1], src.Shape[1]
	q := a.ToQ.Forward(s, x)
	k := a.ToK.Forward(s, src)
	v := a.ToV.Forward(s, src)
	o := s.Tensor(q.Shape...)
	lse := s.Tensor(b * a.Heads * tq)
	nn.AttentionForward(&s.WS, o.Data, lse.Data, q.Data, k.Data, v.Data, a.params(b, tq, tk))
	s.Release(q, k, v, lse)
	y := a.ToOut.Forward(s, o)
	s.Release(o)
	return y
}

// ForwardTrain is Forward keeping q, k, v, the attention output and its
// log-sum-exp, plus the inputs when trainable adapters need them.
func (a *Attention) ForwardTrain(s *Scratch, x, ctx *nn.Tensor) *nn.Tensor {
	src := a.source(x, ctx)
	b, tq, tk := x.Shape[0], x.Shape[1], src.Shape[1]
	sv := &a.saved
	sv.xShape = append(sv.xShape[:0], x.Shape...)
	sv.ctxShape = append(sv.ctxShape[:0], src.Shape...)
	kvTrain := a.ToK.trainable() || a.ToV.trainable()
	sv.keptX = a.ToQ.trainable() || (!a.Cross && kvTrain)
	sv.keptCtx = a.Cross && kvTrain
	if sv.keptX {
		keep(&sv.x, x)
	}
	if sv.keptCtx {
		keep(&sv.ctx, ctx)
	}
	q := kept(&sv.q, b, tq, a.ToQ.Out)
	k := kept(&sv.k, b, tk, a.ToK.Out)
	v := kept(&sv.v, b, tk, a.ToV.Out)
	a.ToQ.forwardTo(s, q, x)
	a.ToK.forwardTo(s, k, src)
	a.ToV.forwardTo(s, v, src)
	o := kept(&sv.o, b, tq, a.ToQ.Out)
	lse := kept(&sv.lse, b*a.Heads*tq)
	nn.AttentionForward(&s.WS, o.Data, lse.Data, q.Data, k.Data, v.Data, a.params(b, tq, tk))
	return a.ToOut.Forward(s, o)
}

// releaseKept drops the activations kept for Backward.
func (a *Attention) releaseKept() { a.saved = attnSaved{} }

// trainable reports whether any of the attention's layers has a trainable
// adapter.
func (a *Attention) trainable() bool {
	return a.ToQ.trainable() || a.ToK.trainable() || a.ToV.trainable() || a.ToOut.trainable()
}

// Backward writes the trainable adapters' gradients and returns the
// gradient for x when wantDX and, for cross-attention with wantCtx, for the
// context (otherwise nil).
func (a *Attention) Backward(s *Scratch, dy *nn.Tensor, wantDX, wantCtx bool) (dx, dctx *nn.Tensor) {
	sv := &a.saved
	b, tq, tk := sv.xShape[0], sv.xShape[1], sv.ctxShape[1]
	dim := a.ToQ.Out
	q := nn.FromData(sv.q.Floats(b*tq*dim), b, tq, dim)
	k := nn.FromData(sv.k.Floats(b*tk*dim), b, tk, dim)
	v := nn.FromData(sv.v.Floats(b*tk*dim), b, tk, dim)
	o := nn.FromData(sv.o.Floats(b*tq*dim), b, tq, dim)
	lse := sv.lse.Floats(b * a.Heads * tq)
	var x, ctx *nn.Tensor
	if sv.keptX {
		x = nn.FromData(sv.x.Floats(nn.Numel(sv.xShape)), sv.xShape...)
	}
	if sv.keptCtx {
		ctx = nn.FromData(sv.ctx.Floats(nn.Numel(sv.ctxShape)), sv.ctxShape...)
	}

	do := a.ToOut.Backward(s, dy, o, true)
	dq, dk, dv := s.Tensor(q.Shape...), s.Tensor(k.Shape...), s.Tensor(v.Shape...)
	nn.AttentionBackward(&s.WS, dq.Data, dk.Data, dv.Data, do.Data, q.Data, k.Data, v.Data, o.Data, lse, a.params(b, tq, tk))
	s.Release(do)
	dx = a.ToQ.Backward(s, dq, x, wantDX)
	s.Release(dq)
	if a.Cross {
		dctx = a.ToK.Backward(s, dk, ctx, wantCtx)
		dcv := a.ToV.Backward(s, dv, ctx, wantCtx)
		if wantCtx {
			nn.AddInPlace(dctx.Data, dcv.Data)
			s.Release(dcv)
		}
	} else {
		dxk := a.ToK.Backward(s, dk, x, wantDX)
		dxv := a.ToV.Backward(s, dv, x, wantDX)
		if wantDX {
			nn.AddInPlace(dx.Data, dxk.Data)
			nn.AddInPlace(dx.Data, dxv.Data)
			s.Release(dxk, dxv)
		}
	}
	s.Release(dk, dv)
	return dx, dctx
}

// BasicTransformerBlock is the pre-LayerNorm transformer layer of SD 1.x:
// self-attention, cross-attention over the text context and a GEGLU
// feed-forward, each added to the residual stream.
type BasicTransformerBlock struct {
	Norm1  *LayerNorm `st:"norm1"`
	Attn1  *Attention `st:"attn1"`
	Norm2  *LayerNorm `st:"norm2"`
	Attn2  *Attention `st:"attn2"`
	Norm3  *LayerNorm `st:"norm3"`
	FFProj *Linear    `st:"ff.net.0.proj"`
	FFOut  *Linear    `st:"ff.net.2"`

	// x0, x1, x2 are the residual stream before each sub-layer (the
	// LayerNorms' inputs); g is the GEGLU input; n3 and gg are the
	// feed-forward Linears' inputs, kept only for trainable adapters.
	x0, x1, x2, g, n3, gg nn.Workspace
	shape                 []int
}

// NewBasicTransformerBlock returns a block over dim features with a context
// of ctxDim features.
func NewBasicTransformerBlock(dim, ctxDim, heads int) *BasicTransformerBlock {
	return &BasicTransformerBlock{
		Norm1:  NewLayerNorm(dim, 1e-5),
		Attn1:  NewAttention(dim, 0, heads, false),
		Norm2:  NewLayerNorm(dim, 1e-5),
		Attn2:  NewAttention(dim, ctxDim, heads, false),
		Norm3:  NewLayerNorm(dim, 1e-5),
		FFProj: NewLinear(dim, 8*dim, true),
		FFOut:  NewLinear(4*dim, dim, true),
	}
}

// Forward maps tokens x [B, T, C] with context ctx [B, Tk, D].
func (t *BasicTransformerBlock) Forward(s *Scratch, x, ctx *nn.Tensor) *nn.Tensor {
	n := t.Norm1.Forward(s, x)
	x1 := t.Attn1.Forward(s, n, nil)
	s.Release(n)
	nn.AddInPlace(x1.Data, x.Data)
	n = t.Norm2.Forward(s, x1)
	x2 := t.Attn2.Forward(s, n, ctx)
	s.Release(n)
	nn.AddInPlace(x2.Data, x1.Data)
	s.Release(x1)
	n = t.Norm3.Forward(s, x2)
	g := t.FFProj.Forward(s, n)
	s.Release(n)
	gg := s.Tensor(withLast(x.Shape, t.FFOut.In)...)
	nn.GEGLU(gg.Data, g.Data, len(gg.Data)/t.FFOut.In, t.FFOut.In)
	s.Release(g)
	y := t.FFOut.Forward(s, gg)
	s.Release(gg)
	nn.AddInPlace(y.Data, x2.Data)
	s.Release(x2)
	return y
}

// ForwardTrain is Forward keeping what Backward needs.
func (t *BasicTransformerBlock) ForwardTrain(s *Scratch, x, ctx *nn.Tensor) *nn.Tensor {
	t.shape = append(t.shape[:0], x.Shape...)
	rows, dim, inner := len(x.Data)/x.Shape[len(x.Shape)-1], t.FFOut.Out, t.FFOut.In
	x0 := keep(&t.x0, x)

	n := t.Norm1.ForwardTrain(s, x0)
	a := t.Attn1.ForwardTrain(s, n, nil)
	s.Release(n)
	x1 := kept(&t.x1, x.Shape...)
	nn.Add(x1.Data, x0.Data, a.Data)
	s.Release(a)

	n = t.Norm2.ForwardTrain(s, x1)
	a = t.Attn2.ForwardTrain(s, n, ctx)
	s.Release(n)
	x2 := kept(&t.x2, x.Shape...)
	nn.Add(x2.Data, x1.Data, a.Data)
	s.Release(a)

	n = t.Norm3.ForwardTrain(s, x2)
	g := kept(&t.g, rows, 2*inner)
	t.FFProj.forwardTo(s, g, n)
	if t.FFProj.trainable() {
		keep(&t.n3, n)
	}
	s.Release(n)
	var gg *nn.Tensor
	if t.FFOut.trainable() {
		gg = kept(&t.gg, rows, inner)
	} else {
		gg = s.Tensor(rows, inner)
	}
	nn.GEGLU(gg.Data, g.Data, rows, inner)
	y := t.FFOut.Forward(s, gg)
	if !t.FFOut.trainable() {
		s.Release(gg)
	}
	nn.AddInPlace(y.Data, x2.Data)
	y.Shape = withLast(x.Shape, dim)
	return y
}

// releaseKept drops the activations kept for Backward.
func (t *BasicTransformerBlock) releaseKept() {
	t.x0, t.x1, t.x2, t.g, t.n3, t.gg = nn.Workspace{}, nn.Workspace{}, nn.Workspace{}, nn.Workspace{}, nn.Workspace{}, nn.Workspace{}
}

// trainable reports whether any layer of the block has a trainable adapter.
func (t *BasicTransformerBlock) trainable() bool {
	return t.Attn1.trainable() || t.Attn2.trainable() || t.FFProj.trainable() || t.FFOut.trainable()
}

// Backward writes the trainable adapters' gradients and returns the
// gradients for x (when wantDX) and for the context (when wantCtx). It stops
// as early as it can: with adapters on attn2 only and no input gradient
// wanted, the self-attention's backward (the costliest part) is skipped.
func (t *BasicTransformerBlock) Backward(s *Scratch, dy *nn.Tensor, wantDX, wantCtx bool) (dx, dctx *nn.Tensor) {
	need1 := wantDX || t.Attn1.trainable() // the gradient at x1 is needed
	need2 := need1 || wantCtx || t.Attn2.trainable()
	numel := nn.Numel(t.shape)
	rows, inner := numel/t.FFOut.Out, t.FFOut.In
	x0 := nn.FromData(t.x0.Floats(numel), t.shape...)
	x1 := nn.FromData(t.x1.Floats(numel), t.shape...)
	x2 := nn.FromData(t.x2.Floats(numel), t.shape...)
	g := nn.FromData(t.g.Floats(rows*2*inner), rows, 2*inner)
	var n3, gg *nn.Tensor
	if t.FFProj.trainable() {
		n3 = nn.FromData(t.n3.Floats(numel), t.shape...)
	}
	if t.FFOut.trainable() {
		gg = nn.FromData(t.gg.Floats(rows*inner), rows, inner)
	}

	dgg := t.FFOut.Backward(s, dy, gg, true)
	dg := s.Tensor(rows, 2*inner)
	nn.GEGLUBackward(dg.Data, dgg.Data, g.Data, rows, inner)
	s.Release(dgg)
	dn := t.FFProj.Backward(s, dg, n3, need2)
	s.Release(dg)
	if !need2 {
		return nil, nil
	}
	dx2 := t.Norm3.Backward(s, dn, x2)
	s.Release(dn)
	nn.AddInPlace(dx2.Data, dy.Data)

	dn, dctx = t.Attn2.Backward(s, dx2, need1, wantCtx)
	if !need1 {
		s.Release(dx2)
		return nil, dctx
	}
	dx1 := t.Norm2.Backward(s, dn, x1)
	s.Release(dn)
	nn.AddInPlace(dx1.Data, dx2.Data)
	s.Release(dx2)

	dn, _ = t.Attn1.Backward(s, dx1, wantDX, false)
	if !wantDX {
		s.Release(dx1)
		return nil, dctx
	}
	dx = t.Norm1.Backward(s, dn, x0)
	s.Release(dn)
	nn.AddInPlace(dx.Data, dx1.Data)
	s.Release(dx1)
	return dx, dctx
}

// SpatialTransformer (diffusers' Transformer2DModel) applies transformer
// blocks to an NCHW feature map: GroupNorm, proj_in (a 1x1 convolution in
// SD 1.x), the blocks over the H*W tokens, proj_out, plus the input.
type SpatialTransformer struct {
	Norm    *GroupNorm               `st:"norm"`
	ProjIn  *Linear                  `st:"proj_in"`
	Blocks  []*BasicTransformerBlock `st:"transformer_blocks"`
	ProjOut *Linear                  `st:"proj_out"`

	x, tin, tout nn.Workspace // input; proj_in and proj_out inputs for trainable adapters
	shape        []int
}

// NewSpatialTransformer returns SD 1.x's transformer over c channels: one
// block, GroupNorm eps 1e-6.
func NewSpatialTransformer(c, ctxDim, heads int) *SpatialTransformer {
	return &SpatialTransformer{
		Norm:    NewGroupNorm(c, 32, 1e-6, false),
		ProjIn:  NewConv1x1(c, c),
		Blocks:  []*BasicTransformerBlock{NewBasicTransformerBlock(c, ctxDim, heads)},
		ProjOut: NewConv1x1(c, c),
	}
}

// Forward maps x [B, C, H, W] with context ctx [B, Tk, D].
func (st *SpatialTransformer) Forward(s *Scratch, x, ctx *nn.Tensor) *nn.Tensor {
	b, c, hw := x.Shape[0], x.Shape[1], x.Shape[2]*x.Shape[3]
	n := st.Norm.Forward(s, x)
	tok := s.Tensor(b, hw, c)
	nn.ToTokens(tok.Data, n.Data, b, c, hw)
	s.Release(n)
	h := st.ProjIn.Forward(s, tok)
	s.Release(tok)
	for _, blk := range st.Blocks {
		h2 := blk.Forward(s, h, ctx)
		s.Release(h)
		h = h2
	}
	p := st.ProjOut.Forward(s, h)
	s.Release(h)
	y := s.Tensor(x.Shape...)
	nn.FromTokens(y.Data, p.Data, b, c, hw)
	s.Release(p)
	nn.AddInPlace(y.Data, x.Data)
	return y
}

// ForwardTrain is Forward keeping what Backward needs.
func (st *SpatialTransformer) ForwardTrain(s *Scratch, x, ctx *nn.Tensor) *nn.Tensor {
	b, c, hw := x.Shape[0], x.Shape[1], x.Shape[2]*x.Shape[3]
	st.shape = append(st.shape[:0], x.Shape...)
	xk := keep(&st.x, x)
	n := st.Norm.ForwardTrain(s, xk)
	var tok *nn.Tensor
	if st.ProjIn.trainable() {
		tok = kept(&st.tin, b, hw, c)
	} else {
		tok = s.Tensor(b, hw, c)
	}
	nn.ToTokens(tok.Data, n.Data, b, c, hw)
	s.Release(n)
	h := st.ProjIn.Forward(s, tok)
	if !st.ProjIn.trainable() {
		s.Release(tok)
	}
	for _, blk := range st.Blocks {
		h2 := blk.ForwardTrain(s, h, ctx)
		s.Release(h)
		h = h2
	}
	if st.ProjOut.trainable() {
		h = keepRelease(s, &st.tout, h)
	}
	p := st.ProjOut.Forward(s, h)
	if !st.ProjOut.trainable() {
		s.Release(h)
	}
	y := s.Tensor(x.Shape...)
	nn.FromTokens(y.Data, p.Data, b, c, hw)
	s.Release(p)
	nn.AddInPlace(y.Data, xk.Data)
	return y
}

// keepRelease moves a pooled tensor into the module-owned buffer w.
func keepRelease(s *Scratch, w *nn.Workspace, t *nn.Tensor) *nn.Tensor {
	k := keep(w, t)
	s.Release(t)
	return k
}

// releaseKept drops the activations kept for Backward.
func (st *SpatialTransformer) releaseKept() {
	st.x, st.tin, st.tout = nn.Workspace{}, nn.Workspace{}, nn.Workspace{}
}

// trainable reports whether any layer of the transformer has a trainable
// adapter.
func (st *SpatialTransformer) trainable() bool {
	if st.ProjIn.trainable() || st.ProjOut.trainable() {
		return true
	}
	for _, b := range st.Blocks {
		if b.trainable() {
			return true
		}
	}
	return false
}

// Backward writes the trainable adapters' gradients and returns the
// gradients for x (when wantDX) and for the context (when wantCtx).
func (st *SpatialTransformer) Backward(s *Scratch, dy *nn.Tensor, wantDX, wantCtx bool) (dx, dctx *nn.Tensor) {
	b, c, hw := st.shape[0], st.shape[1], st.shape[2]*st.shape[3]
	xk := nn.FromData(st.x.Floats(len(dy.Data)), st.shape...)
	var tin, tout *nn.Tensor
	if st.ProjIn.trainable() {
		tin = nn.FromData(st.tin.Floats(len(dy.Data)), b, hw, c)
	}
	if st.ProjOut.trainable() {
		tout = nn.FromData(st.tout.Floats(len(dy.Data)), b, hw, c)
	}
	// below[i]: a gradient is wanted below block i (its input).
	below := make([]bool, len(st.Blocks))
	acc := wantDX || st.ProjIn.trainable()
	for i, blk := range st.Blocks {
		below[i] = acc
		acc = acc || blk.trainable()
	}
	dt := s.Tensor(b, hw, c)
	nn.ToTokens(dt.Data, dy.Data, b, c, hw)
	dh := st.ProjOut.Backward(s, dt, tout, true)
	s.Release(dt)
	for i := len(st.Blocks) - 1; i >= 0 && dh != nil; i-- {
		d, dc := st.Blocks[i].Backward(s, dh, below[i], wantCtx)
		s.Release(dh)
		dh = d
		if dc != nil && dctx != nil {
			nn.AddInPlace(dctx.Data, dc.Data)
			s.Release(dc)
		} else if dc != nil {
			dctx = dc
		}
	}
	if dh == nil {
		return nil, dctx
	}
	dt = st.ProjIn.Backward(s, dh, tin, wantDX)
	s.Release(dh)
	if !wantDX {
		return nil, dctx
	}
	dn := s.Tensor(st.shape...)
	nn.FromTokens(dn.Data, dt.Data, b, c, hw)
	s.Release(dt)
	dx = st.Norm.Backward(s, dn, xk)
	s.Release(dn)
	nn.AddInPlace(dx.Data, dy.Data)
	return dx, dctx
}
