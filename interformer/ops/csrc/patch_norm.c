/*
 * The LayerNorm of PatchMerging's unfolded patches, applied after its
 * strided convolution (see interformer/ops/patch_norm.py for the
 * algebra):
 *
 *     out = conv / s + (shift - m / s * rowsum)
 *
 * with m and s the mean and standard deviation of each k x k x C patch
 * (zeros outside the map count, as in the unfold). In PyTorch this is about
 * fifteen small operator calls (channel sums, a box filter, the square root,
 * two fused multiply-adds, conversions); here it is one call: per-pixel
 * channel sums of x and x^2 (float32, then float64), window sums in float64,
 * and the affine applied to the convolution's output in place.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "interformer_ops.h"

/* Per-pixel sums over C channels of x and x^2 into sums[2 * pixel]. */
static inline void channel_sums(const void *x, int is_bf16, long pixels,
                                const int C, double *sums) {
#pragma omp parallel for schedule(static) if (pixels * C > 65536)
    for (long p = 0; p < pixels; ++p) {
        float part[LANES], part_sq[LANES];
        for (int j = 0; j < LANES; ++j) part[j] = part_sq[j] = 0.f;
        float s = 0.f, sq = 0.f;
        int c = 0;
        if (is_bf16) {
            const uint16_t *row = (const uint16_t *)x + p * C;
            for (; c + LANES <= C; c += LANES)
                for (int j = 0; j < LANES; ++j) {
                    const float v = bf16_to_f32(row[c + j]);
                    part[j] += v;
                    part_sq[j] += v * v;
                }
            for (; c < C; ++c) {
                const float v = bf16_to_f32(row[c]);
                s += v;
                sq += v * v;
            }
        } else {
            const float *row = (const float *)x + p * C;
            for (; c + LANES <= C; c += LANES)
                for (int j = 0; j < LANES; ++j) {
                    const float v = row[c + j];
                    part[j] += v;
                    part_sq[j] += v * v;
                }
            for (; c < C; ++c) {
                s += row[c];
                sq += row[c] * row[c];
            }
        }
        double total = s, total_sq = sq;
        for (int j = 0; j < LANES; ++j) {
            total += part[j];
            total_sq += part_sq[j];
        }
        sums[2 * p] = total;
        sums[2 * p + 1] = total_sq;
    }
}

static inline void apply_row(void *conv, int is_bf16, long base,
                             const int Cout, float inv_std, float scaled_mean,
                             const float *restrict row_sum,
                             const float *restrict shift) {
    if (is_bf16) {
        uint16_t *o = (uint16_t *)conv + base;
        for (int c = 0; c < Cout; ++c)
            o[c] = f32_to_bf16(bf16_to_f32(o[c]) * inv_std +
                               (shift[c] - scaled_mean * row_sum[c]));
    } else {
        float *o = (float *)conv + base;
        for (int c = 0; c < Cout; ++c)
            o[c] = o[c] * inv_std + (shift[c] - scaled_mean * row_sum[c]);
    }
}

/*
 * Arguments:
 *   x:        (H, W, C) channels-last input of PatchMerging, float32 or
 *             bfloat16 (is_bf16).
 *   k, stride, pad: the unfold's square kernel, stride and zero padding.
 *   conv:     (h, w, Cout) channels-last output of the strided convolution
 *             with the weight W * g (same dtype as x); normalised in place.
 *   row_sum:  (Cout,) row sums of W * g; shift (Cout,) = W b; eps the
 *             LayerNorm epsilon (float32).
 * Returns 0, or 1 if the workspace could not be allocated.
 */
int patch_norm(const void *x, int is_bf16, int H, int W, int C, int k,
               int stride, int pad, void *conv, int h, int w, int Cout,
               const float *row_sum, const float *shift, float eps) {
    double *sums = (double *)malloc(sizeof(double) * 2 * (size_t)H * W);
    if (sums == NULL) return 1;
    switch (C) {
    case 32: channel_sums(x, is_bf16, (long)H * W, 32, sums); break;
    case 64: channel_sums(x, is_bf16, (long)H * W, 64, sums); break;
    case 128: channel_sums(x, is_bf16, (long)H * W, 128, sums); break;
    default: channel_sums(x, is_bf16, (long)H * W, C, sums);
    }
    const double count = (double)k * k * C;
#pragma omp parallel for schedule(static) if ((long)h * w * Cout > 32768)
    for (int oy = 0; oy < h; ++oy) {
        for (int ox = 0; ox < w; ++ox) {
            double s = 0.0, sq = 0.0;
            for (int ky = 0; ky < k; ++ky) {
                const int y = oy * stride - pad + ky;
                if (y < 0 || y >= H) continue;
                for (int kx = 0; kx < k; ++kx) {
                    const int xx = ox * stride - pad + kx;
                    if (xx < 0 || xx >= W) continue;
                    const double *p = sums + 2 * ((long)y * W + xx);
                    s += p[0];
                    sq += p[1];
                }
            }
            const double mean = s / count;
            double var = sq / count - mean * mean;
            if (var < 0) var = 0;
            const double inv_std = 1.0 / sqrt(var + eps);
            const long base = ((long)oy * w + ox) * Cout;
            const float fs = (float)inv_std, fm = (float)(mean * inv_std);
            switch (Cout) {
            case 64:
                apply_row(conv, is_bf16, base, 64, fs, fm, row_sum, shift);
                break;
            case 128:
                apply_row(conv, is_bf16, base, 128, fs, fm, row_sum, shift);
                break;
            case 256:
                apply_row(conv, is_bf16, base, 256, fs, fm, row_sum, shift);
                break;
            default:
                apply_row(conv, is_bf16, base, Cout, fs, fm, row_sum, shift);
            }
        }
    }
    free(sums);
    return 0;
}
