package tagger

import (
	"image"
	"image/color"
	"math"
)

// Preprocessing follows the reference tagger pipeline (wdv3_timm.py): alpha
// composited onto white, padded to a white square, resized with Pillow's
// antialiased bicubic, BGR, scaled to [-1, 1]. The integer arithmetic below
// is Pillow's own (AlphaComposite.c, Resample.c), so pixels from the same
// decoded image match the reference exactly.

// rgb8 is a packed 8-bit RGB image, 3 bytes per pixel, row-major.
type rgb8 struct {
	W, H int
	Pix  []uint8
}

// paddedSquare reads img composited onto white and padded to a white
// square of side max(w, h), the image at ((side-w)/2, (side-h)/2), one row
// at a time: a panorama's padded square would not fit in memory.
type paddedSquare struct {
	at           func(x, y int) color.NRGBA
	side, x0, y0 int
	w, h         int
	min          image.Point
}

func newPaddedSquare(img image.Image) *paddedSquare {
	b := img.Bounds()
	side := max(b.Dx(), b.Dy())
	return &paddedSquare{
		at: pixelReader(img), side: side,
		x0: (side - b.Dx()) / 2, y0: (side - b.Dy()) / 2,
		w: b.Dx(), h: b.Dy(), min: b.Min,
	}
}

// white reports whether row y is all padding.
func (p *paddedSquare) white(y int) bool { return y < p.y0 || y >= p.y0+p.h }

// row writes row y (3*side bytes) into buf.
func (p *paddedSquare) row(y int, buf []uint8) {
	for i := range buf[:3*p.side] {
		buf[i] = 255
	}
	if p.white(y) {
		return
	}
	out := buf[3*p.x0:]
	for x := range p.w {
		r, g, b := compositeOnWhite(p.at(p.min.X+x, p.min.Y+y-p.y0))
		out[3*x], out[3*x+1], out[3*x+2] = r, g, b
	}
}

// pixelReader returns a straight-alpha pixel reader for img, with direct
// paths for the decoders' usual types (a JPEG photo has millions of
// pixels; the generic At boxes each one).
func pixelReader(img image.Image) func(x, y int) color.NRGBA {
	switch m := img.(type) {
	case *image.YCbCr:
		return func(x, y int) color.NRGBA {
			c := m.YCbCrAt(x, y)
			r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
			return color.NRGBA{r, g, b, 255}
		}
	case *image.NRGBA:
		return m.NRGBAAt
	case *image.Gray:
		return func(x, y int) color.NRGBA {
			v := m.GrayAt(x, y).Y
			return color.NRGBA{v, v, v, 255}
		}
	}
	return func(x, y int) color.NRGBA {
		return color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
	}
}

// compositeOnWhite is Pillow's Image.alpha_composite of a straight-alpha
// pixel over opaque white, with its 7-bit fixed-point rounding.
func compositeOnWhite(c color.NRGBA) (r, g, b uint8) {
	switch c.A {
	case 0:
		return 255, 255, 255
	case 255:
		return c.R, c.G, c.B
	}
	const precision = 7
	sa := uint32(c.A)
	blend := 255 * (255 - sa)
	outa255 := sa*255 + blend
	coef1 := sa * 255 * 255 * (1 << precision) / outa255
	coef2 := 255*(1<<precision) - coef1
	ch := func(s uint8) uint8 {
		t := uint32(s)*coef1 + 255*coef2 + 0x80<<precision
		return uint8((((t >> 8) + t) >> 8) >> precision)
	}
	return ch(c.R), ch(c.G), ch(c.B)
}

// Pillow's resampling fixed point: 22 fractional bits.
const resamplePrecision = 32 - 8 - 2

// bicubic is Pillow's cubic kernel with a = -0.5.
func bicubic(x float64) float64 {
	const a = -0.5
	x = math.Abs(x)
	switch {
	case x < 1:
		return ((a+2)*x-(a+3))*x*x + 1
	case x < 2:
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

// resampleCoeffs is Pillow's precompute_coeffs + normalize_coeffs_8bpc for
// a bicubic resize of inSize to outSize: per output pixel the first input
// index, the count, and ksize fixed-point weights.
func resampleCoeffs(inSize, outSize int) (bounds []int, kk []int32, ksize int) {
	const support0 = 2.0
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1)
	support := support0 * filterscale
	ksize = int(math.Ceil(support))*2 + 1
	bounds = make([]int, 2*outSize)
	kk = make([]int32, outSize*ksize)
	w := make([]float64, ksize)
	for xx := range outSize {
		center := (float64(xx) + 0.5) * scale
		ss := 1 / filterscale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		ww := 0.0
		for x := range xmax {
			w[x] = bicubic((float64(x+xmin) - center + 0.5) * ss)
			ww += w[x]
		}
		for x := range xmax {
			if ww != 0 {
				w[x] /= ww
			}
			v := w[x] * (1 << resamplePrecision)
			if v < 0 {
				kk[xx*ksize+x] = int32(-0.5 + v)
			} else {
				kk[xx*ksize+x] = int32(0.5 + v)
			}
		}
		bounds[2*xx], bounds[2*xx+1] = xmin, xmax
	}
	return bounds, kk, ksize
}

func clip8(v int32) uint8 {
	v >>= resamplePrecision
	switch {
	case v < 0:
		return 0
	case v > 255:
		return 255
	}
	return uint8(v)
}

// squareRGB is the reference pipeline's image before normalisation: img
// on white, padded square, resized to size x size with Pillow's
// Image.resize(BICUBIC): a horizontal pass into 8-bit rows, then a
// vertical pass, each antialiased when shrinking.
func squareRGB(img image.Image, size int) rgb8 {
	src := newPaddedSquare(img)
	side := src.side
	row := make([]uint8, 3*side)
	dst := rgb8{W: size, H: size, Pix: make([]uint8, 3*size*size)}
	if side == size {
		for y := range size {
			src.row(y, row)
			copy(dst.Pix[3*y*size:], row)
		}
		return dst
	}
	hb, hk, hks := resampleCoeffs(side, size)
	vb, vk, vks := resampleCoeffs(side, size)
	first := vb[0]
	last := vb[2*size-2] + vb[2*size-1]
	tmp := make([]uint8, 3*size*(last-first))
	var whiteOut []uint8 // the horizontal pass of a padding row, computed once
	for y := range last - first {
		out := tmp[3*y*size : 3*(y+1)*size]
		if src.white(y+first) && whiteOut != nil {
			copy(out, whiteOut)
			continue
		}
		src.row(y+first, row)
		for xx := range size {
			xmin, n := hb[2*xx], hb[2*xx+1]
			k := hk[xx*hks:]
			s0, s1, s2 := int32(1)<<(resamplePrecision-1), int32(1)<<(resamplePrecision-1), int32(1)<<(resamplePrecision-1)
			for x := range n {
				p := row[3*(x+xmin):]
				s0 += int32(p[0]) * k[x]
				s1 += int32(p[1]) * k[x]
				s2 += int32(p[2]) * k[x]
			}
			out[3*xx], out[3*xx+1], out[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
		}
		if src.white(y + first) {
			whiteOut = out
		}
	}
	for yy := range size {
		ymin, n := vb[2*yy]-first, vb[2*yy+1]
		k := vk[yy*vks:]
		out := dst.Pix[3*yy*size:]
		for xx := range size {
			s0, s1, s2 := int32(1)<<(resamplePrecision-1), int32(1)<<(resamplePrecision-1), int32(1)<<(resamplePrecision-1)
			for y := range n {
				p := tmp[3*((y+ymin)*size+xx):]
				s0 += int32(p[0]) * k[y]
				s1 += int32(p[1]) * k[y]
				s2 += int32(p[2]) * k[y]
			}
			out[3*xx], out[3*xx+1], out[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
		}
	}
	return dst
}

// toInput writes the square RGB image as the network input: NCHW, BGR
// channel order, x = (u8/255 - 0.5)/0.5 in float32 steps as torch computes
// it.
func toInput(dst []float32, img rgb8) {
	hw := img.W * img.H
	for i := range hw {
		for c := range 3 {
			u := img.Pix[3*i+2-c]
			dst[c*hw+i] = (float32(u)/255 - 0.5) / 0.5
		}
	}
}

// Preprocess turns an image into the tagger's input [3, size, size].
func Preprocess(img image.Image, size int) []float32 {
	sq := squareRGB(img, size)
	x := make([]float32, 3*size*size)
	toInput(x, sq)
	return x
}
