package nn

import "math"

// elementGrain is the smallest slice worth handing to another core.
const elementGrain = 1 << 14

func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// SiLU computes y = x*sigmoid(x).
func SiLU(y, x []float32) {
	parallelFor(len(x), elementGrain, func(a *kargs, lo, hi int) {
		y, x := a.s[0], a.s[1]
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			y[i] = float32(v * sigmoid64(v))
		}
	}, kargs{s: [10][]float32{y[:len(x)], x}})
}

// SiLUBackward computes dx = dy * d/dx silu(x).
func SiLUBackward(dx, dy, x []float32) {
	parallelFor(len(x), elementGrain, func(a *kargs, lo, hi int) {
		dx, dy, x := a.s[0], a.s[1], a.s[2]
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			s := sigmoid64(v)
			dx[i] = float32(float64(dy[i]) * s * (1 + v*(1-s)))
		}
	}, kargs{s: [10][]float32{dx[:len(x)], dy[:len(x)], x}})
}

func gelu64(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }

func geluGrad64(v float64) float64 {
	return 0.5*(1+math.Erf(v/math.Sqrt2)) + v*math.Exp(-0.5*v*v)/math.Sqrt(2*math.Pi)
}

// GELU computes the exact GELU, y = x*Phi(x) with the normal CDF Phi.
func GELU(y, x []float32) {
	parallelFor(len(x), elementGrain, func(a *kargs, lo, hi int) {
		y, x := a.s[0], a.s[1]
		for i := lo; i < hi; i++ {
			y[i] = float32(gelu64(float64(x[i])))
		}
	}, kargs{s: [10][]float32{y[:len(x)], x}})
}

// GELUBackward computes dx = dy * GELU'(x).
func GELUBackward(dx, dy, x []float32) {
	parallelFor(len(x), elementGrain, func(a *kargs, lo, hi int) {
		dx, dy, x := a.s[0], a.s[1], a.s[2]
		for i := lo; i < hi; i++ {
			dx[i] = float32(float64(dy[i]) * geluGrad64(float64(x[i])))
		}
	}, kargs{s: [10][]float32{dx[:len(x)], dy[:len(x)], x}})
}

// GELUTanh computes the tanh approximation of GELU used by the WD14 tagger.
func GELUTanh(y, x []float32) {
	parallelFor(len(x), elementGrain, func(a *kargs, lo, hi int) {
		y, x := a.s[0], a.s[1]
		c := math.Sqrt(2 / math.Pi)
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			y[i] = float32(0.5 * v * (1 + math.Tanh(c*(v+0.044715*v*v*v))))
		}
	}, kargs{s: [10][]float32{y[:len(x)], x}})
}

// QuickGELU computes CLIP's x*sigmoid(1.702x).
func QuickGELU(y, x []float32) {
	parallelFor(len(x), elementGrain, func(a *kargs, lo, hi int) {
		y, x := a.s[0], a.s[1]
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			y[i] = float32(v * sigmoid64(1.702*v))
		}
	}, kargs{s: [10][]float32{y[:len(x)], x}})
}

// QuickGELUBackward computes dx = dy * d/dx QuickGELU(x).
func QuickGELUBackward(dx, dy, x []float32) {
	parallelFor(len(x), elementGrain, func(a *kargs, lo, hi int) {
		dx, dy, x := a.s[0], a.s[1], a.s[2]
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			s := sigmoid64(1.702 * v)
			dx[i] = float32(float64(dy[i]) * (s + 1.702*v*s*(1-s)))
		}
	}, kargs{s: [10][]float32{dx[:len(x)], dy[:len(x)], x}})
}

// GEGLU computes y[rows,dim] = x[:, :dim] * GELU(x[:, dim:]) for x
// [rows, 2*dim], the feed-forward gate of SD's transformer blocks.
func GEGLU(y, x []float32, rows, dim int) {
	parallelFor(rows, max(1, elementGrain/max(dim, 1)), func(a *kargs, lo, hi int) {
		y, x, dim := a.s[0], a.s[1], a.i[0]
		for r := lo; r < hi; r++ {
			xr := x[r*2*dim : (r+1)*2*dim]
			yr := y[r*dim : (r+1)*dim]
			for j := range yr {
				yr[j] = float32(float64(xr[j]) * gelu64(float64(xr[dim+j])))
			}
		}
	}, kargs{s: [10][]float32{y[:rows*dim], x[:rows*2*dim]}, i: [12]int{dim}})
}

// GEGLUBackward computes dx [rows, 2*dim] from dy [rows, dim].
func GEGLUBackward(dx, dy, x []float32, rows, dim int) {
	parallelFor(rows, max(1, elementGrain/max(dim, 1)), func(a *kargs, lo, hi int) {
		dx, dy, x, dim := a.s[0], a.s[1], a.s[2], a.i[0]
		for r := lo; r < hi; r++ {
			xr := x[r*2*dim : (r+1)*2*dim]
			dxr := dx[r*2*dim : (r+1)*2*dim]
			dyr := dy[r*dim : (r+1)*dim]
			for j, g := range dyr {
				h := float64(xr[dim+j])
				dxr[j] = float32(float64(g) * gelu64(h))
				dxr[dim+j] = float32(float64(g) * float64(xr[j]) * geluGrad64(h))
			}
		}
	}, kargs{s: [10][]float32{dx[:rows*2*dim], dy[:rows*dim], x[:rows*2*dim]}, i: [12]int{dim}})
}
