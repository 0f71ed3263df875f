package nn

// #include "kernels.h"
import "C"

import "fmt"

// head returns x[:n], or nil for a nil x (an absent optional operand). The
// C kernels read n values, so a short slice must panic here, not there.
func head(x []float32, n int) []float32 {
	if x == nil {
		return nil
	}
	return x[:n]
}

func checkGroups(c, groups int) {
	if groups <= 0 || c%groups != 0 {
		panic(fmt.Sprintf("nn.GroupNorm: %d channels in %d groups", c, groups))
	}
}

// cbool converts a Go bool for the C kernels.
func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// GroupNormForward normalises x [n, c, hw] over groups of c/groups channels,
// then applies the per-channel affine gamma, beta (either may be nil for an
// identity) and, when silu is set, SiLU. mean and rstd [n*groups] receive
// the statistics for the backward pass. Statistics are exact for SD's
// 40,960-value groups (double accumulation, variance around the mean).
func GroupNormForward(y, mean, rstd, x, gamma, beta []float32, n, c, hw, groups int, eps float32, silu bool) {
	checkGroups(c, groups)
	size := c / groups * hw
	parallelFor(n*groups, max(1, elementGrain/max(size, 1)), func(a *kargs, lo, hi int) {
		C.nnk_group_norm_fwd(fptr(a.s[0]), fptr(a.s[1]), fptr(a.s[2]), fptr(a.s[3]), fptr(a.s[4]), fptr(a.s[5]),
			C.long(a.i[0]), C.long(a.i[1]), C.long(a.i[2]), C.float(a.f[0]), cbool(a.b), C.long(lo), C.long(hi))
	}, kargs{
		s: [10][]float32{y[:n*c*hw], mean[:n*groups], rstd[:n*groups], x[:n*c*hw], head(gamma, c), head(beta, c)},
		i: [12]int{c, hw, groups},
		f: [2]float32{eps},
		b: silu,
	})
}

// GroupNormBackward computes dx (overwritten) and, when not nil, dgamma and
// dbeta (overwritten) of GroupNormForward from the saved mean and rstd.
func GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta []float32, n, c, hw, groups int, silu bool) {
	checkGroups(c, groups)
	parallelFor(groups, 1, func(a *kargs, lo, hi int) {
		C.nnk_group_norm_bwd(fptr(a.s[0]), fptr(a.s[1]), fptr(a.s[2]), fptr(a.s[3]), fptr(a.s[4]), fptr(a.s[5]),
			fptr(a.s[6]), fptr(a.s[7]), fptr(a.s[8]),
			C.long(a.i[0]), C.long(a.i[1]), C.long(a.i[2]), C.long(a.i[3]), cbool(a.b), C.long(lo), C.long(hi))
	}, kargs{
		s: [10][]float32{dx[:n*c*hw], head(dgamma, c), head(dbeta, c), dy[:n*c*hw], x[:n*c*hw], mean[:n*groups], rstd[:n*groups],
			head(gamma, c), head(beta, c)},
		i: [12]int{n, c, hw, groups},
		b: silu,
	})
}

// LayerNormForward normalises each row of x [rows, dim] and applies gamma
// and beta (either may be nil); mean and rstd [rows] are saved for backward.
func LayerNormForward(y, mean, rstd, x, gamma, beta []float32, rows, dim int, eps float32) {
	parallelFor(rows, max(1, elementGrain/max(dim, 1)), func(a *kargs, lo, hi int) {
		C.nnk_layer_norm_fwd(fptr(a.s[0]), fptr(a.s[1]), fptr(a.s[2]), fptr(a.s[3]), fptr(a.s[4]), fptr(a.s[5]),
			C.long(a.i[0]), C.float(a.f[0]), C.long(lo), C.long(hi))
	}, kargs{
		s: [10][]float32{y[:rows*dim], mean[:rows], rstd[:rows], x[:rows*dim], head(gamma, dim), head(beta, dim)},
		i: [12]int{dim},
		f: [2]float32{eps},
	})
}

// LayerNormBackward computes dx (overwritten) and, when not nil, dgamma and
// dbeta (overwritten) of LayerNormForward.
func LayerNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma []float32, rows, dim int) {
	a := kargs{
		s: [10][]float32{dx[:rows*dim], head(dgamma, dim), head(dbeta, dim), dy[:rows*dim], x[:rows*dim], mean[:rows], rstd[:rows],
			head(gamma, dim)},
		i: [12]int{rows, dim},
	}
	parallelFor(rows, max(1, elementGrain/max(dim, 1)), func(a *kargs, lo, hi int) {
		C.nnk_layer_norm_bwd(fptr(a.s[0]), fptr(a.s[3]), fptr(a.s[4]), fptr(a.s[5]), fptr(a.s[6]), fptr(a.s[7]),
			C.long(a.i[1]), C.long(lo), C.long(hi))
	}, a)
	if dgamma == nil && dbeta == nil {
		return
	}
	parallelFor(dim, 64, func(a *kargs, lo, hi int) {
		C.nnk_layer_norm_params(fptr(a.s[1]), fptr(a.s[2]), fptr(a.s[3]), fptr(a.s[4]), fptr(a.s[5]), fptr(a.s[6]),
			C.long(a.i[0]), C.long(a.i[1]), C.long(lo), C.long(hi))
	}, a)
}
