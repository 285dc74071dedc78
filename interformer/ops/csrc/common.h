/*
 * Helpers shared by the C kernels of interformer.ops (see library.py):
 * bfloat16 conversions and a flat, vectorisable sum for normalisation
 * statistics.
 *
 * The kernels parallelise with OpenMP pragmas. Loaded into a PyTorch
 * process they run on PyTorch's own OpenMP runtime (the libgomp it ships
 * has the same soname, so the loader binds ours to it): the same threads,
 * the same torch.set_num_threads, no second pool. Built without OpenMP the
 * pragmas are ignored and the kernels run on one thread.
 */
#ifndef INTERFORMER_NATIVE_COMMON_H
#define INTERFORMER_NATIVE_COMMON_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Independent partial sums per reduction (one 512-bit vector of floats);
 * the flat sums keep SUM_LANES (four vectors: the add latency overlaps). */
#define LANES 16
#define SUM_LANES 64

/* bfloat16 <-> float32 (round to nearest even, NaN kept quiet). */
static inline float bf16_to_f32(uint16_t v) {
    uint32_t bits = (uint32_t)v << 16;
    float out;
    memcpy(&out, &bits, sizeof(out));
    return out;
}

static inline uint16_t f32_to_bf16(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN */
        return (uint16_t)((bits >> 16) | 0x0040u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* Sum of (x - centre) (squared = 0) or (x - centre)^2 (squared = 1) over
 * `count` elements: SUM_LANES float partials, flushed to double every
 * BLOCK elements. */
#define BLOCK 4096
#define FLAT_SUM_BLOCK(LOAD)                                                 \
    for (; i + SUM_LANES <= stop; i += SUM_LANES)                            \
        for (int j = 0; j < SUM_LANES; ++j) {                                \
            const float v = LOAD(i + j) - centre;                            \
            part[j] += squared ? v * v : v;                                  \
        }                                                                    \
    for (; i < stop; ++i) {                                                  \
        const float v = LOAD(i) - centre;                                    \
        part[0] += squared ? v * v : v;                                      \
    }
#define LOAD_BF16(k) bf16_to_f32(bf[k])
#define LOAD_F32(k) f32[k]

static inline double flat_sum_kind(const uint16_t *bf, const float *f32,
                                   long count, float centre,
                                   const int squared) {
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static) \
    if (count > 16 * BLOCK)
    for (long start = 0; start < count; start += BLOCK) {
        const long stop = start + BLOCK < count ? start + BLOCK : count;
        float part[SUM_LANES];
        for (int j = 0; j < SUM_LANES; ++j) part[j] = 0.f;
        long i = start;
        if (bf != NULL) {
            FLAT_SUM_BLOCK(LOAD_BF16)
        } else {
            FLAT_SUM_BLOCK(LOAD_F32)
        }
        for (int j = 0; j < SUM_LANES; ++j) total += part[j];
    }
    return total;
}

static inline double flat_sum(const void *src, int is_bf16, long count,
                              float centre, int squared) {
    const uint16_t *bf = is_bf16 ? (const uint16_t *)src : NULL;
    const float *f32 = is_bf16 ? NULL : (const float *)src;
    /* constant `squared` per call site: the compiler specialises each */
    return squared ? flat_sum_kind(bf, f32, count, centre, 1)
                   : flat_sum_kind(bf, f32, count, centre, 0);
}

/* GroupNorm(1, C) of `pixels` x C values as a per-channel affine
 * y = x * scale[c] + shift[c] (scale = rstd * w, shift = b - mean * scale;
 * w, b may be NULL). The statistics take two passes: the mean, then the
 * squared deviations from it (centred on the float-rounded mean). */
static inline void group_norm_affine(const void *x, int is_bf16, long pixels,
                                     int C, const float *w, const float *b,
                                     float eps, float *scale, float *shift) {
    const long count = pixels * C;
    const double mean = flat_sum(x, is_bf16, count, 0.f, 0) / count;
    const float centre = (float)mean;
    const double offset = mean - (double)centre;
    double var = flat_sum(x, is_bf16, count, centre, 1) / count -
                 offset * offset;
    if (var < 0) var = 0;
    const double rstd = 1.0 / sqrt(var + eps);
    for (int c = 0; c < C; ++c) {
        const double a = rstd * (w ? w[c] : 1.0);
        scale[c] = (float)a;
        shift[c] = (float)((b ? b[c] : 0.0) - mean * a);
    }
}

#endif
