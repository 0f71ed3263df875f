// im2col and col2im for Conv2d, on a band of output rows [r0, r1). Column
// matrix row (ci*kh + ky)*kw + kx holds, for every output pixel of the band,
// the input value under kernel tap (ky, kx) of channel ci, zero in padding.
#pragma GCC optimize ("O3", "no-trapping-math", "no-math-errno")

#include <string.h>

#include "kernels.h"
#include "kernels_math.h"

// valid_ox returns in [*lo, *hi) the output columns whose tap kx falls
// inside the w input columns.
NNK_INLINE void valid_ox(long w, long ow, long kx, long stride, long pad_left, long *lo, long *hi) {
	long first = pad_left - kx > 0 ? (pad_left - kx + stride - 1) / stride : 0;
	long last = w - 1 + pad_left - kx;
	long end = last >= 0 ? last / stride + 1 : 0;
	end = end < ow ? end : ow;
	*lo = first < end ? first : end;
	*hi = end;
}

NNK_CLONES void nnk_im2col(float *col, const float *x, long h, long w, long r0, long r1, long ow, long kh, long kw,
                           long stride, long pad_top, long pad_left, long row0, long row1) {
	long cols = (r1 - r0) * ow;
	for (long row = row0; row < row1; row++) {
		long ci = row / (kh * kw), ky = row / kw % kh, kx = row % kw;
		const float *plane = x + ci * h * w;
		float *dst = col + row * cols;
		long lo, hi;
		valid_ox(w, ow, kx, stride, pad_left, &lo, &hi);
		for (long oy = r0; oy < r1; oy++) {
			float *d = dst + (oy - r0) * ow;
			long iy = oy * stride - pad_top + ky;
			if (iy < 0 || iy >= h) {
				memset(d, 0, ow * sizeof *d);
				continue;
			}
			const float *src = plane + iy * w - pad_left + kx;
			for (long ox = 0; ox < lo; ox++) d[ox] = 0;
			if (stride == 1) {
				memcpy(d + lo, src + lo, (hi - lo) * sizeof *d);
			} else {
				for (long ox = lo; ox < hi; ox++) d[ox] = src[ox * stride];
			}
			for (long ox = hi; ox < ow; ox++) d[ox] = 0;
		}
	}
}

// Channels c0..c1: each input channel gathers only from its own column
// rows, so channel ranges can run in parallel.
NNK_CLONES void nnk_col2im(float *x, const float *col, long h, long w, long r0, long r1, long ow, long kh, long kw,
                           long stride, long pad_top, long pad_left, long c0, long c1) {
	long cols = (r1 - r0) * ow;
	for (long ci = c0; ci < c1; ci++) {
		float *plane = x + ci * h * w;
		for (long ky = 0; ky < kh; ky++) {
			for (long kx = 0; kx < kw; kx++) {
				const float *src = col + ((ci * kh + ky) * kw + kx) * cols;
				long lo, hi;
				valid_ox(w, ow, kx, stride, pad_left, &lo, &hi);
				for (long oy = r0; oy < r1; oy++) {
					long iy = oy * stride - pad_top + ky;
					if (iy < 0 || iy >= h) continue;
					const float *s = src + (oy - r0) * ow;
					float *d = plane + iy * w - pad_left + kx;
					if (stride == 1) {
#pragma GCC ivdep
						for (long ox = lo; ox < hi; ox++) d[ox] += s[ox];
					} else {
						for (long ox = lo; ox < hi; ox++) d[ox * stride] += s[ox];
					}
				}
			}
		}
	}
}
