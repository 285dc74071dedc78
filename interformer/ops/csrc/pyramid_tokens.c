/*
 * Pyramid tokens of an I-MSA key/value map in one pass over memory.
 *
 * The per-click key/value side of a PoolingAttention block is, in PyTorch,
 * about a dozen small operator calls (GroupNorm, adaptive max pools, a
 * depthwise 3x3 conv + residual per level, a gather, LayerNorm) on maps of
 * a few hundred kilobytes. Each call costs more in fixed overhead than in
 * arithmetic; this routine does all of them in one call, single-threaded,
 * with the channel loops vectorised by the compiler.
 *
 * Maps are channels-last: element (y, x, c) of an (H, W, C) map sits at
 * (y * W + x) * C + c. Tokens are written level by level, row-major, as
 * PoolingAttention.key_value orders them.
 *
 * Built at first use by interformer/ops/library.py (plain C, no
 * PyTorch headers) and called through ctypes; the Python path is the
 * reference and the fallback.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "interformer_ops.h"

/* hi = max(hi, sign * x) over `npix` consecutive pixels of C channels
 * starting at element `offset` (sign: NULL for all +1, else +-1 per
 * channel). Inlined with a constant C for the usual widths, so the C-wide
 * running max stays in registers across the pixels. */
static inline void max_segment_c(const void *src, int is_bf16, long offset,
                                 int npix, const int C,
                                 const float *restrict sign,
                                 float *restrict hi) {
    for (int k = 0; k < npix; ++k) {
        const long base = offset + (long)k * C;
        if (is_bf16) {
            const uint16_t *p = (const uint16_t *)src + base;
            if (sign == NULL) {
                for (int c = 0; c < C; ++c) {
                    const float v = bf16_to_f32(p[c]);
                    hi[c] = v > hi[c] ? v : hi[c];
                }
            } else {
                for (int c = 0; c < C; ++c) {
                    const float v = sign[c] * bf16_to_f32(p[c]);
                    hi[c] = v > hi[c] ? v : hi[c];
                }
            }
        } else {
            const float *p = (const float *)src + base;
            if (sign == NULL) {
                for (int c = 0; c < C; ++c)
                    hi[c] = p[c] > hi[c] ? p[c] : hi[c];
            } else {
                for (int c = 0; c < C; ++c) {
                    const float v = sign[c] * p[c];
                    hi[c] = v > hi[c] ? v : hi[c];
                }
            }
        }
    }
}

static void max_segment(const void *src, int is_bf16, long offset, int npix,
                        int C, const float *restrict sign,
                        float *restrict hi) {
    switch (C) {
    case 32: max_segment_c(src, is_bf16, offset, npix, 32, sign, hi); break;
    case 64: max_segment_c(src, is_bf16, offset, npix, 64, sign, hi); break;
    case 128: max_segment_c(src, is_bf16, offset, npix, 128, sign, hi); break;
    case 256: max_segment_c(src, is_bf16, offset, npix, 256, sign, hi); break;
    default: max_segment_c(src, is_bf16, offset, npix, C, sign, hi);
    }
}

/* dst = src + bias + depthwise 3x3 (zero padding 1) of src, on a (ph, pw)
 * grid of C channels; w is (9, C) tap-major. Inlined with a constant C for
 * the usual widths (the accumulator stays in registers). */
static inline void depthwise_c(const float *restrict src, float *restrict dst,
                               int ph, int pw, const int C,
                               const float *restrict w,
                               const float *restrict bias) {
#pragma omp parallel for schedule(static) if ((long)ph * pw * C > 16384)
    for (int py = 0; py < ph; ++py) {
        for (int px = 0; px < pw; ++px) {
            float acc[C];
            const float *centre = src + ((long)py * pw + px) * C;
            for (int c = 0; c < C; ++c)
                acc[c] = centre[c] + (bias ? bias[c] : 0.f);
            for (int ky = 0; ky < 3; ++ky) {
                const int y = py + ky - 1;
                if (y < 0 || y >= ph) continue;
                for (int kx = 0; kx < 3; ++kx) {
                    const int xx = px + kx - 1;
                    if (xx < 0 || xx >= pw) continue;
                    const float *s = src + ((long)y * pw + xx) * C;
                    const float *wt = w + (long)(ky * 3 + kx) * C;
                    for (int c = 0; c < C; ++c) acc[c] += wt[c] * s[c];
                }
            }
            float *o = dst + ((long)py * pw + px) * C;
            for (int c = 0; c < C; ++c) o[c] = acc[c];
        }
    }
}

static void depthwise(const float *src, float *dst, int ph, int pw, int C,
                      const float *w, const float *bias) {
    switch (C) {
    case 32: depthwise_c(src, dst, ph, pw, 32, w, bias); break;
    case 64: depthwise_c(src, dst, ph, pw, 64, w, bias); break;
    case 128: depthwise_c(src, dst, ph, pw, 128, w, bias); break;
    case 256: depthwise_c(src, dst, ph, pw, 256, w, bias); break;
    default: depthwise_c(src, dst, ph, pw, C, w, bias);
    }
}

/*
 * Arguments:
 *   x:          (H, W, C) channels-last map, float32 or bfloat16 (is_bf16).
 *   apply_gn:   1: apply GroupNorm(1, C) to x first (affine gn_w, gn_b,
 *               each (C,) or NULL; epsilon gn_eps); 0: x is normalised.
 *   levels:     number of pyramid levels; sizes[2*l], sizes[2*l+1] = (h, w).
 *   dw_w:       (levels, 9, C) depthwise 3x3 weights, tap-major (tap
 *               ky * 3 + kx) so the channel loop reads them contiguously;
 *               dw_b (levels, C) bias or NULL.
 *   ln_w, ln_b: LayerNorm (C,) affine; ln_eps its epsilon.
 *   scratch:    2 * N * C floats, N = sum of h * w.
 *   out:        (rows, C) tokens in x's dtype; rows >= N; rows past N are
 *               copies of token 0 (padding the caller masks out).
 *   C <= 1024 (the per-channel workspaces live on the stack).
 * Returns 0, or 1 if C is out of range.
 */
int pyramid_tokens(const void *x, int is_bf16, int H, int W, int C,
                    int apply_gn, const float *gn_w, const float *gn_b,
                    float gn_eps, int levels, const int *sizes,
                    const float *dw_w, const float *dw_b, const float *ln_w,
                    const float *ln_b, float ln_eps, float *scratch,
                    void *out, int rows) {
    if (C > 1024 || C < 1) return 1;
    const long pixels = (long)H * W;
    float scale[1024], shift[1024]; /* per-channel affine of the GroupNorm */
    float *pooled = scratch;        /* (N, C) normalised, pooled levels */
    int total = 0;
    for (int l = 0; l < levels; ++l) total += sizes[2 * l] * sizes[2 * l + 1];
    float *mixed = scratch + (long)total * C; /* (N, C) after conv */

    if (apply_gn) {
        group_norm_affine(x, is_bf16, pixels, C, gn_w, gn_b, gn_eps, scale,
                          shift);
    } else {
        for (int c = 0; c < C; ++c) {
            scale[c] = 1.f;
            shift[c] = 0.f;
        }
    }

    /* Adaptive max pools. The affine is monotonic per channel, so the max
     * of the normalised values is scale * max(x) + shift where scale >= 0
     * and scale * min(x) + shift = |scale| * max(-x) + shift elsewhere:
     * one max per element of sign * x (no sign flips if all scale >= 0). */
    float sign[1024];
    int flips = 0;
    for (int c = 0; c < C; ++c) {
        sign[c] = scale[c] < 0.f ? -1.f : 1.f;
        flips |= scale[c] < 0.f;
    }
    const float *signs = flips ? sign : NULL;
    /* every pooled cell of every level is independent: one parallel loop */
#pragma omp parallel for schedule(static) if (pixels * C > 65536)
    for (int n = 0; n < total; ++n) {
        int l = 0, first = 0;
        while (n >= first + sizes[2 * l] * sizes[2 * l + 1]) {
            first += sizes[2 * l] * sizes[2 * l + 1];
            ++l;
        }
        const int ph = sizes[2 * l], pw = sizes[2 * l + 1];
        const int py = (n - first) / pw, px = (n - first) % pw;
        const int y0 = (int)(((long)py * H) / ph);
        const int y1 = (int)(((long)(py + 1) * H + ph - 1) / ph);
        const int x0 = (int)(((long)px * W) / pw);
        const int x1 = (int)(((long)(px + 1) * W + pw - 1) / pw);
        float hi[1024];
        for (int c = 0; c < C; ++c) hi[c] = -INFINITY;
        for (int y = y0; y < y1; ++y)
            max_segment(x, is_bf16, ((long)y * W + x0) * C, x1 - x0, C,
                        signs, hi);
        float *dst = pooled + (long)n * C;
        for (int c = 0; c < C; ++c)
            dst[c] = fabsf(scale[c]) * hi[c] + shift[c];
    }

    /* Depthwise 3x3 (zero padding 1) + bias + residual, per level. */
    int start_row = 0;
    for (int l = 0; l < levels; ++l) {
        const int ph = sizes[2 * l], pw = sizes[2 * l + 1];
        depthwise(pooled + (long)start_row * C, mixed + (long)start_row * C,
                  ph, pw, C, dw_w + (long)l * 9 * C,
                  dw_b ? dw_b + (long)l * C : NULL);
        start_row += ph * pw;
    }

    /* LayerNorm over channels, written in the map's dtype. The sums run
     * in LANES independent float partials (a vectorisable reduction). */
#pragma omp parallel for schedule(static) if ((long)rows * C > 16384)
    for (int n = 0; n < rows; ++n) {
        const float *t = mixed + (long)(n < total ? n : 0) * C;
        float part[LANES];
        for (int j = 0; j < LANES; ++j) part[j] = 0.f;
        int c0 = 0;
        for (; c0 + LANES <= C; c0 += LANES)
            for (int j = 0; j < LANES; ++j) part[j] += t[c0 + j];
        float sum = 0.f;
        for (int j = 0; j < LANES; ++j) sum += part[j];
        for (int c = c0; c < C; ++c) sum += t[c];
        const float m = sum / C;
        for (int j = 0; j < LANES; ++j) part[j] = 0.f;
        for (c0 = 0; c0 + LANES <= C; c0 += LANES)
            for (int j = 0; j < LANES; ++j) {
                const float d = t[c0 + j] - m;
                part[j] += d * d;
            }
        float sq = 0.f;
        for (int j = 0; j < LANES; ++j) sq += part[j];
        for (int c = c0; c < C; ++c) sq += (t[c] - m) * (t[c] - m);
        const float rstd = 1.f / sqrtf(sq / C + ln_eps);
        if (is_bf16) {
            uint16_t *o = (uint16_t *)out + (long)n * C;
            for (int c = 0; c < C; ++c)
                o[c] = f32_to_bf16((t[c] - m) * rstd * ln_w[c] + ln_b[c]);
        } else {
            float *o = (float *)out + (long)n * C;
            for (int c = 0; c < C; ++c)
                o[c] = (t[c] - m) * rstd * ln_w[c] + ln_b[c];
        }
    }
    return 0;
}
