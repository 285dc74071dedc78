/*
 * What the library was compiled for (-march=native on the build machine):
 * the loader reads it so the dispatcher can say, e.g., "built without
 * AMX-BF16" instead of calling a kernel that would decline.
 */
#include "interformer_ops.h"

int interformer_ops_features(void) {
    int bits = 0;
#if defined(__AVX512F__)
    bits |= 1 << 0;
#endif
#if defined(__AVX512BF16__)
    bits |= 1 << 1;
#endif
#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && \
    defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__linux__)
    bits |= 1 << 2;
#endif
#if defined(_OPENMP)
    bits |= 1 << 3;
#endif
    return bits;
}
