// AVX2 + FMA kernels (per-function target attributes: this file builds for any x86-64 and these
// functions run only when the platform table selected them from CPUID). Same reduction order as
// matmul_portable.c, so results are bitwise equal to it.
#include "internal.h"
#ifdef GK_X86
#include <immintrin.h>
#include "kn_stream.h"

#define GK_AVX2 __attribute__((target("avx2,fma")))
#define GK_INLINE static inline __attribute__((always_inline)) GK_AVX2

// Eight consecutive weights as fp32 (bf16 widened exactly).
GK_INLINE __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
GK_INLINE __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
GK_INLINE float load1_f32(const float *p) { return *p; }
GK_INLINE float load1_bf16(const uint16_t *p) { return gk_bf16(*p); }

// ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)), as gk_combine8.
GK_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// NK (dot-product) form: a tile of MT activation rows × NT weight rows; each weight row is read
// once per tile from memory and its chunks reused for all MT rows from registers.
#define GK_NK_TILE(T, SUFFIX)                                                                     \
GK_INLINE void nk_tile_##SUFFIX(int mt, int nt, int n, int k, const float *a, long lda,           \
                                const T *w, long ldw, const float *scale, float alpha,            \
                                float *c, long ldc, int accumulate) {                             \
    __m256 acc[3][4];                                                                             \
    for (int i = 0; i < mt; i++) for (int j = 0; j < nt; j++) acc[i][j] = _mm256_setzero_ps();    \
    int k8 = k & ~7;                                                                              \
    for (int kk = 0; kk < k8; kk += 8) {                                                          \
        __m256 x[3];                                                                              \
        for (int i = 0; i < mt; i++) x[i] = _mm256_loadu_ps(a + (long)i * lda + kk);              \
        for (int j = 0; j < nt; j++) {                                                            \
            __m256 wv = load8_##SUFFIX(w + (long)(n + j) * ldw + kk);                             \
            for (int i = 0; i < mt; i++) acc[i][j] = _mm256_fmadd_ps(x[i], wv, acc[i][j]);        \
        }                                                                                         \
    }                                                                                             \
    for (int i = 0; i < mt; i++)                                                                  \
        for (int j = 0; j < nt; j++) {                                                            \
            const T *row = w + (long)(n + j) * ldw;                                               \
            const float *xr = a + (long)i * lda;                                                  \
            float sum = hsum8(acc[i][j]);                                                         \
            for (int kk = k8; kk < k; kk++) sum = fmaf(xr[kk], load1_##SUFFIX(row + kk), sum);    \
            gk_store(c + (long)i * ldc + n + j, sum, scale, n + j, alpha, accumulate);            \
        }                                                                                         \
}                                                                                                 \
static GK_AVX2 void avx2_##SUFFIX##_nk(int m, int n0, int n1, int k, const float *a, long lda,    \
                                       const void *wv, long ldw, const float *scale, float alpha, \
                                       float *c, long ldc, int accumulate) {                      \
    const T *w = (const T *)wv;                                                                   \
    int n = n0;                                                                                   \
    for (; n + 4 <= n1; n += 4) {                                                                 \
        int i = 0;                                                                                \
        for (; i + 3 <= m; i += 3)                                                                \
            nk_tile_##SUFFIX(3, 4, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,            \
                             c + (long)i * ldc, ldc, accumulate);                                 \
        if (m - i == 2) nk_tile_##SUFFIX(2, 4, n, k, a + (long)i * lda, lda, w, ldw, scale,       \
                                         alpha, c + (long)i * ldc, ldc, accumulate);              \
        if (m - i == 1) nk_tile_##SUFFIX(1, 4, n, k, a + (long)i * lda, lda, w, ldw, scale,       \
                                         alpha, c + (long)i * ldc, ldc, accumulate);              \
    }                                                                                             \
    for (; n < n1; n++)                                                                           \
        for (int i = 0; i < m; i++)                                                               \
            nk_tile_##SUFFIX(1, 1, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,            \
                             c + (long)i * ldc, ldc, accumulate);                                 \
}



// KN (axpy) form: a tile of MT activation rows × NV·8 columns; each output lane is one fma chain
// over k (the portable order), with W[k, n..n+8·NV) streamed row by row. K is cut into blocks of
// KB rows whose weights stay in L1 while every row tile uses them; between blocks the partial sums
// wait in `spill` (the chain goes on where it stopped, so the order is unchanged).
enum { KB = 128, ROWS_PER_PASS = 30 };
#define GK_KN_TILE(T, SUFFIX)                                                                     \
GK_INLINE void kn_tile_##SUFFIX(int mt, int nv, int n, int k0, int k1, int first, int last,       \
                                const float *a, long lda, const T *w, long ldw,                   \
                                const float *scale, float alpha, float *c, long ldc,              \
                                int accumulate, float *spill) {                                   \
    __m256 acc[3][4];                                                                             \
    for (int i = 0; i < mt; i++)                                                                  \
        for (int j = 0; j < nv; j++)                                                              \
            acc[i][j] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(spill + (i * 4 + j) * 8);   \
    for (int kk = k0; kk < k1; kk++) {                                                            \
        const T *row = w + (long)kk * ldw + n;                                                    \
        __m256 x[3];                                                                              \
        for (int i = 0; i < mt; i++) x[i] = _mm256_broadcast_ss(a + (long)i * lda + kk);          \
        for (int j = 0; j < nv; j++) {                                                            \
            __m256 wv = load8_##SUFFIX(row + 8 * j);                                              \
            for (int i = 0; i < mt; i++) acc[i][j] = _mm256_fmadd_ps(x[i], wv, acc[i][j]);        \
        }                                                                                         \
    }                                                                                             \
    if (!last) {                                                                                  \
        for (int i = 0; i < mt; i++)                                                              \
            for (int j = 0; j < nv; j++) _mm256_storeu_ps(spill + (i * 4 + j) * 8, acc[i][j]);    \
        return;                                                                                   \
    }                                                                                             \
    for (int i = 0; i < mt; i++)                                                                  \
        for (int j = 0; j < nv; j++) {                                                            \
            float lanes[8];                                                                       \
            _mm256_storeu_ps(lanes, acc[i][j]);                                                   \
            for (int l = 0; l < 8; l++)                                                           \
                gk_store(c + (long)i * ldc + n + 8 * j + l, lanes[l], scale, n + 8 * j + l,       \
                         alpha, accumulate);                                                      \
        }                                                                                         \
}                                                                                                 \
GK_INLINE void kn_columns_##SUFFIX(int nv, int m, int n, int k, const float *a, long lda,         \
                                   const T *w, long ldw, const float *scale, float alpha,         \
                                   float *c, long ldc, int accumulate) {                          \
    float spill[ROWS_PER_PASS / 3][3 * 4 * 8];                                                    \
    for (int r0 = 0; r0 < m; r0 += ROWS_PER_PASS) {                                               \
        int rows = m - r0 < ROWS_PER_PASS ? m - r0 : ROWS_PER_PASS;                               \
        const float *ar = a + (long)r0 * lda;                                                     \
        float *cr = c + (long)r0 * ldc;                                                           \
        for (int k0 = 0; k0 < k; k0 += KB) {                                                      \
            int k1 = k - k0 < KB ? k : k0 + KB, first = k0 == 0, last = k1 == k;                  \
            int i = 0, t = 0;                                                                     \
            for (; i + 3 <= rows; i += 3, t++)                                                    \
                kn_tile_##SUFFIX(3, nv, n, k0, k1, first, last, ar + (long)i * lda, lda, w, ldw,  \
                                 scale, alpha, cr + (long)i * ldc, ldc, accumulate, spill[t]);    \
            if (rows - i == 2)                                                                    \
                kn_tile_##SUFFIX(2, nv, n, k0, k1, first, last, ar + (long)i * lda, lda, w, ldw,  \
                                 scale, alpha, cr + (long)i * ldc, ldc, accumulate, spill[t]);    \
            if (rows - i == 1)                                                                    \
                kn_tile_##SUFFIX(1, nv, n, k0, k1, first, last, ar + (long)i * lda, lda, w, ldw,  \
                                 scale, alpha, cr + (long)i * ldc, ldc, accumulate, spill[t]);    \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
static GK_AVX2 void avx2_##SUFFIX##_kn(int m, int n0, int n1, int k, const float *a, long lda,    \
                                       const void *wv, long ldw, const float *scale, float alpha, \
                                       float *c, long ldc, int accumulate) {                      \
    const T *w = (const T *)wv;                                                                   \
    if (m <= KN_STREAM_ROWS) {                                                                    \
        kn_stream_##SUFFIX(m, n0, n1, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate);       \
        return;                                                                                   \
    }                                                                                             \
    int n = n0;                                                                                   \
    for (; n + 32 <= n1; n += 32) kn_columns_##SUFFIX(4, m, n, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate); \
    for (; n + 8 <= n1; n += 8) kn_columns_##SUFFIX(1, m, n, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate);   \
    for (; n < n1; n++)                                                                           \
        for (int i = 0; i < m; i++) {                                                             \
            const float *x = a + (long)i * lda;                                                   \
            float sum = 0;                                                                        \
            for (int kk = 0; kk < k; kk++) sum = fmaf(x[kk], load1_##SUFFIX(w + (long)kk * ldw + n), sum); \
            gk_store(c + (long)i * ldc + n, sum, scale, n, alpha, accumulate);                    \
        }                                                                                         \
}

GK_NK_TILE(float, f32)
GK_NK_TILE(uint16_t, bf16)
#define GK_KN_STREAM_256(T, SUFFIX) GK_KN_STREAM(T, SUFFIX, GK_AVX2, __m256, 8, load8_, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_load_ps, _mm256_store_ps)
GK_KN_STREAM_256(float, f32)
GK_KN_STREAM_256(uint16_t, bf16)
GK_KN_TILE(float, f32)
GK_KN_TILE(uint16_t, bf16)

void gk_avx2_kernels(gk_kernel_set *set) {
    set->kernel[GK_F32][GK_FORM_NK] = avx2_f32_nk;
    set->kernel[GK_F32][GK_FORM_KN] = avx2_f32_kn;
    set->kernel[GK_BF16][GK_FORM_NK] = avx2_bf16_nk;
    set->kernel[GK_BF16][GK_FORM_KN] = avx2_bf16_kn;
    gk_i8_kernels(set, GK_PATH_AVX2);
}

/// Read-only stream (bandwidth measurement): four independent accumulators, no stores.
__attribute__((target("avx2"))) float gk_sum_read_avx2(const float *src, long count) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    long i = 0;
    for (; i + 32 <= count; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(src + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(src + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(src + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(src + i + 24));
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    float sum = 0;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    for (; i < count; i++) sum += src[i];
    return sum;
}
#endif
