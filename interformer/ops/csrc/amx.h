/*
 * AMX helpers shared by attention.c and linear.c: the permission Linux asks
 * for before a process uses the tile registers, and the one tile layout both
 * kernels use (all 8 tiles 16 rows x 64 bytes: 16 x 32 bf16 operands,
 * 16 x 16 float32 accumulators). Include it only where the compiler
 * targets AMX-BF16 (the #if of attention.c and linear.c).
 */
#ifndef INTERFORMER_NATIVE_AMX_H
#define INTERFORMER_NATIVE_AMX_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AMX_ARCH_REQ_XCOMP_PERM 0x1023
#define AMX_XFEATURE_XTILEDATA 18

typedef struct {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tile_config;

/* The process may use AMX (asked once; harmless if already granted, e.g.
 * by oneDNN). Returns 1 if granted. */
static inline int amx_permitted(void) {
    static int permitted = -1;
    if (permitted < 0)
        permitted = syscall(SYS_arch_prctl, AMX_ARCH_REQ_XCOMP_PERM,
                            AMX_XFEATURE_XTILEDATA) == 0;
    return permitted;
}

/* Configure this thread's 8 tiles as 16 rows x 64 bytes (pair with
 * _tile_release() when done). */
static inline void amx_configure_tiles(void) {
    amx_tile_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

#endif
