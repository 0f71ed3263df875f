package nn

// UpsampleConv is nearest-neighbour 2x upsampling followed by a 3x3
// convolution with stride 1 and padding 1: the upsampler of SD's UNet and
// VAE. Forward never builds the upsampled input. An output pixel's 3x3
// window over the upsampled image covers only 2x2 pixels of x, and which
// taps land on which pixel depends only on the parity of its row and
// column; so the output is four 2x2 convolutions of x (one per parity, with
// the 3x3 taps that land on the same pixel summed), interleaved. That is
// 4 multiply-adds per output value and input channel instead of 9, and no
// intermediate four times the input's size (268 MB in the VAE at 512 px).
type UpsampleConv struct{ Cin, Cout int }

// TempSize is the number of floats Forward needs in tmp for n inputs of
// h x w: one parity's weights and its output.
func (u UpsampleConv) TempSize(n, h, w int) int {
	return u.Cout*u.Cin*4 + n*u.Cout*h*w
}

// Forward computes y [n, Cout, 2h, 2w] from x [n, Cin, h, w], the 3x3
// weights w [Cout, Cin, 3, 3] and bias b (nil for none). ws holds the
// im2col buffer, tmp at least TempSize(n, h, w) floats.
func (u UpsampleConv) Forward(ws *Workspace, tmp, y, x, w, b []float32, n, h, wd int) {
	kw := tmp[:u.Cout*u.Cin*4]
	part := tmp[len(kw) : len(kw)+n*u.Cout*h*wd]
	for pr := range 2 {
		for pc := range 2 {
			u.parityWeights(kw, w, pr, pc)
			conv := Conv2d{Cin: u.Cin, Cout: u.Cout, KH: 2, KW: 2, Stride: 1,
				PadTop: 1 - pr, PadBottom: pr, PadLeft: 1 - pc, PadRight: pc}
			conv.Forward(ws, part, x, kw, b, n, h, wd)
			interleave(y, part, n*u.Cout, h, wd, pr, pc)
		}
	}
}

// parityWeights writes to kw [Cout, Cin, 2, 2] the 2x2 kernel of output
// rows of parity pr and columns of parity pc. An even upsampled row 2i
// sees rows 2i-1, 2i, 2i+1, which are x's rows i-1, i, i: kernel row 0
// alone on x row i-1, rows 1 and 2 summed on x row i. An odd row sees x's
// rows i, i, i+1: kernel rows 0 and 1 summed, then row 2. Columns alike.
func (u UpsampleConv) parityWeights(kw, w []float32, pr, pc int) {
	// taps[p][k] lists the 3x3 kernel indices that fall on 2x2 index k.
	taps := [2][2][]int{{{0}, {1, 2}}, {{0, 1}, {2}}}
	parallelFor(u.Cout*u.Cin, 256, func(a *kargs, lo, hi int) {
		kw, w := a.s[0], a.s[1]
		pr, pc := a.i[0], a.i[1]
		for m := lo; m < hi; m++ {
			src := w[m*9 : m*9+9]
			dst := kw[m*4 : m*4+4]
			for ky := range 2 {
				for kx := range 2 {
					var sum float32
					for _, r := range taps[pr][ky] {
						for _, c := range taps[pc][kx] {
							sum += src[r*3+c]
						}
					}
					dst[ky*2+kx] = sum
				}
			}
		}
	}, kargs{s: [10][]float32{kw, w[:u.Cout*u.Cin*9]}, i: [12]int{pr, pc}})
}

// interleave writes part [planes, h, w] to the pixels of parity (pr, pc)
// of y [planes, 2h, 2w].
func interleave(y, part []float32, planes, h, w, pr, pc int) {
	parallelFor(planes, max(1, elementGrain/max(h*w, 1)), func(a *kargs, lo, hi int) {
		y, part := a.s[0], a.s[1]
		h, w, pr, pc := a.i[0], a.i[1], a.i[2], a.i[3]
		for p := lo; p < hi; p++ {
			src := part[p*h*w : (p+1)*h*w]
			dst := y[p*4*h*w : (p+1)*4*h*w]
			for i := range h {
				row := dst[(2*i+pr)*2*w:]
				for j, v := range src[i*w : (i+1)*w] {
					row[2*j+pc] = v
				}
			}
		}
	}, kargs{s: [10][]float32{y[:planes*4*h*w], part[:planes*h*w]}, i: [12]int{h, w, pr, pc}})
}
