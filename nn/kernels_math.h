// Vectorisable float math shared by the kernels: straight-line code with no
// libm calls, so loops over it compile to AVX-512/AVX2 under target_clones.
#ifndef LORASTUDIO_NN_KERNELS_MATH_H
#define LORASTUDIO_NN_KERNELS_MATH_H

#include <stdint.h>
#include <string.h>
#include <xmmintrin.h>

#define NNK_INLINE static inline __attribute__((always_inline))
#define NNK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// A 16-float vector that may be unaligned; reductions accumulate in these so
// they vectorise without reassociation flags.
typedef float nnk_v16 __attribute__((vector_size(64), aligned(4)));

// nnk_ftz_on sets flush-to-zero and denormals-are-zero for the calling
// thread and returns the previous MXCSR for nnk_ftz_off. GCC if-converts the
// range clamps below into selects that evaluate both sides, so in-range
// inputs also compute a product with exp(-87.3) ~ 1e-38, and each denormal
// result costs a microcode assist: SiLU ran 8x slower without this. Values
// below 1.2e-38 are zero for every caller.
NNK_INLINE unsigned nnk_ftz_on(void) {
	unsigned old = _mm_getcsr();
	_mm_setcsr(old | 0x8040);
	return old;
}

NNK_INLINE void nnk_ftz_off(unsigned old) { _mm_setcsr(old); }

// exp(x) with Cody-Waite range reduction and Cephes' degree-6 polynomial
// (about 1 ulp). x is clamped to [-87.3, 88.3] so that 2^n stays a normal
// float: results below 1e-38 are not exact, which no caller can see.
NNK_INLINE float nnk_exp(float x) {
	x = x < -87.3f ? -87.3f : x;
	x = x > 88.3f ? 88.3f : x;
	float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	float r = x - n * 0.693359375f;
	r = r + n * 2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	int32_t bits = ((int32_t)n + 127) << 23;
	float scale;
	memcpy(&scale, &bits, sizeof scale);
	return p * scale;
}

NNK_INLINE float nnk_sigmoid(float x) { return 1.0f / (1.0f + nnk_exp(-x)); }

// Phi(x), the standard normal CDF, as erfc(-x/sqrt 2)/2 with the Chebyshev
// fit of Numerical Recipes' erfcc (relative error < 1.2e-7 on erfc). Going
// through erfc rather than 1+erf keeps the relative accuracy of x*Phi(x)
// for negative x, where 1+erf cancels.
NNK_INLINE float nnk_normcdf(float x) {
	float w = -x * 0.70710678118654752f;
	float z = w < 0.0f ? -w : w;
	float t = 1.0f / (1.0f + 0.5f * z);
	float p = 0.17087277f;
	p = p * t - 0.82215223f;
	p = p * t + 1.48851587f;
	p = p * t - 1.13520398f;
	p = p * t + 0.27886807f;
	p = p * t - 0.18628806f;
	p = p * t + 0.09678418f;
	p = p * t + 0.37409196f;
	p = p * t + 1.00002368f;
	p = p * t - 1.26551223f;
	float erfc = t * nnk_exp(p - z * z);
	erfc = w < 0.0f ? 2.0f - erfc : erfc;
	return 0.5f * erfc;
}

// The standard normal density.
NNK_INLINE float nnk_normpdf(float x) { return 0.3989422804014327f * nnk_exp(-0.5f * x * x); }

// nnk_sum returns the sum of x[0..n) accumulated in float vectors over
// blocks of 1024 values and in double across blocks.
NNK_INLINE double nnk_sum(const float *x, long n) {
	double total = 0;
	long i = 0;
	while (i + 16 <= n) {
		long end = i + 1024 <= n ? i + 1024 : n - (n - i) % 16;
		nnk_v16 acc = {0};
		for (; i < end; i += 16) acc += *(const nnk_v16 *)(x + i);
		for (int l = 0; l < 16; l++) total += acc[l];
	}
	for (; i < n; i++) total += x[i];
	return total;
}

// nnk_dot returns the dot product of a and b, accumulated like nnk_sum.
NNK_INLINE double nnk_dot(const float *a, const float *b, long n) {
	double total = 0;
	long i = 0;
	while (i + 16 <= n) {
		long end = i + 1024 <= n ? i + 1024 : n - (n - i) % 16;
		nnk_v16 acc = {0};
		for (; i < end; i += 16) acc += *(const nnk_v16 *)(a + i) * *(const nnk_v16 *)(b + i);
		for (int l = 0; l < 16; l++) total += acc[l];
	}
	for (; i < n; i++) total += (double)a[i] * b[i];
	return total;
}

// nnk_sumsq_shift returns the sum of (x-c)^2, accumulated like nnk_sum.
NNK_INLINE double nnk_sumsq_shift(const float *x, long n, float c) {
	double total = 0;
	long i = 0;
	while (i + 16 <= n) {
		long end = i + 1024 <= n ? i + 1024 : n - (n - i) % 16;
		nnk_v16 acc = {0};
		for (; i < end; i += 16) {
			nnk_v16 d = *(const nnk_v16 *)(x + i) - c;
			acc += d * d;
		}
		for (int l = 0; l < 16; l++) total += acc[l];
	}
	for (; i < n; i++) total += (double)(x[i] - c) * (x[i] - c);
	return total;
}

#endif
