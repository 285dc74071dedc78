/*
 * GroupNorm(1, C) of a channels-last map in one call: two flat passes for
 * the statistics and one pass applying the per-channel affine, with one
 * rounding to the output dtype (see common.h for the statistics).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "interformer_ops.h"

static inline void apply_affine(const void *x, int is_bf16, long pixels,
                                const int C, const float *restrict scale,
                                const float *restrict shift, void *out) {
#pragma omp parallel for schedule(static) if (pixels * C > 65536)
    for (long p = 0; p < pixels; ++p) {
        const long base = p * C;
        if (is_bf16) {
            const uint16_t *s = (const uint16_t *)x + base;
            uint16_t *d = (uint16_t *)out + base;
            for (int c = 0; c < C; ++c)
                d[c] = f32_to_bf16(bf16_to_f32(s[c]) * scale[c] + shift[c]);
        } else {
            const float *s = (const float *)x + base;
            float *d = (float *)out + base;
            for (int c = 0; c < C; ++c) d[c] = s[c] * scale[c] + shift[c];
        }
    }
}

/*
 * Arguments:
 *   x, out: (pixels, C) channels-last maps, float32 or bfloat16 (is_bf16);
 *           out may be x (in place).
 *   w, b:   (C,) float32 affine, or NULL; eps the GroupNorm epsilon.
 * Returns 0, or 1 if C exceeds the stack workspace (4096 channels).
 */
int group_norm(const void *x, int is_bf16, long pixels, int C,
               const float *w, const float *b, float eps, void *out) {
    if (C > 4096) return 1;
    float scale[C], shift[C];
    group_norm_affine(x, is_bf16, pixels, C, w, b, eps, scale, shift);
    switch (C) { /* usual widths: the affine stays in registers */
    case 32: apply_affine(x, is_bf16, pixels, 32, scale, shift, out); break;
    case 64: apply_affine(x, is_bf16, pixels, 64, scale, shift, out); break;
    case 128: apply_affine(x, is_bf16, pixels, 128, scale, shift, out); break;
    case 256: apply_affine(x, is_bf16, pixels, 256, scale, shift, out); break;
    default: apply_affine(x, is_bf16, pixels, C, scale, shift, out);
    }
    return 0;
}
