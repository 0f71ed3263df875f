// Memory-bound helpers: reductions, elementwise arithmetic, resampling and
// layout changes, vectorised where Go would not be.
#pragma GCC optimize ("O3", "no-trapping-math", "no-math-errno")

#include <string.h>

#include "kernels.h"
#include "kernels_math.h"

// Columns j0..j1 of x [rows, cols] summed over rows in double.
NNK_CLONES void nnk_col_sums(float *dst, const float *x, long rows, long cols, long j0, long j1) {
	enum { W = 256 };
	double acc[W];
	for (long c0 = j0; c0 < j1; c0 += W) {
		long len = j1 - c0 < W ? j1 - c0 : W;
		for (long j = 0; j < len; j++) acc[j] = 0;
		for (long r = 0; r < rows; r++) {
			const float *xr = x + r * cols + c0;
			for (long j = 0; j < len; j++) acc[j] += xr[j];
		}
		for (long j = 0; j < len; j++) dst[c0 + j] = (float)acc[j];
	}
}

// Channels c0..c1 of x [n, c, hw] summed over n and hw.
NNK_CLONES void nnk_plane_sums(float *dst, const float *x, long n, long c, long hw, long c0, long c1) {
	for (long ch = c0; ch < c1; ch++) {
		double s = 0;
		for (long i = 0; i < n; i++) s += nnk_sum(x + (i * c + ch) * hw, hw);
		dst[ch] = (float)s;
	}
}

NNK_CLONES void nnk_add(float *y, const float *a, const float *b, long n) {
#pragma GCC ivdep
	for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}

NNK_CLONES void nnk_add_inplace(float *y, const float *a, long n) {
#pragma GCC ivdep
	for (long i = 0; i < n; i++) y[i] += a[i];
}

NNK_CLONES void nnk_scale(float *y, float s, long n) {
	for (long i = 0; i < n; i++) y[i] *= s;
}

// Planes p0..p1 of x [planes, hw] get b[p] added.
NNK_CLONES void nnk_add_plane_bias(float *x, const float *b, long hw, long p0, long p1) {
	for (long p = p0; p < p1; p++) {
		float v = b[p], *xp = x + p * hw;
		for (long i = 0; i < hw; i++) xp[i] += v;
	}
}

// Planes p0..p1 of y [n*c, hw] are filled with the bias of their channel.
NNK_CLONES void nnk_fill_planes(float *y, const float *b, long c, long hw, long p0, long p1) {
	for (long p = p0; p < p1; p++) {
		float v = b[p % c], *yp = y + p * hw;
		for (long i = 0; i < hw; i++) yp[i] = v;
	}
}

NNK_CLONES void nnk_upsample2x(float *y, const float *x, long h, long w, long p0, long p1) {
	for (long p = p0; p < p1; p++) {
		for (long i = 0; i < h; i++) {
			const float *src = x + (p * h + i) * w;
			float *row = y + (p * 2 * h + 2 * i) * 2 * w;
			for (long j = 0; j < w; j++) {
				row[2 * j] = src[j];
				row[2 * j + 1] = src[j];
			}
			memcpy(row + 2 * w, row, 2 * w * sizeof *row);
		}
	}
}

NNK_CLONES void nnk_upsample2x_bwd(float *dx, const float *dy, long h, long w, long p0, long p1) {
	for (long p = p0; p < p1; p++) {
		for (long i = 0; i < h; i++) {
			const float *a = dy + (p * 2 * h + 2 * i) * 2 * w, *b = a + 2 * w;
			float *d = dx + (p * h + i) * w;
			for (long j = 0; j < w; j++) d[j] = (a[2 * j] + a[2 * j + 1]) + (b[2 * j] + b[2 * j + 1]);
		}
	}
}

// Tiles t0..t1 of a batch of [rows, cols] matrices transposed into
// [cols, rows]: tile t covers TILE rows of matrix t / tiles_per_matrix, in
// TILE x TILE blocks that stay in L1.
NNK_CLONES void nnk_transpose(float *y, const float *x, long rows, long cols, long t0, long t1) {
	enum { TILE = 16 };
	long tiles = (rows + TILE - 1) / TILE;
	for (long t = t0; t < t1; t++) {
		long b = t / tiles, r0 = t % tiles * TILE;
		long r1 = r0 + TILE < rows ? r0 + TILE : rows;
		const float *xs = x + b * rows * cols;
		float *ys = y + b * rows * cols;
		for (long c0 = 0; c0 < cols; c0 += TILE) {
			long c1 = c0 + TILE < cols ? c0 + TILE : cols;
			for (long c = c0; c < c1; c++)
				for (long r = r0; r < r1; r++) ys[c * rows + r] = xs[r * cols + c];
		}
	}
}
