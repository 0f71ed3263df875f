package nn

// #include "kernels.h"
import "C"

import "unsafe"

// elementGrain is the smallest slice worth handing to another core.
const elementGrain = 1 << 14

// fptr returns a C pointer to x[0], or nil for an empty slice.
func fptr(x []float32) *C.float {
	if len(x) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&x[0]))
}

// elementwise runs a C elementwise kernel y = f(x) over both cores.
func elementwise(fn kfunc, y, x []float32) {
	parallelFor(len(x), elementGrain, fn, kargs{s: [10][]float32{y[:len(x)], x}})
}

// elementwiseGrad runs a C elementwise kernel dx = f(dy, x) over both cores.
func elementwiseGrad(fn kfunc, dx, dy, x []float32) {
	parallelFor(len(x), elementGrain, fn, kargs{s: [10][]float32{dx[:len(x)], dy[:len(x)], x}})
}

// SiLU computes y = x*sigmoid(x). y may be x.
func SiLU(y, x []float32) {
	elementwise(func(a *kargs, lo, hi int) {
		C.nnk_silu(fptr(a.s[0][lo:hi]), fptr(a.s[1][lo:hi]), C.long(hi-lo))
	}, y, x)
}

// SiLUBackward computes dx = dy * SiLU'(x). dx may be dy.
func SiLUBackward(dx, dy, x []float32) {
	elementwiseGrad(func(a *kargs, lo, hi int) {
		C.nnk_silu_bwd(fptr(a.s[0][lo:hi]), fptr(a.s[1][lo:hi]), fptr(a.s[2][lo:hi]), C.long(hi-lo))
	}, dx, dy, x)
}

// GELU computes the exact GELU y = x*Phi(x), Phi the normal CDF (PyTorch's
// approximate='none'). y may be x.
func GELU(y, x []float32) {
	elementwise(func(a *kargs, lo, hi int) {
		C.nnk_gelu(fptr(a.s[0][lo:hi]), fptr(a.s[1][lo:hi]), C.long(hi-lo))
	}, y, x)
}

// GELUBackward computes dx = dy * GELU'(x). dx may be dy.
func GELUBackward(dx, dy, x []float32) {
	elementwiseGrad(func(a *kargs, lo, hi int) {
		C.nnk_gelu_bwd(fptr(a.s[0][lo:hi]), fptr(a.s[1][lo:hi]), fptr(a.s[2][lo:hi]), C.long(hi-lo))
	}, dx, dy, x)
}

// GELUTanh computes the tanh approximation of GELU (approximate='tanh'),
// used by the WD14 tagger. y may be x.
func GELUTanh(y, x []float32) {
	elementwise(func(a *kargs, lo, hi int) {
		C.nnk_gelu_tanh(fptr(a.s[0][lo:hi]), fptr(a.s[1][lo:hi]), C.long(hi-lo))
	}, y, x)
}

// QuickGELU computes CLIP's x*sigmoid(1.702x). y may be x.
func QuickGELU(y, x []float32) {
	elementwise(func(a *kargs, lo, hi int) {
		C.nnk_quick_gelu(fptr(a.s[0][lo:hi]), fptr(a.s[1][lo:hi]), C.long(hi-lo))
	}, y, x)
}

// QuickGELUBackward computes dx = dy * QuickGELU'(x). dx may be dy.
func QuickGELUBackward(dx, dy, x []float32) {
	elementwiseGrad(func(a *kargs, lo, hi int) {
		C.nnk_quick_gelu_bwd(fptr(a.s[0][lo:hi]), fptr(a.s[1][lo:hi]), fptr(a.s[2][lo:hi]), C.long(hi-lo))
	}, dx, dy, x)
}

// GEGLU computes y[rows,dim] = x[:, :dim] * GELU(x[:, dim:]) for x
// [rows, 2*dim], the feed-forward gate of SD's transformer blocks.
func GEGLU(y, x []float32, rows, dim int) {
	parallelFor(rows, max(1, elementGrain/max(dim, 1)), func(a *kargs, lo, hi int) {
		C.nnk_geglu(fptr(a.s[0]), fptr(a.s[1]), C.long(lo), C.long(hi), C.long(a.i[0]))
	}, kargs{s: [10][]float32{y[:rows*dim], x[:rows*2*dim]}, i: [12]int{dim}})
}

// GEGLUBackward computes dx [rows, 2*dim] (overwritten) from dy [rows, dim].
func GEGLUBackward(dx, dy, x []float32, rows, dim int) {
	parallelFor(rows, max(1, elementGrain/max(dim, 1)), func(a *kargs, lo, hi int) {
		C.nnk_geglu_bwd(fptr(a.s[0]), fptr(a.s[1]), fptr(a.s[2]), C.long(lo), C.long(hi), C.long(a.i[0]))
	}, kargs{s: [10][]float32{dx[:rows*2*dim], dy[:rows*dim], x[:rows*2*dim]}, i: [12]int{dim}})
}
