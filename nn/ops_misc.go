package nn

// #include "kernels.h"
import "C"

import "math"

// columnSums writes the sums over rows of each column of x [rows, cols].
func columnSums(dst, x []float32, rows, cols int) {
	parallelFor(cols, 64, func(a *kargs, lo, hi int) {
		C.nnk_col_sums(fptr(a.s[0]), fptr(a.s[1]), C.long(a.i[0]), C.long(a.i[1]), C.long(lo), C.long(hi))
	}, kargs{s: [10][]float32{dst[:cols], x[:rows*cols]}, i: [12]int{rows, cols}})
}

// Upsample2x repeats each pixel of x [nc, h, w] into a 2x2 block of y
// [nc, 2h, 2w] (nearest-neighbour upsampling).
func Upsample2x(y, x []float32, nc, h, w int) {
	parallelFor(nc, max(1, elementGrain/max(4*h*w, 1)), func(a *kargs, lo, hi int) {
		C.nnk_upsample2x(fptr(a.s[0]), fptr(a.s[1]), C.long(a.i[0]), C.long(a.i[1]), C.long(lo), C.long(hi))
	}, kargs{s: [10][]float32{y[:nc*4*h*w], x[:nc*h*w]}, i: [12]int{h, w}})
}

// Upsample2xBackward sums each 2x2 block of dy [nc, 2h, 2w] into dx
// [nc, h, w] (overwritten).
func Upsample2xBackward(dx, dy []float32, nc, h, w int) {
	parallelFor(nc, max(1, elementGrain/max(4*h*w, 1)), func(a *kargs, lo, hi int) {
		C.nnk_upsample2x_bwd(fptr(a.s[0]), fptr(a.s[1]), C.long(a.i[0]), C.long(a.i[1]), C.long(lo), C.long(hi))
	}, kargs{s: [10][]float32{dx[:nc*h*w], dy[:nc*4*h*w]}, i: [12]int{h, w}})
}

// ConcatChannels writes y [n, ca+cb, hw] from a [n, ca, hw] and b [n, cb, hw]
// (the UNet's skip connections).
func ConcatChannels(y, a, b []float32, n, ca, cb, hw int) {
	for i := range n {
		copy(y[i*(ca+cb)*hw:], a[i*ca*hw:(i+1)*ca*hw])
		copy(y[(i*(ca+cb)+ca)*hw:], b[i*cb*hw:(i+1)*cb*hw])
	}
}

// SplitChannels is the backward of ConcatChannels: it copies dy
// [n, ca+cb, hw] into da [n, ca, hw] and db [n, cb, hw]; either may be nil.
func SplitChannels(da, db, dy []float32, n, ca, cb, hw int) {
	for i := range n {
		if da != nil {
			copy(da[i*ca*hw:(i+1)*ca*hw], dy[i*(ca+cb)*hw:])
		}
		if db != nil {
			copy(db[i*cb*hw:(i+1)*cb*hw], dy[(i*(ca+cb)+ca)*hw:])
		}
	}
}

// ToTokens transposes x [n, c, hw] to y [n, hw, c]: feature maps to the
// token layout of the transformer blocks.
func ToTokens(y, x []float32, n, c, hw int) {
	transposeBatch(y[:n*c*hw], x[:n*c*hw], n, c, hw)
}

// FromTokens transposes x [n, hw, c] back to y [n, c, hw].
func FromTokens(y, x []float32, n, c, hw int) {
	transposeBatch(y[:n*c*hw], x[:n*c*hw], n, hw, c)
}

// transposeBatch writes y [n, cols, rows] from x [n, rows, cols].
func transposeBatch(y, x []float32, n, rows, cols int) {
	tiles := n * ((rows + 15) / 16)
	parallelFor(tiles, 4, func(a *kargs, lo, hi int) {
		C.nnk_transpose(fptr(a.s[0]), fptr(a.s[1]), C.long(a.i[0]), C.long(a.i[1]), C.long(lo), C.long(hi))
	}, kargs{s: [10][]float32{y, x}, i: [12]int{rows, cols}})
}

// Add writes y = a + b elementwise; y may be a or b.
func Add(y, a, b []float32) {
	parallelFor(len(a), elementGrain, func(k *kargs, lo, hi int) {
		C.nnk_add(fptr(k.s[0][lo:hi]), fptr(k.s[1][lo:hi]), fptr(k.s[2][lo:hi]), C.long(hi-lo))
	}, kargs{s: [10][]float32{y[:len(a)], a, b[:len(a)]}})
}

// AddInPlace computes y += a elementwise.
func AddInPlace(y, a []float32) {
	parallelFor(len(a), elementGrain, func(k *kargs, lo, hi int) {
		C.nnk_add_inplace(fptr(k.s[0][lo:hi]), fptr(k.s[1][lo:hi]), C.long(hi-lo))
	}, kargs{s: [10][]float32{y[:len(a)], a}})
}

// Scale computes y *= s elementwise.
func Scale(y []float32, s float32) {
	parallelFor(len(y), elementGrain, func(k *kargs, lo, hi int) {
		C.nnk_scale(fptr(k.s[0][lo:hi]), C.float(k.f[0]), C.long(hi-lo))
	}, kargs{s: [10][]float32{y}, f: [2]float32{s}})
}

// AddChannelBias adds b [n*c] to each plane of x [n, c, hw]: a bias per
// sample and channel, like the time embedding added inside a ResBlock.
func AddChannelBias(x, b []float32, n, c, hw int) {
	parallelFor(n*c, max(1, elementGrain/max(hw, 1)), func(k *kargs, lo, hi int) {
		C.nnk_add_plane_bias(fptr(k.s[0]), fptr(k.s[1]), C.long(k.i[0]), C.long(lo), C.long(hi))
	}, kargs{s: [10][]float32{x[:n*c*hw], b[:n*c]}, i: [12]int{hw}})
}

// TimestepEmbedding writes the sinusoidal embedding of each timestep into
// dst [len(timesteps), dim]: cosines first, then sines, frequencies
// exp(-ln(10000)*i/(dim/2)), as diffusers' get_timestep_embedding with
// flip_sin_to_cos=True and downscale_freq_shift=0. The arithmetic is float32
// where PyTorch's is, so large timesteps give the same angles. An odd dim
// leaves a zero last column.
func TimestepEmbedding(dst []float32, timesteps []float32, dim int) {
	half := dim / 2
	lnMax := float32(-math.Log(10000))
	for r, t := range timesteps {
		row := dst[r*dim : (r+1)*dim]
		for i := range half {
			e := lnMax * float32(i) / float32(half)
			arg := t * float32(math.Exp(float64(e)))
			row[i] = float32(math.Cos(float64(arg)))
			row[half+i] = float32(math.Sin(float64(arg)))
		}
		if dim%2 == 1 {
			row[dim-1] = 0
		}
	}
}

// MSE returns the mean of (pred-target)^2, accumulated in float64.
func MSE(pred, target []float32) float32 {
	var s float64
	for i, p := range pred {
		d := float64(p) - float64(target[i])
		s += d * d
	}
	return float32(s / float64(len(pred)))
}

// MSEBackward writes dpred = scale * 2 * (pred-target) / N.
func MSEBackward(dpred, pred, target []float32, scale float32) {
	k := 2 * float64(scale) / float64(len(pred))
	for i, p := range pred {
		dpred[i] = float32(k * (float64(p) - float64(target[i])))
	}
}
