/*
 * The functions the interformer.ops library exports: the one declaration
 * of their signatures. Every kernel source includes this header (so the C
 * compiler checks each definition against it) and the Python loader
 * (interformer/ops/library.py) reads the prototypes below to bind them,
 * so no signature is written twice. Keep one prototype per statement, with
 * the parameter types from: const/unsigned qualifiers, int, long, float,
 * and pointers (any pointee type).
 *
 * Kernels return 0 on success and 1 where they cannot run (the Python
 * side checks shapes, dtypes and CPU features before calling, so 1 then
 * means a failed allocation or AMX permission).
 */
#ifndef INTERFORMER_OPS_H
#define INTERFORMER_OPS_H

#include <stdint.h>

/* Bit i set: the library was compiled with feature i (FEATURE_* below). */
int interformer_ops_features(void);

int pyramid_tokens(const void *x, int is_bf16, int H, int W, int C,
                   int apply_gn, const float *gn_w, const float *gn_b,
                   float gn_eps, int levels, const int *sizes,
                   const float *dw_w, const float *dw_b, const float *ln_w,
                   const float *ln_b, float ln_eps, float *scratch,
                   void *out, int rows);

int bilinear_resize(const void *src, int is_bf16, int h, int w, int C,
                    long src_row, long src_pixel, void *dst, int H, int W,
                    long dst_row, long dst_pixel, int accumulate);

int attention_bf16(const uint16_t *q, long q_row, const uint16_t *k,
                   const uint16_t *v, int heads, int nq, int nk, int valid,
                   int head_dims, float scale, uint16_t *out, long out_row);

int attention_f32(const float *q, long q_row, const float *k,
                  const float *v, int heads, int nq, int nk, int valid,
                  int head_dims, float scale, float *out, long out_row);

int linear_bf16(const uint16_t *x, long x_row, int M, int K,
                const uint32_t *wp, int N, const float *bias, int act,
                const uint16_t *res, long res_row, uint16_t *out,
                long out_row);

#endif
