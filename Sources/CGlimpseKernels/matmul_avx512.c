// AVX-512 kernels (per-function target attributes; selected only from CPUID). The KN form uses
// 16-lane registers: each lane is still one fma chain over k, so results are bitwise equal to the
// portable kernels. The NK form keeps the eight partial sums of the canonical order, which 256-bit
// registers already give; it reuses the AVX2 kernels (every AVX-512 CPU has AVX2 + FMA). The decode
// products are bound by memory bandwidth, so bf16 and int8 weights are widened to fp32 and
// accumulated with fp32 FMA (AVX512_BF16 dot products and VNNI would round the activations and
// change the reduction order; they would pay only in compute-bound products).
#include "internal.h"
#ifdef GK_X86
#include <immintrin.h>

#define GK_512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define GK_INLINE static inline __attribute__((always_inline)) GK_512

GK_INLINE __m512 load16_f32(const float *p) { return _mm512_loadu_ps(p); }
GK_INLINE __m512 load16_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
GK_INLINE __m512 load16_i8(const int8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}
GK_INLINE float load1_f32(const float *p) { return *p; }
GK_INLINE float load1_bf16(const uint16_t *p) { return gk_bf16(*p); }
GK_INLINE float load1_i8(const int8_t *p) { return (float)*p; }

#define GK_KN512(T, SUFFIX)                                                                       \
GK_INLINE void kn_tile_##SUFFIX(int mt, int nv, int n, int k, const float *a, long lda,           \
                                const T *w, long ldw, const float *scale, float alpha,            \
                                float *c, long ldc, int accumulate) {                             \
    __m512 acc[4][4];                                                                             \
    for (int i = 0; i < mt; i++) for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_ps();    \
    for (int kk = 0; kk < k; kk++) {                                                              \
        const T *row = w + (long)kk * ldw + n;                                                    \
        __m512 x[4];                                                                              \
        for (int i = 0; i < mt; i++) x[i] = _mm512_set1_ps(a[(long)i * lda + kk]);                \
        for (int j = 0; j < nv; j++) {                                                            \
            __m512 wv = load16_##SUFFIX(row + 16 * j);                                            \
            for (int i = 0; i < mt; i++) acc[i][j] = _mm512_fmadd_ps(x[i], wv, acc[i][j]);        \
        }                                                                                         \
    }                                                                                             \
    for (int i = 0; i < mt; i++)                                                                  \
        for (int j = 0; j < nv; j++) {                                                            \
            float lanes[16];                                                                      \
            _mm512_storeu_ps(lanes, acc[i][j]);                                                   \
            for (int l = 0; l < 16; l++)                                                          \
                gk_store(c + (long)i * ldc + n + 16 * j + l, lanes[l], scale, n + 16 * j + l,     \
                         alpha, accumulate);                                                      \
        }                                                                                         \
}                                                                                                 \
GK_INLINE void kn_columns_##SUFFIX(int nv, int m, int n, int k, const float *a, long lda,         \
                                   const T *w, long ldw, const float *scale, float alpha,         \
                                   float *c, long ldc, int accumulate) {                          \
    int i = 0;                                                                                    \
    for (; i + 4 <= m; i += 4)                                                                    \
        kn_tile_##SUFFIX(4, nv, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,               \
                         c + (long)i * ldc, ldc, accumulate);                                     \
    switch (m - i) {                                                                              \
    case 3: kn_tile_##SUFFIX(3, nv, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,           \
                             c + (long)i * ldc, ldc, accumulate); break;                          \
    case 2: kn_tile_##SUFFIX(2, nv, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,           \
                             c + (long)i * ldc, ldc, accumulate); break;                          \
    case 1: kn_tile_##SUFFIX(1, nv, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,           \
                             c + (long)i * ldc, ldc, accumulate); break;                          \
    default: break;                                                                               \
    }                                                                                             \
}                                                                                                 \
static GK_512 void avx512_##SUFFIX##_kn(int m, int n0, int n1, int k, const float *a, long lda,   \
                                        const void *wv, long ldw, const float *scale, float alpha,\
                                        float *c, long ldc, int accumulate) {                     \
    const T *w = (const T *)wv;                                                                   \
    int n = n0;                                                                                   \
    for (; n + 64 <= n1; n += 64) kn_columns_##SUFFIX(4, m, n, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate); \
    for (; n + 16 <= n1; n += 16) kn_columns_##SUFFIX(1, m, n, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate); \
    for (; n < n1; n++)                                                                           \
        for (int i = 0; i < m; i++) {                                                             \
            const float *x = a + (long)i * lda;                                                   \
            float sum = 0;                                                                        \
            for (int kk = 0; kk < k; kk++) sum = fmaf(x[kk], load1_##SUFFIX(w + (long)kk * ldw + n), sum); \
            gk_store(c + (long)i * ldc + n, sum, scale, n, alpha, accumulate);                    \
        }                                                                                         \
}

GK_KN512(float, f32)
GK_KN512(uint16_t, bf16)
GK_KN512(int8_t, i8)

void gk_avx512_kernels(gk_kernel_set *set) {
    gk_avx2_kernels(set);   // NK form: see above
    set->kernel[GK_F32][GK_FORM_KN] = avx512_f32_kn;
    set->kernel[GK_BF16][GK_FORM_KN] = avx512_bf16_kn;
    set->kernel[GK_I8][GK_FORM_KN] = avx512_i8_kn;
}
#endif
