// Activation kernels. The cgo flag allowlist refuses -fno-trapping-math,
// hence the pragma; ivdep lets in-place calls (y == x) vectorise without a
// runtime alias check, which is safe because element i reads only index i.
#pragma GCC optimize ("O3", "no-trapping-math", "no-math-errno")

#include "kernels.h"
#include "kernels_math.h"

NNK_CLONES void nnk_silu(float *y, const float *x, long n) {
	unsigned csr = nnk_ftz_on();
#pragma GCC ivdep
	for (long i = 0; i < n; i++) y[i] = x[i] * nnk_sigmoid(x[i]);
	nnk_ftz_off(csr);
}

NNK_CLONES void nnk_silu_bwd(float *dx, const float *dy, const float *x, long n) {
	unsigned csr = nnk_ftz_on();
#pragma GCC ivdep
	for (long i = 0; i < n; i++) {
		float s = nnk_sigmoid(x[i]);
		dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
	}
	nnk_ftz_off(csr);
}

NNK_CLONES void nnk_gelu(float *y, const float *x, long n) {
	unsigned csr = nnk_ftz_on();
#pragma GCC ivdep
	for (long i = 0; i < n; i++) y[i] = x[i] * nnk_normcdf(x[i]);
	nnk_ftz_off(csr);
}

NNK_CLONES void nnk_gelu_bwd(float *dx, const float *dy, const float *x, long n) {
	unsigned csr = nnk_ftz_on();
#pragma GCC ivdep
	for (long i = 0; i < n; i++) dx[i] = dy[i] * (nnk_normcdf(x[i]) + x[i] * nnk_normpdf(x[i]));
	nnk_ftz_off(csr);
}

// 0.5*x*(1+tanh(u)) = x*sigmoid(2u): no cancellation for negative u.
NNK_CLONES void nnk_gelu_tanh(float *y, const float *x, long n) {
	unsigned csr = nnk_ftz_on();
#pragma GCC ivdep
	for (long i = 0; i < n; i++) {
		float v = x[i];
		float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
		y[i] = v * nnk_sigmoid(2.0f * u);
	}
	nnk_ftz_off(csr);
}

NNK_CLONES void nnk_quick_gelu(float *y, const float *x, long n) {
	unsigned csr = nnk_ftz_on();
#pragma GCC ivdep
	for (long i = 0; i < n; i++) y[i] = x[i] * nnk_sigmoid(1.702f * x[i]);
	nnk_ftz_off(csr);
}

NNK_CLONES void nnk_quick_gelu_bwd(float *dx, const float *dy, const float *x, long n) {
	unsigned csr = nnk_ftz_on();
#pragma GCC ivdep
	for (long i = 0; i < n; i++) {
		float s = nnk_sigmoid(1.702f * x[i]);
		dx[i] = dy[i] * (s + 1.702f * x[i] * s * (1.0f - s));
	}
	nnk_ftz_off(csr);
}

NNK_CLONES void nnk_geglu(float *y, const float *x, long r0, long r1, long dim) {
	unsigned csr = nnk_ftz_on();
	for (long r = r0; r < r1; r++) {
		const float *a = x + r * 2 * dim, *g = a + dim;
		float *yr = y + r * dim;
#pragma GCC ivdep
		for (long j = 0; j < dim; j++) yr[j] = a[j] * g[j] * nnk_normcdf(g[j]);
	}
	nnk_ftz_off(csr);
}

NNK_CLONES void nnk_geglu_bwd(float *dx, const float *dy, const float *x, long r0, long r1, long dim) {
	unsigned csr = nnk_ftz_on();
	for (long r = r0; r < r1; r++) {
		const float *a = x + r * 2 * dim, *g = a + dim, *d = dy + r * dim;
		float *da = dx + r * 2 * dim, *dg = da + dim;
#pragma GCC ivdep
		for (long j = 0; j < dim; j++) {
			float cdf = nnk_normcdf(g[j]);
			float gv = g[j], av = a[j], dv = d[j];
			da[j] = dv * gv * cdf;
			dg[j] = dv * av * (cdf + gv * nnk_normpdf(gv));
		}
	}
	nnk_ftz_off(csr);
}
