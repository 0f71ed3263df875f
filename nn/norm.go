package nn

import "math"

// GroupNormForward normalises x [n, c, hw] over groups of c/groups channels,
// then applies the per-channel affine gamma, beta (either may be nil for an
// identity) and, when silu is set, SiLU. mean and rstd [n*groups] receive
// the statistics for the backward pass. Statistics are accumulated in
// float64: SD's groups hold 40,960 values.
func GroupNormForward(y, mean, rstd, x, gamma, beta []float32, n, c, hw, groups int, eps float32, silu bool) {
	size := c / groups * hw
	parallelFor(n*groups, max(1, elementGrain/max(size, 1)), groupNormForward, kargs{
		s: [10][]float32{y[:n*c*hw], mean[:n*groups], rstd[:n*groups], x[:n*c*hw], gamma, beta},
		i: [12]int{c, hw, groups},
		f: [2]float32{eps},
		b: silu,
	})
}

func affineAt(gamma, beta []float32, ch int) (ga, be float64) {
	ga = 1
	if gamma != nil {
		ga = float64(gamma[ch])
	}
	if beta != nil {
		be = float64(beta[ch])
	}
	return ga, be
}

func groupNormForward(a *kargs, lo, hi int) {
	y, mean, rstd, x, gamma, beta := a.s[0], a.s[1], a.s[2], a.s[3], a.s[4], a.s[5]
	c, hw, groups, eps, silu := a.i[0], a.i[1], a.i[2], float64(a.f[0]), a.b
	cg := c / groups
	size := cg * hw
	for g := lo; g < hi; g++ {
		xs := x[g*size : (g+1)*size]
		ys := y[g*size : (g+1)*size]
		var s float64
		for _, v := range xs {
			s += float64(v)
		}
		m := s / float64(size)
		var ss float64
		for _, v := range xs {
			d := float64(v) - m
			ss += d * d
		}
		r := 1 / math.Sqrt(ss/float64(size)+eps)
		mean[g], rstd[g] = float32(m), float32(r)
		for k := range cg {
			ga, be := affineAt(gamma, beta, g%groups*cg+k)
			for i := k * hw; i < (k+1)*hw; i++ {
				z := (float64(xs[i])-m)*r*ga + be
				if silu {
					z *= sigmoid64(z)
				}
				ys[i] = float32(z)
			}
		}
	}
}

// GroupNormBackward computes dx (overwritten) and, when not nil, dgamma and
// dbeta (overwritten) of GroupNormForward from the saved mean and rstd.
func GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta []float32, n, c, hw, groups int, silu bool) {
	if dgamma != nil {
		dgamma = dgamma[:c]
	}
	if dbeta != nil {
		dbeta = dbeta[:c]
	}
	parallelFor(groups, 1, groupNormBackward, kargs{
		s: [10][]float32{dx[:n*c*hw], dgamma, dbeta, dy[:n*c*hw], x[:n*c*hw], mean[:n*groups], rstd[:n*groups], gamma, beta},
		i: [12]int{n, c, hw, groups},
		b: silu,
	})
}

func groupNormBackward(a *kargs, lo, hi int) {
	dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta := a.s[0], a.s[1], a.s[2], a.s[3], a.s[4], a.s[5], a.s[6], a.s[7], a.s[8]
	n, c, hw, groups, silu := a.i[0], a.i[1], a.i[2], a.i[3], a.b
	cg := c / groups
	size := float64(cg * hw)
	// grad returns the gradient reaching the normalised value xhat's affine
	// output, through the optional SiLU.
	grad := func(d, xhat, ga, be float64) float64 {
		if !silu {
			return d
		}
		z := xhat*ga + be
		s := sigmoid64(z)
		return d * s * (1 + z*(1-s))
	}
	for g := lo; g < hi; g++ {
		for k := range cg {
			ch := g*cg + k
			if dgamma != nil {
				dgamma[ch] = 0
			}
			if dbeta != nil {
				dbeta[ch] = 0
			}
		}
		for b := range n {
			m, r := float64(mean[b*groups+g]), float64(rstd[b*groups+g])
			var sumA, sumB float64
			for k := range cg {
				ch := g*cg + k
				ga, be := affineAt(gamma, beta, ch)
				off := (b*c + ch) * hw
				var sg, sgx float64
				for i := off; i < off+hw; i++ {
					xhat := (float64(x[i]) - m) * r
					d := grad(float64(dy[i]), xhat, ga, be)
					sg += d
					sgx += d * xhat
				}
				if dgamma != nil {
					dgamma[ch] += float32(sgx)
				}
				if dbeta != nil {
					dbeta[ch] += float32(sg)
				}
				sumA += ga * sg
				sumB += ga * sgx
			}
			meanA, meanB := sumA/size, sumB/size
			for k := range cg {
				ch := g*cg + k
				ga, be := affineAt(gamma, beta, ch)
				off := (b*c + ch) * hw
				for i := off; i < off+hw; i++ {
					xhat := (float64(x[i]) - m) * r
					d := grad(float64(dy[i]), xhat, ga, be)
					dx[i] = float32(r * (ga*d - meanA - xhat*meanB))
				}
			}
		}
	}
}

// LayerNormForward normalises each row of x [rows, dim] and applies gamma
// and beta (either may be nil); mean and rstd [rows] are saved for backward.
func LayerNormForward(y, mean, rstd, x, gamma, beta []float32, rows, dim int, eps float32) {
	parallelFor(rows, max(1, elementGrain/max(dim, 1)), func(a *kargs, lo, hi int) {
		y, mean, rstd, x, gamma, beta := a.s[0], a.s[1], a.s[2], a.s[3], a.s[4], a.s[5]
		dim, eps := a.i[0], float64(a.f[0])
		for r := lo; r < hi; r++ {
			xs := x[r*dim : (r+1)*dim]
			var s float64
			for _, v := range xs {
				s += float64(v)
			}
			m := s / float64(dim)
			var ss float64
			for _, v := range xs {
				d := float64(v) - m
				ss += d * d
			}
			rs := 1 / math.Sqrt(ss/float64(dim)+eps)
			mean[r], rstd[r] = float32(m), float32(rs)
			for j, v := range xs {
				ga, be := affineAt(gamma, beta, j)
				y[r*dim+j] = float32((float64(v)-m)*rs*ga + be)
			}
		}
	}, kargs{
		s: [10][]float32{y[:rows*dim], mean[:rows], rstd[:rows], x[:rows*dim], gamma, beta},
		i: [12]int{dim},
		f: [2]float32{eps},
	})
}

// LayerNormBackward computes dx (overwritten) and, when not nil, dgamma and
// dbeta (overwritten) of LayerNormForward.
func LayerNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma []float32, rows, dim int) {
	a := kargs{
		s: [10][]float32{dx[:rows*dim], dgamma, dbeta, dy[:rows*dim], x[:rows*dim], mean[:rows], rstd[:rows], gamma},
		i: [12]int{rows, dim},
	}
	parallelFor(rows, max(1, elementGrain/max(dim, 1)), func(a *kargs, lo, hi int) {
		dx, dy, x, mean, rstd, gamma := a.s[0], a.s[3], a.s[4], a.s[5], a.s[6], a.s[7]
		dim := a.i[1]
		for r := lo; r < hi; r++ {
			m, rs := float64(mean[r]), float64(rstd[r])
			var sa, sb float64
			for j := range dim {
				ga, _ := affineAt(gamma, nil, j)
				xhat := (float64(x[r*dim+j]) - m) * rs
				d := float64(dy[r*dim+j]) * ga
				sa += d
				sb += d * xhat
			}
			sa /= float64(dim)
			sb /= float64(dim)
			for j := range dim {
				ga, _ := affineAt(gamma, nil, j)
				xhat := (float64(x[r*dim+j]) - m) * rs
				dx[r*dim+j] = float32(rs * (float64(dy[r*dim+j])*ga - sa - xhat*sb))
			}
		}
	}, a)
	if dgamma == nil && dbeta == nil {
		return
	}
	parallelFor(dim, 64, func(a *kargs, lo, hi int) {
		dgamma, dbeta, dy, x, mean, rstd := a.s[1], a.s[2], a.s[3], a.s[4], a.s[5], a.s[6]
		rows, dim := a.i[0], a.i[1]
		for j := lo; j < hi; j++ {
			var sg, sgx float64
			for r := range rows {
				d := float64(dy[r*dim+j])
				sg += d
				sgx += d * (float64(x[r*dim+j]) - float64(mean[r])) * float64(rstd[r])
			}
			if dgamma != nil {
				dgamma[j] = float32(sgx)
			}
			if dbeta != nil {
				dbeta[j] = float32(sg)
			}
		}
	}, a)
}
