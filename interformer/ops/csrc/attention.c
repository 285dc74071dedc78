/*
 * Softmax attention of the I-MSA blocks in bfloat16 on AMX tiles.
 *
 * Every I-MSA head has 32 dimensions and attends to a few hundred pooled
 * keys. PyTorch's CPU flash kernel spends most of its time around its
 * GEMMs (the softmax's exp, blocking, conversions); here each block of 16
 * queries takes:
 *
 *   scores  S = Q K^T        one AMX tile product per 16 keys (K = 32),
 *   softmax P = exp(S - max)  float32, masked keys 0, rounded to bf16,
 *   output  O = P V / sum(P)  AMX tile products over 32-key chunks,
 *
 * with float32 accumulation, as in PyTorch's kernel (P in bf16 for the
 * second product, the sum in float32). exp uses a degree-5 polynomial on
 * the reduced argument and a power-of-two scale (relative error ~2e-7,
 * far below P's bf16 rounding).
 *
 * Built only where the compiler targets AMX-BF16 (-march=native on such a
 * CPU); elsewhere attention_bf16 returns 1 and the caller keeps PyTorch's
 * scaled_dot_product_attention.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "interformer_ops.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && \
    defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__linux__)
#include "amx.h"

#define HEAD_DIMS 32
#define TILE 16       /* queries per block, keys per score tile */
#define CHUNK 32      /* keys per P V tile product */
#define MAX_KEYS 1024 /* per head (the stack buffers below) */

/* exp(x) for x <= 0 (float32; large negative inputs give 0). */
static inline __m512 exp_nonpositive(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(
        _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 120);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* K of one head as score tiles: block b, row r (dims 2r, 2r+1), lane l
 * (key 16 b + l) -> one 32-bit pair; keys past nk are zero. */
static void pack_keys(const uint16_t *k, int nk, int blocks, uint32_t *dst) {
    for (int b = 0; b < blocks; ++b)
        for (int r = 0; r < HEAD_DIMS / 2; ++r)
            for (int l = 0; l < TILE; ++l) {
                const int key = b * TILE + l;
                uint32_t pair = 0;
                if (key < nk)
                    memcpy(&pair, k + (long)key * HEAD_DIMS + 2 * r, 4);
                dst[((long)b * (HEAD_DIMS / 2) + r) * TILE + l] = pair;
            }
}

/* V of one head as product tiles: chunk c, half h (dims 16 h..), row r
 * (keys 32 c + 2r, +1), lane i -> (v[key][i], v[key + 1][i]). */
static void pack_values(const uint16_t *v, int nk, int chunks,
                        uint32_t *dst) {
    for (int c = 0; c < chunks; ++c)
        for (int h = 0; h < 2; ++h)
            for (int r = 0; r < CHUNK / 2; ++r)
                for (int i = 0; i < TILE; ++i) {
                    const int key = c * CHUNK + 2 * r, dim = h * TILE + i;
                    const uint32_t lo =
                        key < nk ? v[(long)key * HEAD_DIMS + dim] : 0;
                    const uint32_t hi =
                        key + 1 < nk ? v[(long)(key + 1) * HEAD_DIMS + dim]
                                     : 0;
                    dst[(((long)c * 2 + h) * (CHUNK / 2) + r) * TILE + i] =
                        lo | (hi << 16);
                }
}

/* Lanes of keys j..j+15 that are real (the first `valid` keys). */
static inline __mmask16 live_keys(int valid, int j) {
    const int n = valid - j;
    return n >= TILE ? (__mmask16)0xffff
                     : (__mmask16)(n > 0 ? (1u << n) - 1 : 0);
}

/* One block of up to 16 queries of one head. */
static void attend_block(const uint16_t *q, long q_row, int rows,
                         const uint32_t *kp, const uint32_t *vp, int blocks,
                         int chunks, int valid, float scale, uint16_t *out,
                         long out_row) {
    float scores[TILE * MAX_KEYS] __attribute__((aligned(64)));
    uint16_t probs[TILE * MAX_KEYS] __attribute__((aligned(64)));
    float acc[TILE * HEAD_DIMS] __attribute__((aligned(64)));
    uint16_t qbuf[TILE * HEAD_DIMS] __attribute__((aligned(64)));
    const int width = chunks * CHUNK; /* score / prob row length */
    const uint16_t *qsrc = q;
    long qstride = q_row * 2;
    if (rows < TILE) { /* the last, partial block: zero-padded copy */
        memset(qbuf, 0, sizeof(qbuf));
        for (int r = 0; r < rows; ++r)
            memcpy(qbuf + r * HEAD_DIMS, q + r * q_row, 2 * HEAD_DIMS);
        qsrc = qbuf;
        qstride = 2 * HEAD_DIMS;
    }
    _tile_loadd(1, qsrc, qstride);
    for (int b = 0; b < blocks; ++b) {
        _tile_zero(0);
        _tile_loadd(2, kp + (long)b * (HEAD_DIMS / 2) * TILE, 4 * TILE);
        _tile_dpbf16ps(0, 1, 2);
        _tile_stored(0, scores + b * TILE, 4 * width);
    }
    /* softmax of scale * S per row: the max on the raw scores (scale > 0),
     * exp(scale * s - scale * max) in one fused multiply-add */
    float inv_sum[TILE];
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int r = 0; r < TILE; ++r) {
        const float *s = scores + (long)r * width;
        uint16_t *p = probs + (long)r * width;
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (int j = 0; j < blocks * TILE; j += TILE)
            vmax = _mm512_mask_max_ps(vmax, live_keys(valid, j), vmax,
                                      _mm512_load_ps(s + j));
        const __m512 shift =
            _mm512_set1_ps(-scale * _mm512_reduce_max_ps(vmax));
        __m512 vsum = _mm512_setzero_ps();
        for (int j = 0; j < width; j += TILE) {
            const __mmask16 live = live_keys(valid, j);
            __m512 e = _mm512_setzero_ps();
            if (live)
                e = _mm512_maskz_mov_ps(
                    live, exp_nonpositive(_mm512_fmadd_ps(
                              _mm512_load_ps(s + j), vscale, shift)));
            vsum = _mm512_add_ps(vsum, e);
            const __m256bh h = _mm512_cvtneps_pbh(e);
            memcpy(p + j, &h, 2 * TILE);
        }
        inv_sum[r] = 1.0f / _mm512_reduce_add_ps(vsum);
    }
    _tile_zero(6);
    _tile_zero(7);
    for (int c = 0; c < chunks; ++c) {
        _tile_loadd(3, probs + c * CHUNK, 2 * width);
        const uint32_t *vc = vp + (long)c * 2 * (CHUNK / 2) * TILE;
        _tile_loadd(4, vc, 4 * TILE);
        _tile_loadd(5, vc + (CHUNK / 2) * TILE, 4 * TILE);
        _tile_dpbf16ps(6, 3, 4);
        _tile_dpbf16ps(7, 3, 5);
    }
    _tile_stored(6, acc, 4 * HEAD_DIMS);
    _tile_stored(7, acc + TILE, 4 * HEAD_DIMS);
    for (int r = 0; r < rows; ++r) {
        const __m512 w = _mm512_set1_ps(inv_sum[r]);
        for (int h = 0; h < 2; ++h) {
            const __m256bh o = _mm512_cvtneps_pbh(_mm512_mul_ps(
                _mm512_load_ps(acc + r * HEAD_DIMS + h * TILE), w));
            memcpy(out + r * out_row + h * TILE, &o, 2 * TILE);
        }
    }
}

int attention_bf16(const uint16_t *q, long q_row, const uint16_t *k,
                   const uint16_t *v, int heads, int nq, int nk, int valid,
                   int head_dims, float scale, uint16_t *out, long out_row) {
    if (head_dims != HEAD_DIMS || nk < 1 || valid < 1 || valid > nk ||
        nk > MAX_KEYS || !amx_permitted())
        return 1;
    if (!(scale > 0.f)) return 1; /* the softmax shift assumes scale > 0 */
    const int blocks = (nk + TILE - 1) / TILE;
    const int chunks = (nk + CHUNK - 1) / CHUNK;
    const long kp_size = (long)blocks * (HEAD_DIMS / 2) * TILE;
    const long vp_size = (long)chunks * 2 * (CHUNK / 2) * TILE;
    uint32_t *packed = (uint32_t *)aligned_alloc(
        64, sizeof(uint32_t) * (size_t)heads * (kp_size + vp_size));
    if (packed == NULL) return 1;
    uint32_t *kp = packed, *vp = packed + (long)heads * kp_size;
    for (int h = 0; h < heads; ++h) {
        pack_keys(k + (long)h * nk * HEAD_DIMS, nk, blocks, kp + h * kp_size);
        pack_values(v + (long)h * nk * HEAD_DIMS, nk, chunks,
                    vp + h * vp_size);
    }
    const int qblocks = (nq + TILE - 1) / TILE;
#pragma omp parallel
    {
        amx_configure_tiles();
#pragma omp for schedule(static)
        for (long task = 0; task < (long)heads * qblocks; ++task) {
            const int h = (int)(task / qblocks), b = (int)(task % qblocks);
            const int n0 = b * TILE;
            const int rows = nq - n0 < TILE ? nq - n0 : TILE;
            attend_block(q + (long)n0 * q_row + h * HEAD_DIMS, q_row, rows,
                         kp + h * kp_size, vp + h * vp_size, blocks, chunks,
                         valid, scale,
                         out + (long)n0 * out_row + h * HEAD_DIMS, out_row);
        }
        _tile_release();
    }
    free(packed);
    return 0;
}

#else /* no AMX-BF16 at compile time: the caller keeps PyTorch's kernel */

int attention_bf16(const uint16_t *q, long q_row, const uint16_t *k,
                   const uint16_t *v, int heads, int nq, int nk, int valid,
                   int head_dims, float scale, uint16_t *out, long out_row) {
    (void)q; (void)q_row; (void)k; (void)v; (void)heads; (void)nq;
    (void)nk; (void)valid; (void)head_dims; (void)scale; (void)out;
    (void)out_row;
    return 1;
}

#endif
