/*
 * Softmax attention of the I-MSA blocks in float32 (AVX-512F).
 *
 * The same shape as attention.c (32 dimensions per head, a few hundred
 * pooled keys, most of PyTorch's flash-kernel time spent around tiny
 * GEMMs), in float32 throughout: per block of 16 queries of one head
 *
 *   scores  S = Q K^T         4 queries x 16 keys per pass, the keys packed
 *                             transposed (one vector per head dimension),
 *   softmax P = exp(S - max)  masked keys 0 (softmax.h's exp),
 *   output  O = P V / sum(P)  4 queries x 32 dimensions per pass, each
 *                             value row loaded once for the 4 queries.
 *
 * Built where the compiler targets AVX-512F (-march=native); elsewhere
 * attention_f32 returns 1 and the caller keeps PyTorch's
 * scaled_dot_product_attention.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "interformer_ops.h"
#include "softmax.h"

#if defined(__AVX512F__)

#define DIMS 32
/* LANES (common.h): keys per score vector, queries per block */
#define MAX_KEYS_F32 1024

/* K of one head transposed per block of 16 keys: block b, dimension d,
 * lane l -> k[16 b + l][d]; keys past nk are zero. */
static void pack_keys_f32(const float *k, int nk, int blocks, float *dst) {
    for (int b = 0; b < blocks; ++b)
        for (int d = 0; d < DIMS; ++d)
            for (int l = 0; l < LANES; ++l) {
                const int key = b * LANES + l;
                dst[((long)b * DIMS + d) * LANES + l] =
                    key < nk ? k[(long)key * DIMS + d] : 0.f;
            }
}

typedef struct {
    float scores[LANES * MAX_KEYS_F32] __attribute__((aligned(64)));
    float inv_sum[LANES];
} f32_buffers;

/* Up to 16 queries of one head. */
static void attend_block_f32(const float *q, long q_row, int rows,
                             const float *kt, const float *v, int blocks,
                             int valid, float scale, float *out,
                             long out_row, f32_buffers *bb) {
    const int width = blocks * LANES;
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const float *qr[4];
        for (int i = 0; i < 4; ++i)
            qr[i] = q + (long)(r0 + (r0 + i < rows ? i : 0)) * q_row;
        for (int b = 0; b < blocks; ++b) {
            const float *kb = kt + (long)b * DIMS * LANES;
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            for (int d = 0; d < DIMS; ++d) {
                const __m512 kv = _mm512_loadu_ps(kb + d * LANES);
                s0 = _mm512_fmadd_ps(_mm512_set1_ps(qr[0][d]), kv, s0);
                s1 = _mm512_fmadd_ps(_mm512_set1_ps(qr[1][d]), kv, s1);
                s2 = _mm512_fmadd_ps(_mm512_set1_ps(qr[2][d]), kv, s2);
                s3 = _mm512_fmadd_ps(_mm512_set1_ps(qr[3][d]), kv, s3);
            }
            float *dst = bb->scores + (long)r0 * width + b * LANES;
            _mm512_store_ps(dst, s0);
            _mm512_store_ps(dst + width, s1);
            _mm512_store_ps(dst + 2 * width, s2);
            _mm512_store_ps(dst + 3 * width, s3);
        }
    }
    /* softmax of scale * S in place (scale > 0: the max of the raw
     * scores), masked keys 0 */
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int r = 0; r < rows; ++r) {
        float *s = bb->scores + (long)r * width;
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (int j = 0; j < width; j += LANES)
            vmax = _mm512_mask_max_ps(vmax, live_keys(valid, j), vmax,
                                      _mm512_load_ps(s + j));
        const __m512 shift =
            _mm512_set1_ps(-scale * _mm512_reduce_max_ps(vmax));
        __m512 vsum = _mm512_setzero_ps();
        for (int j = 0; j < width; j += LANES) {
            const __m512 e = _mm512_maskz_mov_ps(
                live_keys(valid, j),
                exp_nonpositive(
                    _mm512_fmadd_ps(_mm512_load_ps(s + j), vscale, shift)));
            vsum = _mm512_add_ps(vsum, e);
            _mm512_store_ps(s + j, e);
        }
        bb->inv_sum[r] = 1.0f / _mm512_reduce_add_ps(vsum);
    }
    /* O = P V: the first `valid` keys (the others have P = 0) */
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const float *p[4];
        for (int i = 0; i < 4; ++i)
            p[i] = bb->scores + (long)(r0 + (r0 + i < rows ? i : 0)) * width;
        __m512 lo[4], hi[4];
        for (int i = 0; i < 4; ++i) lo[i] = hi[i] = _mm512_setzero_ps();
        for (int j = 0; j < valid; ++j) {
            const __m512 vlo = _mm512_loadu_ps(v + (long)j * DIMS);
            const __m512 vhi = _mm512_loadu_ps(v + (long)j * DIMS + LANES);
            for (int i = 0; i < 4; ++i) {
                const __m512 w = _mm512_set1_ps(p[i][j]);
                lo[i] = _mm512_fmadd_ps(w, vlo, lo[i]);
                hi[i] = _mm512_fmadd_ps(w, vhi, hi[i]);
            }
        }
        for (int i = 0; i < 4 && r0 + i < rows; ++i) {
            const __m512 w = _mm512_set1_ps(bb->inv_sum[r0 + i]);
            float *o = out + (long)(r0 + i) * out_row;
            _mm512_storeu_ps(o, _mm512_mul_ps(lo[i], w));
            _mm512_storeu_ps(o + LANES, _mm512_mul_ps(hi[i], w));
        }
    }
}

int attention_f32(const float *q, long q_row, const float *k, const float *v,
                  int heads, int nq, int nk, int valid, int head_dims,
                  float scale, float *out, long out_row) {
    if (head_dims != DIMS || nk < 1 || valid < 1 || valid > nk ||
        nk > MAX_KEYS_F32 || !(scale > 0.f))
        return 1;
    const int blocks = (nk + LANES - 1) / LANES;
    const long kt_size = (long)blocks * DIMS * LANES;
    float *kt = (float *)aligned_alloc(
        64, sizeof(float) * (size_t)heads * (size_t)kt_size);
    if (kt == NULL) return 1;
    for (int h = 0; h < heads; ++h)
        pack_keys_f32(k + (long)h * nk * DIMS, nk, blocks, kt + h * kt_size);
    const int qblocks = (nq + LANES - 1) / LANES;
    int failed = 0;
#pragma omp parallel
    {
        f32_buffers *bb =
            (f32_buffers *)aligned_alloc(64, sizeof(f32_buffers));
#pragma omp for schedule(static)
        for (long task = 0; task < (long)heads * qblocks; ++task) {
            const int h = (int)(task / qblocks), b = (int)(task % qblocks);
            const int n0 = b * LANES;
            const int rows = nq - n0 < LANES ? nq - n0 : LANES;
            if (bb == NULL) continue; /* reported below */
            attend_block_f32(q + (long)n0 * q_row + h * DIMS, q_row, rows,
                             kt + h * kt_size, v + (long)h * nk * DIMS,
                             blocks, valid, scale,
                             out + (long)n0 * out_row + h * DIMS, out_row,
                             bb);
        }
        if (bb == NULL) {
#pragma omp atomic write
            failed = 1;
        }
        free(bb);
    }
    free(kt);
    return failed;
}

#else /* no AVX-512F at compile time: the caller keeps PyTorch's kernel */

int attention_f32(const float *q, long q_row, const float *k, const float *v,
                  int heads, int nq, int nk, int valid, int head_dims,
                  float scale, float *out, long out_row) {
    (void)q; (void)q_row; (void)k; (void)v; (void)heads; (void)nq;
    (void)nk; (void)valid; (void)head_dims; (void)scale; (void)out;
    (void)out_row;
    return 1;
}

#endif
