#ifndef LORASTUDIO_NN_ATTENTION_H
#define LORASTUDIO_NN_ATTENTION_H

/*
 * Tiles of multi-head attention for one (batch, head). q, k, v, out, dout, dq
 * point at the head's first column in the batch's first token row; ld is the
 * row stride (heads*d). A tile is the query rows [i0, i0+m); keys are taken in
 * blocks of bk. s and dp are m*bk scratch floats, stats 2*m floats.
 */

void attn_forward_tile(float *out, float *lse, const float *q, const float *k,
                       const float *v, int m, int tk, int d, int ld, int i0,
                       int causal, float scale, int bk, float *s, float *stats);

/*
 * dk and dv are accumulated (+=) with row stride ldacc; dq is overwritten.
 * lse points at the tile's first row.
 */
void attn_backward_tile(float *dq, float *dk, float *dv, int ldacc,
                        const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse,
                        int m, int tk, int d, int ld, int i0, int causal,
                        float scale, int bk, float *s, float *dp, float *stats);

#endif
