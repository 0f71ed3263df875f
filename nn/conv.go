package nn

// #include "kernels.h"
import "C"

// Conv2d is a 2-D convolution over NCHW tensors with weights
// [Cout, Cin, KH, KW]. Padding may be asymmetric, as in the VAE encoder's
// downsampling convolutions (0, 1, 0, 1). A Stride of 0 means 1.
type Conv2d struct {
	Cin, Cout, KH, KW, Stride            int
	PadTop, PadBottom, PadLeft, PadRight int
}

// colBudget bounds the im2col buffer (floats, 32 MB): large images are
// processed in bands of output rows, so a 512x512 VAE convolution needs no
// gigabyte buffer. Bands of 2048 or more columns keep sgemm at full speed
// (measured: 140 GFLOP/s per core against 125 for 512 columns).
const colBudget = 1 << 23

func (c Conv2d) stride() int { return max(c.Stride, 1) }

// OutSize returns the output height and width for an h x w input.
func (c Conv2d) OutSize(h, w int) (oh, ow int) {
	s := c.stride()
	return (h+c.PadTop+c.PadBottom-c.KH)/s + 1, (w+c.PadLeft+c.PadRight-c.KW)/s + 1
}

// pointwise reports whether the convolution is a plain matrix product.
func (c Conv2d) pointwise() bool {
	return c.KH == 1 && c.KW == 1 && c.stride() == 1 && c.PadTop == 0 && c.PadBottom == 0 && c.PadLeft == 0 && c.PadRight == 0
}

// band returns how many output rows one im2col band holds: the fewest
// bands within colBudget, of equal height.
func (c Conv2d) band(oh, ow int) int {
	rows := max(1, min(oh, colBudget/max(c.Cin*c.KH*c.KW*ow, 1)))
	bands := (oh + rows - 1) / rows
	return (oh + bands - 1) / bands
}

// Forward computes y [n, Cout, oh, ow] from x [n, Cin, h, wd], weights w and
// bias b (nil for none), using ws for the im2col buffer.
func (c Conv2d) Forward(ws *Workspace, y, x, w, b []float32, n, h, wd int) {
	oh, ow := c.OutSize(h, wd)
	ohw, hw, k := oh*ow, h*wd, c.Cin*c.KH*c.KW
	beta := float32(0)
	if b != nil {
		fillBias(y, b, n, c.Cout, ohw)
		beta = 1
	}
	if c.pointwise() {
		for i := range n {
			Sgemm(false, false, c.Cout, hw, c.Cin, 1, w, c.Cin, x[i*c.Cin*hw:], hw, beta, y[i*c.Cout*ohw:], hw)
		}
		return
	}
	band := c.band(oh, ow)
	col := ws.Floats(k * band * ow)
	for i := range n {
		xi, yi := x[i*c.Cin*hw:(i+1)*c.Cin*hw], y[i*c.Cout*ohw:]
		for r0 := 0; r0 < oh; r0 += band {
			r1 := min(r0+band, oh)
			cols := (r1 - r0) * ow
			c.im2col(col[:k*cols], xi, h, wd, r0, r1, ow)
			Sgemm(false, false, c.Cout, cols, k, 1, w, k, col, cols, beta, yi[r0*ow:], ohw)
		}
	}
}

// BackwardInput computes dx [n, Cin, h, wd] (overwritten) from dy.
func (c Conv2d) BackwardInput(ws *Workspace, dx, dy, w []float32, n, h, wd int) {
	oh, ow := c.OutSize(h, wd)
	ohw, hw, k := oh*ow, h*wd, c.Cin*c.KH*c.KW
	if c.pointwise() {
		for i := range n {
			Sgemm(true, false, c.Cin, hw, c.Cout, 1, w, c.Cin, dy[i*c.Cout*ohw:], hw, 0, dx[i*c.Cin*hw:], hw)
		}
		return
	}
	clear(dx[:n*c.Cin*hw])
	band := c.band(oh, ow)
	col := ws.Floats(k * band * ow)
	for i := range n {
		dxi, dyi := dx[i*c.Cin*hw:(i+1)*c.Cin*hw], dy[i*c.Cout*ohw:]
		for r0 := 0; r0 < oh; r0 += band {
			r1 := min(r0+band, oh)
			cols := (r1 - r0) * ow
			Sgemm(true, false, k, cols, c.Cout, 1, w, k, dyi[r0*ow:], ohw, 0, col, cols)
			c.col2im(dxi, col[:k*cols], h, wd, r0, r1, ow)
		}
	}
}

// BackwardWeight computes dw [Cout, Cin, KH, KW] and, when db is not nil,
// db [Cout] (both overwritten) from dy and the forward input x.
func (c Conv2d) BackwardWeight(ws *Workspace, dw, db, dy, x []float32, n, h, wd int) {
	oh, ow := c.OutSize(h, wd)
	ohw, hw, k := oh*ow, h*wd, c.Cin*c.KH*c.KW
	if db != nil {
		planeSums(db[:c.Cout], dy[:n*c.Cout*ohw], n, c.Cout, ohw)
	}
	if c.pointwise() {
		for i := range n {
			beta := float32(min(i, 1))
			Sgemm(false, true, c.Cout, c.Cin, hw, 1, dy[i*c.Cout*ohw:], hw, x[i*c.Cin*hw:], hw, beta, dw, c.Cin)
		}
		return
	}
	band := c.band(oh, ow)
	col := ws.Floats(k * band * ow)
	beta := float32(0)
	for i := range n {
		xi, dyi := x[i*c.Cin*hw:(i+1)*c.Cin*hw], dy[i*c.Cout*ohw:]
		for r0 := 0; r0 < oh; r0 += band {
			r1 := min(r0+band, oh)
			cols := (r1 - r0) * ow
			c.im2col(col[:k*cols], xi, h, wd, r0, r1, ow)
			Sgemm(false, true, c.Cout, k, cols, 1, dyi[r0*ow:], ohw, col, cols, beta, dw, k)
			beta = 1
		}
	}
}

// planeSums writes dst[ch] = the sum of x [n, c, hw] over n and hw.
func planeSums(dst, x []float32, n, c, hw int) {
	parallelFor(c, 1, func(a *kargs, lo, hi int) {
		C.nnk_plane_sums(fptr(a.s[0]), fptr(a.s[1]), C.long(a.i[0]), C.long(a.i[1]), C.long(a.i[2]), C.long(lo), C.long(hi))
	}, kargs{s: [10][]float32{dst, x}, i: [12]int{n, c, hw}})
}

// bandArgs packs one band's geometry for the im2col kernels.
func (c Conv2d) bandArgs(col, x []float32, h, wd, r0, r1, ow int) kargs {
	return kargs{
		s: [10][]float32{col, x},
		i: [12]int{h, wd, r0, r1, ow, c.KH, c.KW, c.stride(), c.PadTop, c.PadLeft},
	}
}

// im2col writes the band of output rows [r0, r1) of the unfolded input x
// [Cin, h, wd] to col [Cin*KH*KW, (r1-r0)*ow].
func (c Conv2d) im2col(col, x []float32, h, wd, r0, r1, ow int) {
	parallelFor(c.Cin*c.KH*c.KW, 4, func(a *kargs, lo, hi int) {
		C.nnk_im2col(fptr(a.s[0]), fptr(a.s[1]), C.long(a.i[0]), C.long(a.i[1]), C.long(a.i[2]), C.long(a.i[3]),
			C.long(a.i[4]), C.long(a.i[5]), C.long(a.i[6]), C.long(a.i[7]), C.long(a.i[8]), C.long(a.i[9]),
			C.long(lo), C.long(hi))
	}, c.bandArgs(col, x, h, wd, r0, r1, ow))
}

// col2im adds the band col (the layout of im2col) back into x.
func (c Conv2d) col2im(x, col []float32, h, wd, r0, r1, ow int) {
	a := c.bandArgs(col, x, h, wd, r0, r1, ow)
	a.s[0], a.s[1] = x, col
	parallelFor(c.Cin, 1, func(a *kargs, lo, hi int) {
		C.nnk_col2im(fptr(a.s[0]), fptr(a.s[1]), C.long(a.i[0]), C.long(a.i[1]), C.long(a.i[2]), C.long(a.i[3]),
			C.long(a.i[4]), C.long(a.i[5]), C.long(a.i[6]), C.long(a.i[7]), C.long(a.i[8]), C.long(a.i[9]),
			C.long(lo), C.long(hi))
	}, a)
}

// fillBias sets every plane of y [n, cout, ohw] to its channel's bias.
func fillBias(y, b []float32, n, cout, ohw int) {
	parallelFor(n*cout, max(1, elementGrain/max(ohw, 1)), func(a *kargs, lo, hi int) {
		C.nnk_fill_planes(fptr(a.s[0]), fptr(a.s[1]), C.long(a.i[0]), C.long(a.i[1]), C.long(lo), C.long(hi))
	}, kargs{s: [10][]float32{y[:n*cout*ohw], b[:cout]}, i: [12]int{cout, ohw}})
}
