#ifndef GLIMPSE_KERNELS_INTERNAL_H
#define GLIMPSE_KERNELS_INTERNAL_H
#include "glimpse_kernels.h"
#include <math.h>

typedef void (*gk_kernel)(int m, int n0, int n1, int k, const float *a, long lda, const void *w, long ldw,
                          const float *scale, float alpha, float *c, long ldc, int accumulate);

/// One path's kernels, indexed [dtype][form].
typedef struct { gk_kernel kernel[3][2]; } gk_kernel_set;

void gk_portable_kernels(gk_kernel_set *set);
/// The int8 entries of `path`'s set (matmul_i8.c: integer products; the same bits on every path).
void gk_i8_kernels(gk_kernel_set *set, int path);
#if defined(__x86_64__) || defined(_M_X64)
#define GK_X86 1
void gk_avx2_kernels(gk_kernel_set *set);
void gk_avx512_kernels(gk_kernel_set *set);
#endif

static inline float gk_bf16(uint16_t v) {
    union { uint32_t u; float f; } x = { (uint32_t)v << 16 };
    return x.f;
}

/// The KN form's few-row kernels: at most this many rows, partial sums in a buffer of this many floats.
enum { KN_STREAM_ROWS = 4, KN_STREAM_FLOATS = 6144 };

/// The common epilogue: r = acc (* scale[n]) * alpha, then store or accumulate.
static inline void gk_store(float *c, float acc, const float *scale, int n, float alpha, int accumulate) {
    float r = scale ? acc * scale[n] : acc;
    r *= alpha;
    *c = accumulate ? *c + r : r;
}

/// The NK form's fixed combination of eight partial sums.
static inline float gk_combine8(const float s[8]) {
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}
#endif
