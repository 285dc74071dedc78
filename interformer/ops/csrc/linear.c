/*
 * Small bfloat16 linear layers on AMX tiles: y = act(x W^T + b) [+ r].
 *
 * The I-MSA blocks' projections and 1x1 convolutions multiply a few
 * hundred to a few thousand tokens by 32-1024 wide weights: a few to a few
 * tens of microseconds of AMX work, but well over a hundred microseconds
 * per oneDNN call in the decoder (primitive lookup, threading, reorders).
 * Here one call runs 16-token x 64-output blocks on the tiles (float32
 * accumulation) and applies bias, activation and residual while the block
 * is in cache, with one rounding to bf16.
 *
 * The weight is packed once by the caller (interformer/ops/linear.py,
 * pack_linear_weight): packed[kc][nb][r][l] is the bf16 pair
 * (W[16 nb + l][32 kc + 2r], W[16 nb + l][32 kc + 2r + 1]).
 *
 * Built only where the compiler targets AMX-BF16; elsewhere linear_bf16
 * returns 1 and the caller keeps oneDNN.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "interformer_ops.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && \
    defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__linux__)
#include "amx.h"

#define ROWS 16    /* tokens per block */
#define KCHUNK 32  /* input features per tile product */
#define NTILE 16   /* outputs per accumulator tile */
#define NGROUP 4   /* accumulator tiles per block (64 outputs) */

/* Tiles 0..3: accumulators; 4: x block; 5: weight block. */
static void linear_block(const uint16_t *x, long x_row, int rows, int K,
                         const uint32_t *wp, int N, int n0, int tiles,
                         const float *bias, int act, const uint16_t *res,
                         long res_row, uint16_t *out, long out_row) {
    uint16_t xbuf[ROWS * 1024] __attribute__((aligned(64)));
    float acc[ROWS * NGROUP * NTILE] __attribute__((aligned(64)));
    const uint16_t *src = x;
    long stride = x_row * 2;
    if (rows < ROWS) { /* the last, partial block: zero-padded copy */
        memset(xbuf, 0, sizeof(uint16_t) * ROWS * (size_t)K);
        for (int r = 0; r < rows; ++r)
            memcpy(xbuf + (long)r * K, x + r * x_row, 2 * (size_t)K);
        src = xbuf;
        stride = 2L * K;
    }
    const int nblocks = N / NTILE, nb0 = n0 / NTILE;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int kc = 0; kc < K / KCHUNK; ++kc) {
        _tile_loadd(4, src + kc * KCHUNK, stride);
        const uint32_t *w =
            wp + ((long)kc * nblocks + nb0) * (KCHUNK / 2) * NTILE;
        _tile_loadd(5, w, 4 * NTILE);
        _tile_dpbf16ps(0, 4, 5);
        if (tiles > 1) {
            _tile_loadd(5, w + (KCHUNK / 2) * NTILE, 4 * NTILE);
            _tile_dpbf16ps(1, 4, 5);
        }
        if (tiles > 2) {
            _tile_loadd(5, w + 2 * (KCHUNK / 2) * NTILE, 4 * NTILE);
            _tile_dpbf16ps(2, 4, 5);
        }
        if (tiles > 3) {
            _tile_loadd(5, w + 3 * (KCHUNK / 2) * NTILE, 4 * NTILE);
            _tile_dpbf16ps(3, 4, 5);
        }
    }
    const long acc_row = 4L * NGROUP * NTILE;
    _tile_stored(0, acc, acc_row);
    if (tiles > 1) _tile_stored(1, acc + NTILE, acc_row);
    if (tiles > 2) _tile_stored(2, acc + 2 * NTILE, acc_row);
    if (tiles > 3) _tile_stored(3, acc + 3 * NTILE, acc_row);
    const int width = tiles * NTILE;
    for (int r = 0; r < rows; ++r) {
        const float *a = acc + (long)r * NGROUP * NTILE;
        uint16_t *o = out + r * out_row + n0;
        const uint16_t *rr = res ? res + r * res_row + n0 : NULL;
        for (int c = 0; c < width; c += NTILE) {
            __m512 v = _mm512_load_ps(a + c);
            if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + n0 + c));
            if (act) { /* Hardswish: v * clamp(v + 3, 0, 6) / 6 */
                const __m512 t = _mm512_min_ps(
                    _mm512_max_ps(_mm512_add_ps(v, _mm512_set1_ps(3.f)),
                                  _mm512_setzero_ps()),
                    _mm512_set1_ps(6.f));
                v = _mm512_mul_ps(_mm512_mul_ps(v, t),
                                  _mm512_set1_ps(1.f / 6.f));
            }
            if (rr) {
                const __m256i h =
                    _mm256_loadu_si256((const __m256i *)(rr + c));
                v = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_slli_epi32(
                                         _mm512_cvtepu16_epi32(h), 16)));
            }
            const __m256bh b = _mm512_cvtneps_pbh(v);
            memcpy(o + c, &b, 2 * NTILE);
        }
    }
}

int linear_bf16(const uint16_t *x, long x_row, int M, int K,
                const uint32_t *wp, int N, const float *bias, int act,
                const uint16_t *res, long res_row, uint16_t *out,
                long out_row) {
    if (K % KCHUNK != 0 || N % NTILE != 0 || K > 1024 || M < 1 ||
        !amx_permitted())
        return 1;
    const int mblocks = (M + ROWS - 1) / ROWS;
    const int ngroups = (N + NGROUP * NTILE - 1) / (NGROUP * NTILE);
#pragma omp parallel if ((long)M * N * K > 262144)
    {
        amx_configure_tiles();
#pragma omp for schedule(static)
        for (long task = 0; task < (long)mblocks * ngroups; ++task) {
            const int mb = (int)(task / ngroups), g = (int)(task % ngroups);
            const int m0 = mb * ROWS, n0 = g * NGROUP * NTILE;
            const int rows = M - m0 < ROWS ? M - m0 : ROWS;
            const int left = (N - n0) / NTILE;
            linear_block(x + (long)m0 * x_row, x_row, rows, K, wp, N, n0,
                         left < NGROUP ? left : NGROUP, bias, act,
                         res ? res + (long)m0 * res_row : NULL, res_row,
                         out + (long)m0 * out_row, out_row);
        }
        _tile_release();
    }
    return 0;
}

#else /* no AMX-BF16 at compile time: the caller keeps oneDNN */

int linear_bf16(const uint16_t *x, long x_row, int M, int K,
                const uint32_t *wp, int N, const float *bias, int act,
                const uint16_t *res, long res_row, uint16_t *out,
                long out_row) {
    (void)x; (void)x_row; (void)M; (void)K; (void)wp; (void)N; (void)bias;
    (void)act; (void)res; (void)res_row; (void)out; (void)out_row;
    return 1;
}

#endif
