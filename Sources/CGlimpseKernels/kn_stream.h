// The KN form's few-row kernel, written once for every vector width (included by the AVX2 and
// AVX-512 files with their intrinsics; see internal.h for KN_STREAM_ROWS / KN_STREAM_FLOATS).
#ifndef GLIMPSE_KN_STREAM_H
#define GLIMPSE_KN_STREAM_H
#include <string.h>

// KN form for few rows (M <= KN_STREAM_ROWS): streams W row by row across a wide column chunk
// (eight rows at a time, each a contiguous run: the pattern hardware prefetchers follow; eight
// streams read 15-30% faster than four on AMD Zen 4, one core and two) and keeps
// the partial sums in an L1 buffer. Each column's chain still runs over k in order from zero, so
// the bits equal the tiled kernel's (which stays faster from a few rows up).
#define GK_KN_STREAM(T, SUFFIX, ATTR, VEC, LANES, LOADW, SET1, FMADD, LOADA, STOREA)                                                            \
static ATTR void kn_stream_##SUFFIX(int m, int n0, int n1, int k, const float *a, long lda,     \
                                   const T *w, long ldw, const float *scale, float alpha,         \
                                   float *c, long ldc, int accumulate) {                           \
    float acc[KN_STREAM_FLOATS] __attribute__((aligned(64)));                                     \
    int cw = (KN_STREAM_FLOATS / m) / LANES * LANES;                                          \
    for (int c0 = n0; c0 < n1; c0 += cw) {                                                        \
        int width = n1 - c0 < cw ? n1 - c0 : cw, nv = width / LANES;                             \
        memset(acc, 0, sizeof(float) * (size_t)(m * nv * LANES));                                \
        int kk = 0;                                                                               \
        for (; kk + 8 <= k; kk += 8) {                                                             \
            const T *r0 = w + (long)kk * ldw + c0;                                                \
            VEC x[KN_STREAM_ROWS][8];                                                              \
            for (int i = 0; i < m; i++)                                                           \
                for (int q = 0; q < 8; q++) x[i][q] = SET1(a[(long)i * lda + kk + q]);           \
            for (int v = 0; v < nv; v++) {                                                        \
                VEC wq[8];                                                                        \
                for (int q = 0; q < 8; q++) wq[q] = LOADW##SUFFIX(r0 + q * ldw + LANES * v);      \
                if (kk + 16 <= k && (v * sizeof(T) * LANES) % 64 == 0)                             \
                    for (int q = 0; q < 8; q++) _mm_prefetch((const char *)(r0 + (8 + q) * ldw + LANES * v), _MM_HINT_T0); \
                for (int i = 0; i < m; i++) {                                                     \
                    float *p = acc + (i * nv + v) * LANES;                                      \
                    VEC s = LOADA(p);                                                         \
                    for (int q = 0; q < 8; q++) s = FMADD(x[i][q], wq[q], s);                 \
                    STOREA(p, s);                                                               \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        for (; kk < k; kk++) {                                                                     \
            const T *r0 = w + (long)kk * ldw + c0;                                                \
            for (int v = 0; v < nv; v++) {                                                        \
                VEC w0 = LOADW##SUFFIX(r0 + LANES * v);                                               \
                for (int i = 0; i < m; i++) {                                                     \
                    float *p = acc + (i * nv + v) * LANES;                                      \
                    STOREA(p, FMADD(SET1(a[(long)i * lda + kk]), w0, LOADA(p)));          \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        for (int i = 0; i < m; i++)                                                               \
            for (int j = 0; j < nv * LANES; j++)                                                \
                gk_store(c + (long)i * ldc + c0 + j, acc[(i * nv + j / LANES) * LANES + j % LANES], scale, c0 + j, alpha, accumulate); \
        for (int n = c0 + nv * LANES; n < c0 + width; n++)                                      \
            for (int i = 0; i < m; i++) {                                                         \
                const float *x1 = a + (long)i * lda;                                              \
                float sum = 0;                                                                    \
                for (int q = 0; q < k; q++) sum = fmaf(x1[q], load1_##SUFFIX(w + (long)q * ldw + n), sum); \
                gk_store(c + (long)i * ldc + n, sum, scale, n, alpha, accumulate);                \
            }                                                                                     \
    }                                                                                             \
}

#endif
