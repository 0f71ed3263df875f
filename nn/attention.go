package nn

/*
#cgo LDFLAGS: -lopenblas -lm
#include "attention.h"
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
)

// AttnParams describes a multi-head scaled-dot-product attention. Queries
// are [Batch, Tq, Heads*HeadDim] and keys and values [Batch, Tk,
// Heads*HeadDim], exactly as the to_q/to_k/to_v Linear layers produce them:
// head h owns the columns [h*HeadDim, (h+1)*HeadDim) of every token row.
// With Causal, query i sees the keys j <= i (CLIP's text encoder). Scale
// multiplies the scores; zero means 1/sqrt(HeadDim).
type AttnParams struct {
	Batch, Heads, Tq, Tk, HeadDim int
	Causal                        bool
	Scale                         float32
}

// Tile sizes. A tile is attnQueryTile query rows against key blocks of
// attnKeyBlock keys: its scores (1 MB; the backward also holds their
// gradient) stay in a core's 2 MB L2 cache between the sgemm that writes
// them and the one that reads them. On SD's 8x4096x40 shape, 128 to 512
// rows by 256 to 1024 keys all measured within noise of each other; 64-row
// tiles were 10-25% slower.
const (
	attnQueryTile = 256
	attnKeyBlock  = 1024
)

func (p AttnParams) scale() float32 {
	if p.Scale != 0 {
		return p.Scale
	}
	return float32(1 / math.Sqrt(float64(p.HeadDim)))
}

// attnTiling is how a call is cut into work: query rows per tile, keys per
// block, and for the backward whether work is split by head (see
// AttentionBackward). Tests use small tiles to reach every path.
type attnTiling struct {
	m, bk  int
	byHead bool
}

func (p AttnParams) tiling() attnTiling {
	slots, bh := runtime.GOMAXPROCS(0), p.Batch*p.Heads
	return attnTiling{
		m:      min(p.Tq, attnQueryTile),
		bk:     min(p.Tk, attnKeyBlock),
		byHead: bh >= slots && (bh%slots == 0 || bh >= 4*slots),
	}
}

// check panics when the shape is empty: a bad shape is a programming error
// in the model code, never a user input.
func (p AttnParams) check(fn string) {
	if p.Batch < 1 || p.Heads < 1 || p.Tq < 1 || p.Tk < 1 || p.HeadDim < 1 {
		panic(fmt.Sprintf("nn.%s: bad shape %+v", fn, p))
	}
}

// need panics when x holds fewer than n values.
func (p AttnParams) need(fn, name string, x []float32, n int) {
	if len(x) < n {
		panic(fmt.Sprintf("nn.%s: %s has %d values, want %d for %+v", fn, name, len(x), n, p))
	}
}

// AttentionForward computes out = softmax(scale*q k^T) v per batch and head,
// and the log-sum-exp of every score row (lse, [Batch*Heads*Tq]) for the
// backward pass; lse may be nil when no backward follows. It never holds
// more than a tile of scores per core: the softmax runs online over blocks
// of keys.
func AttentionForward(ws *Workspace, out, lse, q, k, v []float32, p AttnParams) {
	attentionForward(ws, out, lse, q, k, v, p, p.tiling())
}

func attentionForward(ws *Workspace, out, lse, q, k, v []float32, p AttnParams, t attnTiling) {
	const fn = "AttentionForward"
	p.check(fn)
	nq, nk := p.Batch*p.Tq*p.Heads*p.HeadDim, p.Batch*p.Tk*p.Heads*p.HeadDim
	p.need(fn, "out", out, nq)
	if lse != nil {
		p.need(fn, "lse", lse, p.Batch*p.Heads*p.Tq)
	}
	p.need(fn, "q", q, nq)
	p.need(fn, "k", k, nk)
	p.need(fn, "v", v, nk)
	m, bk := t.m, t.bk
	nt := (p.Tq + m - 1) / m
	items := p.Batch * p.Heads * nt
	slots := min(runtime.GOMAXPROCS(0), items)
	per := m*bk + 3*m // scores, row max and sum, and lse when the caller has none
	scratch := ws.Floats(slots * per)
	causal := 0
	if p.Causal {
		causal = 1
	}
	beginSerialBLAS()
	defer endSerialBLAS()
	parallelFor(slots, 1, attnForwardSlots, kargs{
		s: [10][]float32{out, lse, q, k, v, scratch},
		i: [12]int{p.Heads, p.Tq, p.Tk, p.HeadDim, m, bk, nt, items, slots, per, causal},
		f: [2]float32{p.scale()},
	})
}

// attnForwardSlots runs the worker slots [lo, hi); slot s takes the tiles
// s, s+slots, ... so that causal tiles, which grow along the sequence, are
// shared evenly.
func attnForwardSlots(a *kargs, lo, hi int) {
	out, lse, q, k, v, scratch := a.s[0], a.s[1], a.s[2], a.s[3], a.s[4], a.s[5]
	heads, tq, tk, d, m, bk, nt, items, slots, per, causal :=
		a.i[0], a.i[1], a.i[2], a.i[3], a.i[4], a.i[5], a.i[6], a.i[7], a.i[8], a.i[9], a.i[10]
	ld := heads * d
	for slot := lo; slot < hi; slot++ {
		s := scratch[slot*per : (slot+1)*per]
		for it := slot; it < items; it += slots {
			bh, tile := it/nt, it%nt
			b, h := bh/heads, bh%heads
			i0 := tile * m
			qo, ko := b*tq*ld+h*d, b*tk*ld+h*d
			rowLse := s[m*bk+2*m:]
			if lse != nil {
				rowLse = lse[bh*tq+i0:]
			}
			C.attn_forward_tile(cf(out[qo:]), cf(rowLse), cf(q[qo:]), cf(k[ko:]), cf(v[ko:]),
				C.int(min(m, tq-i0)), C.int(tk), C.int(d), C.int(ld), C.int(i0), C.int(causal),
				C.float(a.f[0]), C.int(bk), cf(s), cf(s[m*bk:]))
		}
	}
}

// AttentionBackward computes dq, dk and dv (all overwritten) from dout and
// the forward's inputs, output and lse. The probabilities are recomputed
// tile by tile from lse.
//
// Work is split by (batch, head) when there are enough of them to keep every
// core busy; each head's dk and dv are then accumulated in place. Otherwise
// the heads run one after another, their query tiles spread over the cores,
// each core accumulating into its own dk/dv copy that is summed at the end.
func AttentionBackward(ws *Workspace, dq, dk, dv, dout, q, k, v, out, lse []float32, p AttnParams) {
	attentionBackward(ws, dq, dk, dv, dout, q, k, v, out, lse, p, p.tiling())
}

func attentionBackward(ws *Workspace, dq, dk, dv, dout, q, k, v, out, lse []float32, p AttnParams, t attnTiling) {
	const fn = "AttentionBackward"
	p.check(fn)
	nq, nk := p.Batch*p.Tq*p.Heads*p.HeadDim, p.Batch*p.Tk*p.Heads*p.HeadDim
	p.need(fn, "dq", dq, nq)
	p.need(fn, "dk", dk, nk)
	p.need(fn, "dv", dv, nk)
	p.need(fn, "dout", dout, nq)
	p.need(fn, "q", q, nq)
	p.need(fn, "k", k, nk)
	p.need(fn, "v", v, nk)
	p.need(fn, "out", out, nq)
	p.need(fn, "lse", lse, p.Batch*p.Heads*p.Tq)
	m, bk, byHead := t.m, t.bk, t.byHead
	nt := (p.Tq + m - 1) / m
	bh := p.Batch * p.Heads
	slots := runtime.GOMAXPROCS(0)
	if byHead {
		slots = min(slots, bh)
	} else {
		slots = min(slots, nt)
	}
	per := 2*m*bk + m
	if !byHead {
		per += 2 * p.Tk * p.HeadDim
	}
	scratch := ws.Floats(slots * per)
	causal := 0
	if p.Causal {
		causal = 1
	}
	a := kargs{
		s: [10][]float32{dq, dk, dv, dout, q, k, v, out, lse, scratch},
		i: [12]int{p.Heads, p.Tq, p.Tk, p.HeadDim, m, bk, nt, bh, slots, per, causal, -1},
		f: [2]float32{p.scale()},
	}
	beginSerialBLAS()
	defer endSerialBLAS()
	if byHead {
		parallelFor(slots, 1, attnBackwardSlots, a)
		return
	}
	for head := range bh {
		a.i[11] = head
		parallelFor(slots, 1, attnBackwardSlots, a)
		attnReduceHead(a.s[1], a.s[2], scratch, head, p, slots, per, 2*m*bk+m)
	}
}

// attnBackwardSlots runs the worker slots [lo, hi). With a.i[11] < 0 slot s
// owns the heads s, s+slots, ...; otherwise it takes the tiles s, s+slots,
// ... of head a.i[11] and accumulates dk and dv in its scratch.
func attnBackwardSlots(a *kargs, lo, hi int) {
	dq, dk, dv, dout, q, k, v, out, lse, scratch :=
		a.s[0], a.s[1], a.s[2], a.s[3], a.s[4], a.s[5], a.s[6], a.s[7], a.s[8], a.s[9]
	heads, tq, tk, d, m, bk, nt, bh, slots, per, causal, only :=
		a.i[0], a.i[1], a.i[2], a.i[3], a.i[4], a.i[5], a.i[6], a.i[7], a.i[8], a.i[9], a.i[10], a.i[11]
	ld := heads * d
	for slot := lo; slot < hi; slot++ {
		s := scratch[slot*per : (slot+1)*per]
		first, step, tile0, tstep := slot, slots, 0, 1
		if only >= 0 {
			first, step, tile0, tstep = only, bh, slot, slots
		}
		for head := first; head < bh; head += step {
			b, h := head/heads, head%heads
			qo, ko := b*tq*ld+h*d, b*tk*ld+h*d
			accK, accV, ldacc := dk[ko:], dv[ko:], ld
			if only >= 0 {
				acc := s[2*m*bk+m:]
				accK, accV, ldacc = acc, acc[tk*d:], d
				clear(acc[:2*tk*d])
			} else {
				for j := range tk {
					clear(dk[ko+j*ld : ko+j*ld+d])
					clear(dv[ko+j*ld : ko+j*ld+d])
				}
			}
			for tile := tile0; tile < nt; tile += tstep {
				i0 := tile * m
				C.attn_backward_tile(cf(dq[qo:]), cf(accK), cf(accV), C.int(ldacc),
					cf(dout[qo:]), cf(q[qo:]), cf(k[ko:]), cf(v[ko:]), cf(out[qo:]), cf(lse[head*tq+i0:]),
					C.int(min(m, tq-i0)), C.int(tk), C.int(d), C.int(ld), C.int(i0), C.int(causal),
					C.float(a.f[0]), C.int(bk), cf(s), cf(s[m*bk:]), cf(s[2*m*bk:]))
			}
		}
	}
}

// attnReduceHead writes the sum of the slots' dk/dv copies into the head's
// columns of dk and dv.
func attnReduceHead(dk, dv, scratch []float32, head int, p AttnParams, slots, per, off int) {
	d, ld := p.HeadDim, p.Heads*p.HeadDim
	b, h := head/p.Heads, head%p.Heads
	ko := b*p.Tk*ld + h*d
	for j := range p.Tk {
		rk, rv := dk[ko+j*ld:ko+j*ld+d], dv[ko+j*ld:ko+j*ld+d]
		clear(rk)
		clear(rv)
		for slot := range slots {
			acc := scratch[slot*per+off:]
			ak, av := acc[j*d:j*d+d], acc[p.Tk*d+j*d:p.Tk*d+j*d+d]
			for c := range d {
				rk[c] += ak[c]
				rv[c] += av[c]
			}
		}
	}
}

func cf(x []float32) *C.float { return (*C.float)(&x[0]) }
