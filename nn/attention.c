// Flash-attention style tiles: sgemm for the products of every key block,
// and vectorised C loops for the softmax in between. The cgo flag allowlist
// refuses -fno-trapping-math, hence the pragma; NNK_CLONES picks the widest
// vector unit at run time. Every tile runs with flush-to-zero: probabilities
// below 1e-38 are zero to a softmax, and denormals cost microcode assists.
#pragma GCC optimize ("O3", "no-trapping-math", "no-math-errno")

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <cblas.h>

#include "attention.h"
#include "kernels_math.h"

#define LANES 16

typedef int32_t attn_v16i __attribute__((vector_size(64), aligned(4)));

// vmax_into sets acc to the lane-wise maximum of acc and x[0..16). A ?: on
// floats does not vectorise (NaN rules), so the lanes select through integer
// masks. Pointers, not vector values, cross the call: passing 64-byte vectors
// by value draws an ABI warning from the non-AVX-512 clones.
NNK_INLINE void vmax_into(nnk_v16 *acc, const float *x) {
	nnk_v16 v = *(const nnk_v16 *)x;
	attn_v16i gt = v > *acc;
	*acc = (nnk_v16)((gt & (attn_v16i)v) | (~gt & (attn_v16i)*acc));
}

// row_max returns the largest of x[0..n), n >= 1. Four accumulators hide
// the latency of compare and select.
NNK_INLINE float row_max(const float *x, int n) {
	nnk_v16 a[4];
	for (int i = 0; i < 4; i++)
		for (int l = 0; l < LANES; l++) a[i][l] = -INFINITY;
	int j = 0;
	for (; j + 4 * LANES <= n; j += 4 * LANES)
		for (int i = 0; i < 4; i++) vmax_into(&a[i], x + j + i * LANES);
	for (; j + LANES <= n; j += LANES) vmax_into(&a[0], x + j);
	vmax_into(&a[0], (const float *)&a[1]);
	vmax_into(&a[2], (const float *)&a[3]);
	vmax_into(&a[0], (const float *)&a[2]);
	float m = -INFINITY;
	for (int l = 0; l < LANES; l++) m = a[0][l] > m ? a[0][l] : m;
	for (; j < n; j++) m = x[j] > m ? x[j] : m;
	return m;
}

// exp_shift replaces x[j] by exp(x[j] - c) for j < n and returns their sum.
NNK_INLINE float exp_shift(float *x, int n, float c) {
	float acc[LANES];
	for (int l = 0; l < LANES; l++) acc[l] = 0.0f;
	int j = 0;
	for (; j + LANES <= n; j += LANES)
		for (int l = 0; l < LANES; l++) {
			float e = nnk_exp(x[j + l] - c);
			x[j + l] = e;
			acc[l] += e;
		}
	float s = 0.0f;
	for (int l = 0; l < LANES; l++) s += acc[l];
	for (; j < n; j++) {
		float e = nnk_exp(x[j] - c);
		x[j] = e;
		s += e;
	}
	return s;
}

NNK_INLINE void scale_row(float *x, int n, float c) {
	for (int j = 0; j < n; j++) x[j] *= c;
}

// causal_len is how many keys of the block starting at j0 (n keys) query
// row i may see: keys j <= i.
NNK_INLINE int causal_len(int i, int j0, int n) {
	int len = i + 1 - j0;
	return len < 0 ? 0 : (len < n ? len : n);
}

// attn_forward_tile runs an online softmax over the key blocks: each block's
// scores are exponentiated against the running row maximum, the output rows
// accumulated so far are rescaled when the maximum grows, and the rows are
// divided by their sums once at the end.
NNK_CLONES void attn_forward_tile(float *out, float *lse, const float *q, const float *k,
                              const float *v, int m, int tk, int d, int ld, int i0,
                              int causal, float scale, int bk, float *s, float *stats) {
	unsigned csr = nnk_ftz_on();
	float *mx = stats, *sum = stats + m;
	const float *qt = q + (size_t)i0 * ld;
	float *ot = out + (size_t)i0 * ld;
	int kend = causal && i0 + m < tk ? i0 + m : tk;
	for (int j0 = 0; j0 < kend; j0 += bk) {
		int n = kend - j0 < bk ? kend - j0 : bk;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, d, scale, qt, ld,
		            k + (size_t)j0 * ld, ld, 0.0f, s, n);
		for (int r = 0; r < m; r++) {
			float *row = s + (size_t)r * n;
			int len = causal ? causal_len(i0 + r, j0, n) : n;
			if (len < n) memset(row + len, 0, (size_t)(n - len) * sizeof *row);
			if (len == 0) continue; // never in the first block: key 0 is always visible
			float bm = row_max(row, len);
			if (j0 == 0) {
				mx[r] = bm;
				sum[r] = exp_shift(row, len, bm);
				continue;
			}
			float mn = bm > mx[r] ? bm : mx[r];
			float ps = exp_shift(row, len, mn);
			if (mn > mx[r]) {
				float c = nnk_exp(mx[r] - mn);
				scale_row(ot + (size_t)r * ld, d, c);
				sum[r] *= c;
			}
			sum[r] += ps;
			mx[r] = mn;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, n, 1.0f, s, n,
		            v + (size_t)j0 * ld, ld, j0 > 0 ? 1.0f : 0.0f, ot, ld);
	}
	for (int r = 0; r < m; r++) {
		scale_row(ot + (size_t)r * ld, d, 1.0f / sum[r]);
		lse[r] = mx[r] + logf(sum[r]);
	}
	nnk_ftz_off(csr);
}

// attn_backward_tile follows FlashAttention-2: the probabilities are
// recomputed from the saved log-sum-exp, dS = P*(dP - D) with
// D_i = rowsum(dO_i*O_i), then dV += P^T dO, dQ = scale*dS K and
// dK += scale*dS^T Q.
NNK_CLONES void attn_backward_tile(float *dq, float *dk, float *dv, int ldacc,
                               const float *dout, const float *q, const float *k,
                               const float *v, const float *out, const float *lse,
                               int m, int tk, int d, int ld, int i0, int causal,
                               float scale, int bk, float *s, float *dp, float *stats) {
	unsigned csr = nnk_ftz_on();
	float *delta = stats;
	const float *qt = q + (size_t)i0 * ld, *dot = dout + (size_t)i0 * ld;
	float *dqt = dq + (size_t)i0 * ld;
	for (int r = 0; r < m; r++)
		delta[r] = (float)nnk_dot(dot + (size_t)r * ld, out + (size_t)(i0 + r) * ld, d);
	int kend = causal && i0 + m < tk ? i0 + m : tk;
	for (int j0 = 0; j0 < kend; j0 += bk) {
		int n = kend - j0 < bk ? kend - j0 : bk;
		const float *kb = k + (size_t)j0 * ld, *vb = v + (size_t)j0 * ld;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, d, scale, qt, ld, kb, ld,
		            0.0f, s, n);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, d, 1.0f, dot, ld, vb, ld,
		            0.0f, dp, n);
		for (int r = 0; r < m; r++) {
			float *p = s + (size_t)r * n, *g = dp + (size_t)r * n;
			int len = causal ? causal_len(i0 + r, j0, n) : n;
			float l = lse[r], dr = delta[r];
			for (int j = 0; j < len; j++) {
				float e = nnk_exp(p[j] - l);
				p[j] = e;
				g[j] = e * (g[j] - dr);
			}
			if (len < n) {
				memset(p + len, 0, (size_t)(n - len) * sizeof *p);
				memset(g + len, 0, (size_t)(n - len) * sizeof *g);
			}
		}
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, m, 1.0f, s, n, dot, ld,
		            1.0f, dv + (size_t)j0 * ldacc, ldacc);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, n, scale, dp, n, kb, ld,
		            j0 > 0 ? 1.0f : 0.0f, dqt, ld);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, m, scale, dp, n, qt, ld,
		            1.0f, dk + (size_t)j0 * ldacc, ldacc);
	}
	nnk_ftz_off(csr);
}
