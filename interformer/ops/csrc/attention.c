/*
 * Softmax attention of the I-MSA blocks in bfloat16: AMX tiles where the
 * CPU has them, AVX512-BF16 dot products (vdpbf16ps) elsewhere (e.g. AMD
 * Zen 4/5).
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
 * The AVX512-BF16 route computes the same block with the same packed
 * operands: a score vector is 16 keys of one query (one vdpbf16ps per pair
 * of head dimensions, the query pair broadcast), an output vector 16
 * dimensions of one query (one vdpbf16ps per pair of keys, the probability
 * pair broadcast), 4 queries per pass so that every key / value vector is
 * loaded once for 4 queries; the softmax is shared.
 *
 * Built only where the compiler targets AVX512-BF16 (-march=native on such
 * a CPU; AMX used if also targeted and permitted); elsewhere
 * attention_bf16 returns 1 and the caller keeps PyTorch's
 * scaled_dot_product_attention.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "interformer_ops.h"
#include "softmax.h"

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__linux__)
#define HAVE_AMX 1
#include "amx.h"
#else
#define HAVE_AMX 0
#endif

#define HEAD_DIMS 32
#define TILE 16       /* queries per block, keys per score tile */
#define CHUNK 32      /* keys per P V tile product */
#define MAX_KEYS 1024 /* per head (the stack buffers below) */

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

/* softmax of scale * S per row of a block: the max on the raw scores
 * (scale > 0), exp(scale * s - scale * max) in one fused multiply-add;
 * probabilities rounded to bf16 into `probs`, 1 / their sum into inv_sum.
 */
static void softmax_rows(const float *scores, int rows, int blocks,
                         int width, int valid, float scale, uint16_t *probs,
                         float *inv_sum) {
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int r = 0; r < rows; ++r) {
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
}

/* out rows = acc rows (32 float32 each) / their sums, as bf16. */
static void store_rows(const float *acc, const float *inv_sum, int rows,
                       uint16_t *out, long out_row) {
    for (int r = 0; r < rows; ++r) {
        const __m512 w = _mm512_set1_ps(inv_sum[r]);
        for (int h = 0; h < 2; ++h) {
            const __m256bh o = _mm512_cvtneps_pbh(_mm512_mul_ps(
                _mm512_load_ps(acc + r * HEAD_DIMS + h * TILE), w));
            memcpy(out + r * out_row + h * TILE, &o, 2 * TILE);
        }
    }
}

/* The block's buffers (per call, on the stack). */
typedef struct {
    float scores[TILE * MAX_KEYS] __attribute__((aligned(64)));
    uint16_t probs[TILE * MAX_KEYS] __attribute__((aligned(64)));
    float acc[TILE * HEAD_DIMS] __attribute__((aligned(64)));
    uint16_t qbuf[TILE * HEAD_DIMS] __attribute__((aligned(64)));
    float inv_sum[TILE];
} block_buffers;

#if HAVE_AMX
/* One block of up to 16 queries of one head on AMX tiles. */
static void attend_block_amx(const uint16_t *q, long q_row, int rows,
                             const uint32_t *kp, const uint32_t *vp,
                             int blocks, int chunks, int valid, float scale,
                             uint16_t *out, long out_row, block_buffers *bb) {
    const int width = chunks * CHUNK; /* score / prob row length */
    const uint16_t *qsrc = q;
    long qstride = q_row * 2;
    if (rows < TILE) { /* the last, partial block: zero-padded copy */
        memset(bb->qbuf, 0, sizeof(bb->qbuf));
        for (int r = 0; r < rows; ++r)
            memcpy(bb->qbuf + r * HEAD_DIMS, q + r * q_row, 2 * HEAD_DIMS);
        qsrc = bb->qbuf;
        qstride = 2 * HEAD_DIMS;
    }
    _tile_loadd(1, qsrc, qstride);
    for (int b = 0; b < blocks; ++b) {
        _tile_zero(0);
        _tile_loadd(2, kp + (long)b * (HEAD_DIMS / 2) * TILE, 4 * TILE);
        _tile_dpbf16ps(0, 1, 2);
        _tile_stored(0, bb->scores + b * TILE, 4 * width);
    }
    softmax_rows(bb->scores, TILE, blocks, width, valid, scale, bb->probs,
                 bb->inv_sum);
    _tile_zero(6);
    _tile_zero(7);
    for (int c = 0; c < chunks; ++c) {
        _tile_loadd(3, bb->probs + c * CHUNK, 2 * width);
        const uint32_t *vc = vp + (long)c * 2 * (CHUNK / 2) * TILE;
        _tile_loadd(4, vc, 4 * TILE);
        _tile_loadd(5, vc + (CHUNK / 2) * TILE, 4 * TILE);
        _tile_dpbf16ps(6, 3, 4);
        _tile_dpbf16ps(7, 3, 5);
    }
    _tile_stored(6, bb->acc, 4 * HEAD_DIMS);
    _tile_stored(7, bb->acc + TILE, 4 * HEAD_DIMS);
    store_rows(bb->acc, bb->inv_sum, rows, out, out_row);
}
#endif

static inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

/* The same block with AVX512-BF16 dot products (no tiles). */
static void attend_block_avx512(const uint16_t *q, long q_row, int rows,
                                const uint32_t *kp, const uint32_t *vp,
                                int blocks, int chunks, int valid,
                                float scale, uint16_t *out, long out_row,
                                block_buffers *bb) {
    const int width = chunks * CHUNK;
    /* scores: 4 queries x 16 keys per pass, each key vector loaded once */
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const int n = rows - r0 < 4 ? rows - r0 : 4;
        uint32_t qpair[4][HEAD_DIMS / 2];
        for (int i = 0; i < 4; ++i)
            memcpy(qpair[i], q + (long)(r0 + (i < n ? i : 0)) * q_row,
                   2 * HEAD_DIMS);
        for (int b = 0; b < blocks; ++b) {
            const uint32_t *kb = kp + (long)b * (HEAD_DIMS / 2) * TILE;
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            for (int d = 0; d < HEAD_DIMS / 2; ++d) {
                const __m512bh kv =
                    as_bh(_mm512_loadu_si512(kb + (long)d * TILE));
                s0 = _mm512_dpbf16_ps(
                    s0, as_bh(_mm512_set1_epi32((int)qpair[0][d])), kv);
                s1 = _mm512_dpbf16_ps(
                    s1, as_bh(_mm512_set1_epi32((int)qpair[1][d])), kv);
                s2 = _mm512_dpbf16_ps(
                    s2, as_bh(_mm512_set1_epi32((int)qpair[2][d])), kv);
                s3 = _mm512_dpbf16_ps(
                    s3, as_bh(_mm512_set1_epi32((int)qpair[3][d])), kv);
            }
            float *dst = bb->scores + (long)r0 * width + b * TILE;
            _mm512_store_ps(dst, s0);
            if (n > 1) _mm512_store_ps(dst + width, s1);
            if (n > 2) _mm512_store_ps(dst + 2 * width, s2);
            if (n > 3) _mm512_store_ps(dst + 3 * width, s3);
        }
    }
    softmax_rows(bb->scores, rows, blocks, width, valid, scale, bb->probs,
                 bb->inv_sum);
    /* outputs: 4 queries x 2 x 16 dimensions per pass, one pair of keys
     * per step, each value vector loaded once for the 4 queries */
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const uint32_t *p[4];
        for (int i = 0; i < 4; ++i)
            p[i] = (const uint32_t *)(bb->probs +
                                      (long)(r0 + (r0 + i < rows ? i : 0)) *
                                          width);
        __m512 lo0 = _mm512_setzero_ps(), hi0 = lo0, lo1 = lo0, hi1 = lo0,
               lo2 = lo0, hi2 = lo0, lo3 = lo0, hi3 = lo0;
        for (int c = 0; c < chunks; ++c) {
            const uint32_t *vc = vp + (long)c * 2 * (CHUNK / 2) * TILE;
            for (int m = 0; m < CHUNK / 2; ++m) {
                const int pair = c * (CHUNK / 2) + m;
                const __m512bh vlo =
                    as_bh(_mm512_loadu_si512(vc + (long)m * TILE));
                const __m512bh vhi = as_bh(
                    _mm512_loadu_si512(vc + (long)(CHUNK / 2 + m) * TILE));
                __m512bh pp = as_bh(_mm512_set1_epi32((int)p[0][pair]));
                lo0 = _mm512_dpbf16_ps(lo0, pp, vlo);
                hi0 = _mm512_dpbf16_ps(hi0, pp, vhi);
                pp = as_bh(_mm512_set1_epi32((int)p[1][pair]));
                lo1 = _mm512_dpbf16_ps(lo1, pp, vlo);
                hi1 = _mm512_dpbf16_ps(hi1, pp, vhi);
                pp = as_bh(_mm512_set1_epi32((int)p[2][pair]));
                lo2 = _mm512_dpbf16_ps(lo2, pp, vlo);
                hi2 = _mm512_dpbf16_ps(hi2, pp, vhi);
                pp = as_bh(_mm512_set1_epi32((int)p[3][pair]));
                lo3 = _mm512_dpbf16_ps(lo3, pp, vlo);
                hi3 = _mm512_dpbf16_ps(hi3, pp, vhi);
            }
        }
        float *acc = bb->acc + (long)r0 * HEAD_DIMS;
        _mm512_store_ps(acc, lo0);
        _mm512_store_ps(acc + TILE, hi0);
        _mm512_store_ps(acc + HEAD_DIMS, lo1);
        _mm512_store_ps(acc + HEAD_DIMS + TILE, hi1);
        _mm512_store_ps(acc + 2 * HEAD_DIMS, lo2);
        _mm512_store_ps(acc + 2 * HEAD_DIMS + TILE, hi2);
        _mm512_store_ps(acc + 3 * HEAD_DIMS, lo3);
        _mm512_store_ps(acc + 3 * HEAD_DIMS + TILE, hi3);
    }
    store_rows(bb->acc, bb->inv_sum, rows, out, out_row);
}

int attention_bf16(const uint16_t *q, long q_row, const uint16_t *k,
                   const uint16_t *v, int heads, int nq, int nk, int valid,
                   int head_dims, float scale, uint16_t *out, long out_row) {
    if (head_dims != HEAD_DIMS || nk < 1 || valid < 1 || valid > nk ||
        nk > MAX_KEYS)
        return 1;
#if HAVE_AMX
    const int use_amx = amx_permitted();
#else
    const int use_amx = 0;
    (void)use_amx;
#endif
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
    int failed = 0;
#pragma omp parallel
    {
        block_buffers *bb = (block_buffers *)aligned_alloc(
            64, sizeof(block_buffers));
#if HAVE_AMX
        if (use_amx) amx_configure_tiles();
#endif
#pragma omp for schedule(static)
        for (long task = 0; task < (long)heads * qblocks; ++task) {
            const int h = (int)(task / qblocks), b = (int)(task % qblocks);
            const int n0 = b * TILE;
            const int rows = nq - n0 < TILE ? nq - n0 : TILE;
            const uint16_t *qb = q + (long)n0 * q_row + h * HEAD_DIMS;
            uint16_t *ob = out + (long)n0 * out_row + h * HEAD_DIMS;
            if (bb == NULL) continue; /* reported below */
#if HAVE_AMX
            if (use_amx) {
                attend_block_amx(qb, q_row, rows, kp + h * kp_size,
                                 vp + h * vp_size, blocks, chunks, valid,
                                 scale, ob, out_row, bb);
                continue;
            }
#endif
            attend_block_avx512(qb, q_row, rows, kp + h * kp_size,
                                vp + h * vp_size, blocks, chunks, valid,
                                scale, ob, out_row, bb);
        }
#if HAVE_AMX
        if (use_amx) _tile_release();
#endif
        if (bb == NULL) {
#pragma omp atomic write
            failed = 1;
        }
        free(bb);
    }
    free(packed);
    return failed;
}

#else /* no AVX512-BF16 at compile time: the caller keeps PyTorch's kernel */

int attention_bf16(const uint16_t *q, long q_row, const uint16_t *k,
                   const uint16_t *v, int heads, int nq, int nk, int valid,
                   int head_dims, float scale, uint16_t *out, long out_row) {
    (void)q; (void)q_row; (void)k; (void)v; (void)heads; (void)nq;
    (void)nk; (void)valid; (void)head_dims; (void)scale; (void)out;
    (void)out_row;
    return 1;
}

#endif
