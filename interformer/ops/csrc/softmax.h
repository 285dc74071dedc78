/*
 * Vector helpers of the softmax shared by the attention kernels
 * (attention.c: bf16, attention_f32.c: float32). AVX-512F only.
 */
#ifndef INTERFORMER_SOFTMAX_H
#define INTERFORMER_SOFTMAX_H

#if defined(__AVX512F__)
#include <immintrin.h>

#define SOFTMAX_LANES 16

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

/* Lanes of keys j..j+15 that are real (the first `valid` keys). */
static inline __mmask16 live_keys(int valid, int j) {
    const int n = valid - j;
    return n >= SOFTMAX_LANES ? (__mmask16)0xffff
                     : (__mmask16)(n > 0 ? (1u << n) - 1 : 0);
}

#endif
#endif
