// C kernels of package nn (act_kernels.c, norm_kernels.c, conv_kernels.c,
// ops_misc_kernels.c). Each works on an index range so that Go can split a
// call across cores, one cgo call per chunk.
#ifndef LORASTUDIO_NN_KERNELS_H
#define LORASTUDIO_NN_KERNELS_H

void nnk_silu(float *y, const float *x, long n);
void nnk_silu_bwd(float *dx, const float *dy, const float *x, long n);
void nnk_gelu(float *y, const float *x, long n);
void nnk_gelu_bwd(float *dx, const float *dy, const float *x, long n);
void nnk_gelu_tanh(float *y, const float *x, long n);
void nnk_quick_gelu(float *y, const float *x, long n);
void nnk_quick_gelu_bwd(float *dx, const float *dy, const float *x, long n);
void nnk_geglu(float *y, const float *x, long r0, long r1, long dim);
void nnk_geglu_bwd(float *dx, const float *dy, const float *x, long r0, long r1, long dim);

void nnk_group_norm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                        long c, long hw, long groups, float eps, int silu, long g0, long g1);
void nnk_group_norm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                        const float *rstd, const float *gamma, const float *beta, long n, long c, long hw, long groups,
                        int silu, long g0, long g1);
void nnk_layer_norm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                        long dim, float eps, long r0, long r1);
void nnk_layer_norm_bwd(float *dx, const float *dy, const float *x, const float *mean, const float *rstd,
                        const float *gamma, long dim, long r0, long r1);
void nnk_layer_norm_params(float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                           const float *rstd, long rows, long dim, long j0, long j1);

void nnk_im2col(float *col, const float *x, long h, long w, long r0, long r1, long ow, long kh, long kw, long stride,
                long pad_top, long pad_left, long row0, long row1);
void nnk_col2im(float *x, const float *col, long h, long w, long r0, long r1, long ow, long kh, long kw, long stride,
                long pad_top, long pad_left, long c0, long c1);

void nnk_col_sums(float *dst, const float *x, long rows, long cols, long j0, long j1);
void nnk_plane_sums(float *dst, const float *x, long n, long c, long hw, long c0, long c1);
void nnk_add(float *y, const float *a, const float *b, long n);
void nnk_add_inplace(float *y, const float *a, long n);
void nnk_scale(float *y, float s, long n);
void nnk_add_plane_bias(float *x, const float *b, long hw, long p0, long p1);
void nnk_fill_planes(float *y, const float *b, long c, long hw, long p0, long p1);
void nnk_upsample2x(float *y, const float *x, long h, long w, long p0, long p1);
void nnk_upsample2x_bwd(float *dx, const float *dy, long h, long w, long p0, long p1);
void nnk_transpose(float *y, const float *x, long rows, long cols, long t0, long t1);

#endif
