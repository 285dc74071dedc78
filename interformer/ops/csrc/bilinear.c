/*
 * Bilinear resize (align_corners=False) of a channels-last map, written
 * (or added) straight into a possibly strided channels-last destination.
 *
 * The UPerHead resizes its levels to stride 4 and either adds them to the
 * next lateral (top-down) or writes them into channel slices of the
 * fpn_bottleneck input. In PyTorch that is a float32 resize (the bfloat16
 * kernel is slower), a conversion and a strided copy per level; here it is
 * one pass that reads the small map and writes the large one once, with
 * float32 arithmetic and one rounding.
 *
 * Same sampling as torch.nn.functional.interpolate(mode='bilinear',
 * align_corners=False) with an output size: scale = in / out, source
 * coordinate max(scale * (i + 0.5) - 0.5, 0), the neighbour clamped at the
 * last row / column.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common.h"
#include "interformer_ops.h"

/* Source index, neighbour offset (0 or 1) and weight of the neighbour. */
static inline void source_of(int i, int in_size, int out_size, int *index,
                             int *step, float *lambda) {
    const float scale = (float)in_size / (float)out_size;
    float real = scale * ((float)i + 0.5f) - 0.5f;
    if (real < 0.f) real = 0.f;
    int idx = (int)real;
    if (idx > in_size - 1) idx = in_size - 1;
    float l = real - (float)idx;
    if (l < 0.f) l = 0.f;
    if (l > 1.f) l = 1.f;
    *index = idx;
    *step = idx < in_size - 1 ? 1 : 0;
    *lambda = l;
}

/* Source row `y` interpolated along x into `row` ((W, C) float32). */
static inline void horizontal(const void *src, const int is_bf16, long base,
                              long src_pixel, int W, const int *x0,
                              const int *dx, const float *lx, float *row,
                              const int C) {
    for (int x = 0; x < W; ++x) {
        const long a = base + (long)x0[x] * src_pixel;
        const long b = a + (long)dx[x] * src_pixel;
        const float wb = lx[x], wa = 1.f - wb;
        float *r = row + (long)x * C;
        if (is_bf16) {
            const uint16_t *s = (const uint16_t *)src;
            for (int c = 0; c < C; ++c)
                r[c] = wa * bf16_to_f32(s[a + c]) +
                       wb * bf16_to_f32(s[b + c]);
        } else {
            const float *s = (const float *)src;
            for (int c = 0; c < C; ++c) r[c] = wa * s[a + c] + wb * s[b + c];
        }
    }
}

/* Separable: each source row is interpolated along x once (kept for the
 * output rows that read it), then output rows blend two such rows. */
static inline void resize_c(const void *src, const int is_bf16, int h,
                            long src_row, long src_pixel, void *dst, int H,
                            int W, long dst_row, long dst_pixel,
                            int accumulate, const int C, const int *x0,
                            const int *dx, const float *lx, float *rows,
                            int y_begin, int y_end) {
    float *row_a = rows, *row_b = rows + (long)W * C;
    int have_a = -1, have_b = -1; /* source rows held in row_a / row_b */
    for (int y = y_begin; y < y_end; ++y) {
        int y0, dy;
        float ly;
        source_of(y, h, H, &y0, &dy, &ly);
        const int y1 = y0 + dy;
        if (have_a != y0) {
            if (have_b == y0) { /* moving down: reuse the lower row */
                float *t = row_a;
                row_a = row_b;
                row_b = t;
                have_a = y0;
                have_b = -1;
            } else {
                horizontal(src, is_bf16, (long)y0 * src_row, src_pixel, W,
                           x0, dx, lx, row_a, C);
                have_a = y0;
            }
        }
        if (have_b != y1) {
            horizontal(src, is_bf16, (long)y1 * src_row, src_pixel, W, x0,
                       dx, lx, row_b, C);
            have_b = y1;
        }
        const float wb = ly, wa = 1.f - ly;
        for (int x = 0; x < W; ++x) {
            const float *ra = row_a + (long)x * C, *rb = row_b + (long)x * C;
            const long od = (long)y * dst_row + (long)x * dst_pixel;
            if (is_bf16) {
                uint16_t *d = (uint16_t *)dst + od;
                if (accumulate)
                    for (int c = 0; c < C; ++c)
                        d[c] = f32_to_bf16(bf16_to_f32(d[c]) +
                                              (wa * ra[c] + wb * rb[c]));
                else
                    for (int c = 0; c < C; ++c)
                        d[c] = f32_to_bf16(wa * ra[c] + wb * rb[c]);
            } else {
                float *d = (float *)dst + od;
                if (accumulate)
                    for (int c = 0; c < C; ++c)
                        d[c] += wa * ra[c] + wb * rb[c];
                else
                    for (int c = 0; c < C; ++c)
                        d[c] = wa * ra[c] + wb * rb[c];
            }
        }
    }
}

/*
 * Arguments (element strides; channels are contiguous in both maps):
 *   src:       (h, w, C) map, float32 or bfloat16 (is_bf16), pixel (y, x)
 *              at y * src_row + x * src_pixel.
 *   dst:       (H, W, C) map of the same dtype, pixel (y, x) at
 *              y * dst_row + x * dst_pixel (e.g. a channel slice of a wider
 *              channels-last map).
 *   accumulate: 0: dst = resize(src); 1: dst += resize(src).
 * Returns 0, or 1 if the workspace could not be allocated.
 */
int bilinear_resize(const void *src, int is_bf16, int h, int w, int C,
                    long src_row, long src_pixel, void *dst, int H, int W,
                    long dst_row, long dst_pixel, int accumulate) {
    /* x sampling, shared by all threads */
    void *sampling = malloc((sizeof(int) * 2 + sizeof(float)) * (size_t)W);
    if (sampling == NULL) return 1;
    int *x0 = (int *)sampling, *dx = x0 + W;
    float *lx = (float *)(dx + W);
    for (int x = 0; x < W; ++x) source_of(x, w, W, &x0[x], &dx[x], &lx[x]);
    int failed = 0;
    /* output rows split in contiguous blocks, one per thread, each with
     * its own two interpolated source rows */
#pragma omp parallel if ((long)H * W * C > 65536) reduction(| : failed)
    {
        int threads = 1, thread = 0;
#ifdef _OPENMP
        threads = omp_get_num_threads();
        thread = omp_get_thread_num();
#endif
        const int y_begin = (int)((long)H * thread / threads);
        const int y_end = (int)((long)H * (thread + 1) / threads);
        float *rows = (float *)malloc(sizeof(float) * 2 * (size_t)W * C);
        if (rows == NULL) {
            failed = 1;
        } else {
            /* constant dtype and usual widths: specialised loops */
#define RESIZE(BF16, CH)                                                     \
    resize_c(src, BF16, h, src_row, src_pixel, dst, H, W, dst_row,         \
             dst_pixel, accumulate, CH, x0, dx, lx, rows, y_begin, y_end)
            if (is_bf16) {
                switch (C) {
                case 32: RESIZE(1, 32); break;
                case 64: RESIZE(1, 64); break;
                case 128: RESIZE(1, 128); break;
                default: RESIZE(1, C);
                }
            } else {
                switch (C) {
                case 32: RESIZE(0, 32); break;
                case 64: RESIZE(0, 64); break;
                case 128: RESIZE(0, 128); break;
                default: RESIZE(0, C);
                }
            }
#undef RESIZE
            free(rows);
        }
    }
    free(sampling);
    return failed;
}
