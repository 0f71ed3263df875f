// GroupNorm and LayerNorm kernels. Statistics are accumulated in float
// vectors over short blocks and in double across blocks (SD's groups hold
// 40,960 values); the variance is taken around the float mean, so data with
// a large mean and a small spread loses nothing to cancellation.
#pragma GCC optimize ("O3", "no-trapping-math", "no-math-errno")

#include <math.h>

#include "kernels.h"
#include "kernels_math.h"

// Values are processed in blocks of BLOCK through stack buffers, so that
// every loop is a simple vectorisable one.
#define BLOCK 1024

// stats returns the float mean and the reciprocal standard deviation of
// x[0..n) in *m and *r.
NNK_INLINE void stats(const float *x, long n, double eps, float *m, float *r) {
	double mean = nnk_sum(x, n) / n;
	float mf = (float)mean;
	double d = mean - mf;
	double var = nnk_sumsq_shift(x, n, mf) / n - d * d;
	*m = mf;
	*r = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
}

NNK_CLONES void nnk_group_norm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                   const float *beta, long c, long hw, long groups, float eps, int silu, long g0,
                                   long g1) {
	unsigned csr = nnk_ftz_on();
	long cg = c / groups, size = cg * hw;
	for (long g = g0; g < g1; g++) {
		const float *xs = x + g * size;
		float *ys = y + g * size;
		float m, r;
		stats(xs, size, eps, &m, &r);
		mean[g] = m;
		rstd[g] = r;
		for (long k = 0; k < cg; k++) {
			long ch = g % groups * cg + k;
			float sc = r * (gamma ? gamma[ch] : 1.0f), sh = beta ? beta[ch] : 0.0f;
			const float *xp = xs + k * hw;
			float *yp = ys + k * hw;
			if (silu) {
#pragma GCC ivdep
				for (long i = 0; i < hw; i++) {
					float z = (xp[i] - m) * sc + sh;
					yp[i] = z * nnk_sigmoid(z);
				}
			} else {
#pragma GCC ivdep
				for (long i = 0; i < hw; i++) yp[i] = (xp[i] - m) * sc + sh;
			}
		}
	}
	nnk_ftz_off(csr);
}

// gn_grad writes to d the gradient reaching the affine output (through the
// SiLU when fused) and to xh the normalised input, for n values of one
// channel.
NNK_INLINE void gn_grad(float *d, float *xh, const float *dy, const float *x, long n, float m, float r, float ga,
                        float be, int silu) {
	for (long i = 0; i < n; i++) xh[i] = (x[i] - m) * r;
	if (!silu) {
		for (long i = 0; i < n; i++) d[i] = dy[i];
		return;
	}
	for (long i = 0; i < n; i++) {
		float z = xh[i] * ga + be;
		float s = nnk_sigmoid(z);
		d[i] = dy[i] * s * (1.0f + z * (1.0f - s));
	}
}

// Groups g0..g1 over all n samples: the channels of a group belong to one
// call, so the parameter gradients need no synchronisation.
NNK_CLONES void nnk_group_norm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                   const float *mean, const float *rstd, const float *gamma, const float *beta,
                                   long n, long c, long hw, long groups, int silu, long g0, long g1) {
	unsigned csr = nnk_ftz_on();
	long cg = c / groups;
	double size = (double)cg * hw;
	float d[BLOCK], xh[BLOCK];
	for (long g = g0; g < g1; g++) {
		for (long k = 0; k < cg; k++) {
			if (dgamma) dgamma[g * cg + k] = 0;
			if (dbeta) dbeta[g * cg + k] = 0;
		}
		for (long b = 0; b < n; b++) {
			float m = mean[b * groups + g], r = rstd[b * groups + g];
			double sum_a = 0, sum_b = 0;
			for (long k = 0; k < cg; k++) {
				long ch = g * cg + k, off = (b * c + ch) * hw;
				float ga = gamma ? gamma[ch] : 1.0f, be = beta ? beta[ch] : 0.0f;
				double sg = 0, sgx = 0;
				for (long i0 = 0; i0 < hw; i0 += BLOCK) {
					long len = hw - i0 < BLOCK ? hw - i0 : BLOCK;
					gn_grad(d, xh, dy + off + i0, x + off + i0, len, m, r, ga, be, silu);
					sg += nnk_sum(d, len);
					sgx += nnk_dot(d, xh, len);
				}
				if (dgamma) dgamma[ch] += (float)sgx;
				if (dbeta) dbeta[ch] += (float)sg;
				sum_a += ga * sg;
				sum_b += ga * sgx;
			}
			float ma = (float)(sum_a / size), mb = (float)(sum_b / size);
			for (long k = 0; k < cg; k++) {
				long ch = g * cg + k, off = (b * c + ch) * hw;
				float ga = gamma ? gamma[ch] : 1.0f, be = beta ? beta[ch] : 0.0f;
				for (long i0 = 0; i0 < hw; i0 += BLOCK) {
					long len = hw - i0 < BLOCK ? hw - i0 : BLOCK;
					gn_grad(d, xh, dy + off + i0, x + off + i0, len, m, r, ga, be, silu);
					float *dxp = dx + off + i0;
					for (long i = 0; i < len; i++) dxp[i] = r * (ga * d[i] - ma - xh[i] * mb);
				}
			}
		}
	}
	nnk_ftz_off(csr);
}

NNK_CLONES void nnk_layer_norm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                   const float *beta, long dim, float eps, long r0, long r1) {
	for (long row = r0; row < r1; row++) {
		const float *xs = x + row * dim;
		float *ys = y + row * dim;
		float m, r;
		stats(xs, dim, eps, &m, &r);
		mean[row] = m;
		rstd[row] = r;
		if (gamma && beta) {
			for (long j = 0; j < dim; j++) ys[j] = (xs[j] - m) * r * gamma[j] + beta[j];
		} else {
			for (long j = 0; j < dim; j++) ys[j] = (xs[j] - m) * r * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
		}
	}
}

NNK_CLONES void nnk_layer_norm_bwd(float *dx, const float *dy, const float *x, const float *mean, const float *rstd,
                                   const float *gamma, long dim, long r0, long r1) {
	float d[BLOCK], xh[BLOCK];
	for (long row = r0; row < r1; row++) {
		const float *xs = x + row * dim, *dys = dy + row * dim;
		float *dxs = dx + row * dim;
		float m = mean[row], r = rstd[row];
		double sa = 0, sb = 0;
		for (long j0 = 0; j0 < dim; j0 += BLOCK) {
			long len = dim - j0 < BLOCK ? dim - j0 : BLOCK;
			for (long j = 0; j < len; j++) {
				xh[j] = (xs[j0 + j] - m) * r;
				d[j] = dys[j0 + j] * (gamma ? gamma[j0 + j] : 1.0f);
			}
			sa += nnk_sum(d, len);
			sb += nnk_dot(d, xh, len);
		}
		float ma = (float)(sa / dim), mb = (float)(sb / dim);
		for (long j = 0; j < dim; j++) {
			float xhat = (xs[j] - m) * r;
			dxs[j] = r * (dys[j] * (gamma ? gamma[j] : 1.0f) - ma - xhat * mb);
		}
	}
}

// Columns j0..j1 of dgamma and dbeta, summed over all rows in double.
NNK_CLONES void nnk_layer_norm_params(float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                                      const float *rstd, long rows, long dim, long j0, long j1) {
	enum { W = 256 };
	double sg[W], sgx[W];
	for (long c0 = j0; c0 < j1; c0 += W) {
		long len = j1 - c0 < W ? j1 - c0 : W;
		for (long j = 0; j < len; j++) sg[j] = sgx[j] = 0;
		for (long row = 0; row < rows; row++) {
			const float *dys = dy + row * dim + c0, *xs = x + row * dim + c0;
			float m = mean[row], r = rstd[row];
			for (long j = 0; j < len; j++) {
				sg[j] += dys[j];
				sgx[j] += dys[j] * ((xs[j] - m) * r);
			}
		}
		for (long j = 0; j < len; j++) {
			if (dgamma) dgamma[c0 + j] = (float)sgx[j];
			if (dbeta) dbeta[c0 + j] = (float)sg[j];
		}
	}
}
