package nn

import "math"

// columnSums writes the sums over rows of each column of x [rows, cols].
func columnSums(dst, x []float32, rows, cols int) {
	parallelFor(cols, 64, func(a *kargs, lo, hi int) {
		dst, x, rows, cols := a.s[0], a.s[1], a.i[0], a.i[1]
		for j := lo; j < hi; j++ {
			var s float64
			for r := range rows {
				s += float64(x[r*cols+j])
			}
			dst[j] = float32(s)
		}
	}, kargs{s: [10][]float32{dst[:cols], x[:rows*cols]}, i: [12]int{rows, cols}})
}

// Upsample2x repeats each pixel of x [nc, h, w] into a 2x2 block of y
// [nc, 2h, 2w] (nearest-neighbour upsampling).
func Upsample2x(y, x []float32, nc, h, w int) {
	parallelFor(nc, max(1, elementGrain/max(4*h*w, 1)), func(a *kargs, lo, hi int) {
		y, x, h, w := a.s[0], a.s[1], a.i[0], a.i[1]
		for p := lo; p < hi; p++ {
			for i := range h {
				src := x[(p*h+i)*w : (p*h+i+1)*w]
				row := y[(p*2*h+2*i)*2*w : (p*2*h+2*i+1)*2*w]
				for j, v := range src {
					row[2*j], row[2*j+1] = v, v
				}
				copy(y[(p*2*h+2*i+1)*2*w:(p*2*h+2*i+2)*2*w], row)
			}
		}
	}, kargs{s: [10][]float32{y[:nc*4*h*w], x[:nc*h*w]}, i: [12]int{h, w}})
}

// Upsample2xBackward sums each 2x2 block of dy [nc, 2h, 2w] into dx
// [nc, h, w] (overwritten).
func Upsample2xBackward(dx, dy []float32, nc, h, w int) {
	parallelFor(nc, max(1, elementGrain/max(4*h*w, 1)), func(a *kargs, lo, hi int) {
		dx, dy, h, w := a.s[0], a.s[1], a.i[0], a.i[1]
		for p := lo; p < hi; p++ {
			for i := range h {
				r0 := dy[(p*2*h+2*i)*2*w:]
				r1 := dy[(p*2*h+2*i+1)*2*w:]
				dst := dx[(p*h+i)*w : (p*h+i+1)*w]
				for j := range dst {
					dst[j] = r0[2*j] + r0[2*j+1] + r1[2*j] + r1[2*j+1]
				}
			}
		}
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

// transposeBatch writes y [n, cols, rows] from x [n, rows, cols] in tiles
// that stay in cache.
func transposeBatch(y, x []float32, n, rows, cols int) {
	const tile = 32
	tr := (rows + tile - 1) / tile
	parallelFor(n*tr, 1, func(a *kargs, lo, hi int) {
		y, x, rows, cols, tr := a.s[0], a.s[1], a.i[0], a.i[1], a.i[2]
		for t := lo; t < hi; t++ {
			b, r0 := t/tr, t%tr*tile
			r1 := min(r0+tile, rows)
			xs := x[b*rows*cols:]
			ys := y[b*rows*cols:]
			for c0 := 0; c0 < cols; c0 += tile {
				c1 := min(c0+tile, cols)
				for r := r0; r < r1; r++ {
					for c := c0; c < c1; c++ {
						ys[c*rows+r] = xs[r*cols+c]
					}
				}
			}
		}
	}, kargs{s: [10][]float32{y, x}, i: [12]int{rows, cols, tr}})
}

// Add writes y = a + b elementwise.
func Add(y, a, b []float32) {
	parallelFor(len(a), elementGrain, func(k *kargs, lo, hi int) {
		y, a, b := k.s[0], k.s[1], k.s[2]
		for i := lo; i < hi; i++ {
			y[i] = a[i] + b[i]
		}
	}, kargs{s: [10][]float32{y[:len(a)], a, b[:len(a)]}})
}

// AddInPlace computes y += a elementwise.
func AddInPlace(y, a []float32) {
	parallelFor(len(a), elementGrain, func(k *kargs, lo, hi int) {
		y, a := k.s[0], k.s[1]
		for i := lo; i < hi; i++ {
			y[i] += a[i]
		}
	}, kargs{s: [10][]float32{y[:len(a)], a}})
}

// Scale computes y *= s elementwise.
func Scale(y []float32, s float32) {
	parallelFor(len(y), elementGrain, func(k *kargs, lo, hi int) {
		y, s := k.s[0], k.f[0]
		for i := lo; i < hi; i++ {
			y[i] *= s
		}
	}, kargs{s: [10][]float32{y}, f: [2]float32{s}})
}

// AddChannelBias adds b [n*c] to each plane of x [n, c, hw]: a bias per
// sample and channel, like the time embedding added inside a ResBlock.
func AddChannelBias(x, b []float32, n, c, hw int) {
	parallelFor(n*c, max(1, elementGrain/max(hw, 1)), func(k *kargs, lo, hi int) {
		x, b, hw := k.s[0], k.s[1], k.i[0]
		for p := lo; p < hi; p++ {
			v := b[p]
			plane := x[p*hw : (p+1)*hw]
			for i := range plane {
				plane[i] += v
			}
		}
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
