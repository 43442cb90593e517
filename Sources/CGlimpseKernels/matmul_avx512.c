// AVX-512 kernels (per-function target attributes; selected only from CPUID). Both forms keep the
// canonical reduction order of glimpse_kernels.h, so results are bitwise equal to the portable
// kernels: the KN form uses 16-lane registers in which each lane is still one fma chain over k; the
// NK form puts two weight rows' eight partial sums side by side in one register (lanes 0-7 and
// 8-15), so each instruction does the work of two AVX2 ones while every partial sum keeps its chain.
// bf16 weights are widened to fp32 and accumulated with fp32 FMA (AVX512_BF16 dot products would
// round the activations and change the reduction order). int8 weights have their own integer
// kernels (matmul_i8.c), installed over these by gk_i8_kernels.
#include "internal.h"
#ifdef GK_X86
#include <immintrin.h>
#include "kn_stream.h"

#define GK_512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define GK_INLINE static inline __attribute__((always_inline)) GK_512

GK_INLINE __m512 load16_f32(const float *p) { return _mm512_loadu_ps(p); }
GK_INLINE __m512 load16_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
// Eight weights of row r0 in lanes 0-7 and eight of row r1 in lanes 8-15, as fp32.
GK_INLINE __m512 load8x2_f32(const float *r0, const float *r1) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(r0)), _mm256_loadu_ps(r1), 1);
}
GK_INLINE __m512 load8x2_bf16(const uint16_t *r0, const uint16_t *r1) {
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)r0)),
                                           _mm_loadu_si128((const __m128i *)r1), 1);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(both), 16));
}
// ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)) of eight lanes, as gk_combine8.
GK_INLINE float hsum8_256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}
GK_INLINE float load1_f32(const float *p) { return *p; }
GK_INLINE float load1_bf16(const uint16_t *p) { return gk_bf16(*p); }



// KN form: a tile of MT rows × NV·16 columns, each lane one fma chain over k. As in the AVX2 file,
// K is cut into blocks of KB rows whose weights stay in L1 while every row tile of the pass uses
// them (one pass streams each weight from memory once, however many rows); between blocks the
// partial sums wait in `spill`, so each chain goes on where it stopped and the order is unchanged.
// The first row tile of a pass streams the weights from memory; rows of W lie ldw apart (often
// more than a page), where hardware prefetchers stop, so it prefetches KN_PREFETCH rows ahead.
enum { KB512 = 128, ROWS_PER_PASS512 = 32, KN_PREFETCH = 8 };
// NK form: weight rows this far ahead are prefetched by the first row tile of a column block (an
// lm_head's rows are short, 768 weights, so the hardware prefetchers barely start on each).
enum { NK_PREFETCH = 16 };
#define GK_KN512(T, SUFFIX)                                                                       \
GK_INLINE void kn_tile_##SUFFIX(int mt, int nv, int n, int k, int k0, int k1, int first,        \
                                int last, int prefetch, const float *a, long lda, const T *w,     \
                                long ldw, const float *scale, float alpha, float *c, long ldc,    \
                                int accumulate, float *spill) {                                   \
    __m512 acc[4][4];                                                                             \
    for (int i = 0; i < mt; i++)                                                                  \
        for (int j = 0; j < nv; j++)                                                              \
            acc[i][j] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(spill + (i * 4 + j) * 16); \
    for (int kk = k0; kk < k1; kk++) {                                                            \
        const T *row = w + (long)kk * ldw + n;                                                    \
        if (prefetch && kk + KN_PREFETCH < k)                                                     \
            for (int j = 0; j < nv; j++) _mm_prefetch((const char *)(row + KN_PREFETCH * ldw + 16 * j), _MM_HINT_T0); \
        __m512 x[4];                                                                              \
        for (int i = 0; i < mt; i++) x[i] = _mm512_set1_ps(a[(long)i * lda + kk]);                \
        for (int j = 0; j < nv; j++) {                                                            \
            __m512 wv = load16_##SUFFIX(row + 16 * j);                                            \
            for (int i = 0; i < mt; i++) acc[i][j] = _mm512_fmadd_ps(x[i], wv, acc[i][j]);        \
        }                                                                                         \
    }                                                                                             \
    if (!last) {                                                                                  \
        for (int i = 0; i < mt; i++)                                                              \
            for (int j = 0; j < nv; j++) _mm512_storeu_ps(spill + (i * 4 + j) * 16, acc[i][j]);   \
        return;                                                                                   \
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
    float spill[ROWS_PER_PASS512 / 4][4 * 4 * 16];                                                \
    for (int r0 = 0; r0 < m; r0 += ROWS_PER_PASS512) {                                            \
        int rows = m - r0 < ROWS_PER_PASS512 ? m - r0 : ROWS_PER_PASS512;                         \
        const float *ar = a + (long)r0 * lda;                                                     \
        float *cr = c + (long)r0 * ldc;                                                           \
        for (int k0 = 0; k0 < k; k0 += KB512) {                                                   \
            int k1 = k - k0 < KB512 ? k : k0 + KB512, first = k0 == 0, last = k1 == k;            \
            int i = 0, t = 0;                                                                     \
            for (; i + 4 <= rows; i += 4, t++)                                                    \
                kn_tile_##SUFFIX(4, nv, n, k, k0, k1, first, last, t == 0, ar + (long)i * lda, lda, w, ldw,  \
                                 scale, alpha, cr + (long)i * ldc, ldc, accumulate, spill[t]);    \
            switch (rows - i) {                                                                   \
            case 3: kn_tile_##SUFFIX(3, nv, n, k, k0, k1, first, last, t == 0, ar + (long)i * lda, lda, w,   \
                                     ldw, scale, alpha, cr + (long)i * ldc, ldc, accumulate,      \
                                     spill[t]); break;                                            \
            case 2: kn_tile_##SUFFIX(2, nv, n, k, k0, k1, first, last, t == 0, ar + (long)i * lda, lda, w,   \
                                     ldw, scale, alpha, cr + (long)i * ldc, ldc, accumulate,      \
                                     spill[t]); break;                                            \
            case 1: kn_tile_##SUFFIX(1, nv, n, k, k0, k1, first, last, t == 0, ar + (long)i * lda, lda, w,   \
                                     ldw, scale, alpha, cr + (long)i * ldc, ldc, accumulate,      \
                                     spill[t]); break;                                            \
            default: break;                                                                       \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
static GK_512 void avx512_##SUFFIX##_kn(int m, int n0, int n1, int k, const float *a, long lda,   \
                                        const void *wv, long ldw, const float *scale, float alpha,\
                                        float *c, long ldc, int accumulate) {                     \
    const T *w = (const T *)wv;                                                                   \
    if (m <= KN_STREAM_ROWS) {                                                                    \
        kn_stream_##SUFFIX(m, n0, n1, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate);       \
        return;                                                                                   \
    }                                                                                             \
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


// NK form: a tile of MT activation rows × NP pairs of weight rows. x holds eight values of one
// activation row in both halves (one broadcast load); each weight pair is read once per tile and
// reused for all MT rows from registers.
// The AVX2 kernels take the odd last column (same order, so the same bits).
static gk_kernel_set avx2_set;
#define GK_NK512(T, SUFFIX, DTYPE)                                                                       \
GK_INLINE void nk_tile_##SUFFIX(int mt, int np, int n, int k, const float *a, long lda,           \
                                const T *w, long ldw, const float *scale, float alpha,            \
                                float *c, long ldc, int accumulate, int prefetch) {               \
    __m512 acc[4][4];                                                                             \
    for (int i = 0; i < mt; i++) for (int j = 0; j < np; j++) acc[i][j] = _mm512_setzero_ps();    \
    int k8 = k & ~7;                                                                              \
    for (int kk = 0; kk < k8; kk += 8) {                                                          \
        __m512 x[4];                                                                              \
        for (int i = 0; i < mt; i++) x[i] = _mm512_broadcast_f32x8(_mm256_loadu_ps(a + (long)i * lda + kk)); \
        for (int j = 0; j < np; j++) {                                                            \
            const T *r0 = w + (long)(n + 2 * j) * ldw + kk;                                       \
            __m512 wv = load8x2_##SUFFIX(r0, r0 + ldw);                                           \
            if (prefetch) {                                                                       \
                _mm_prefetch((const char *)(r0 + NK_PREFETCH * ldw), _MM_HINT_T0);                \
                _mm_prefetch((const char *)(r0 + (NK_PREFETCH + 1) * ldw), _MM_HINT_T0);          \
            }                                                                                     \
            for (int i = 0; i < mt; i++) acc[i][j] = _mm512_fmadd_ps(x[i], wv, acc[i][j]);        \
        }                                                                                         \
    }                                                                                             \
    for (int i = 0; i < mt; i++)                                                                  \
        for (int j = 0; j < np; j++)                                                              \
            for (int h = 0; h < 2; h++) {                                                         \
                int col = n + 2 * j + h;                                                          \
                const T *row = w + (long)col * ldw;                                               \
                const float *xr = a + (long)i * lda;                                              \
                float sum = hsum8_256(h ? _mm512_extractf32x8_ps(acc[i][j], 1) : _mm512_castps512_ps256(acc[i][j])); \
                for (int kk = k8; kk < k; kk++) sum = fmaf(xr[kk], load1_##SUFFIX(row + kk), sum); \
                gk_store(c + (long)i * ldc + col, sum, scale, col, alpha, accumulate);            \
            }                                                                                     \
}                                                                                                 \
static GK_512 void avx512_##SUFFIX##_nk(int m, int n0, int n1, int k, const float *a, long lda,   \
                                        const void *wv, long ldw, const float *scale, float alpha,\
                                        float *c, long ldc, int accumulate) {                     \
    const T *w = (const T *)wv;                                                                   \
    int n = n0;                                                                                   \
    for (; n + 8 <= n1; n += 8) {                                                                 \
        int i = 0;                                                                                \
        for (; i + 4 <= m; i += 4)                                                                \
            nk_tile_##SUFFIX(4, 4, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,            \
                             c + (long)i * ldc, ldc, accumulate, i == 0 && n + 8 + NK_PREFETCH <= n1); \
        switch (m - i) {                                                                          \
        case 3: nk_tile_##SUFFIX(3, 4, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,        \
                                 c + (long)i * ldc, ldc, accumulate, i == 0 && n + 8 + NK_PREFETCH <= n1); break; \
        case 2: nk_tile_##SUFFIX(2, 4, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,        \
                                 c + (long)i * ldc, ldc, accumulate, i == 0 && n + 8 + NK_PREFETCH <= n1); break; \
        case 1: nk_tile_##SUFFIX(1, 4, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,        \
                                 c + (long)i * ldc, ldc, accumulate, i == 0 && n + 8 + NK_PREFETCH <= n1); break; \
        default: break;                                                                           \
        }                                                                                         \
    }                                                                                             \
    for (; n + 2 <= n1; n += 2)                                                                   \
        for (int i = 0; i < m; i++)                                                               \
            nk_tile_##SUFFIX(1, 1, n, k, a + (long)i * lda, lda, w, ldw, scale, alpha,            \
                             c + (long)i * ldc, ldc, accumulate, 0);                              \
    if (n < n1) avx2_set.kernel[DTYPE][GK_FORM_NK](m, n, n1, k, a, lda, wv, ldw, scale, alpha, c, ldc, accumulate); \
}

#define GK_KN_STREAM_512(T, SUFFIX) GK_KN_STREAM(T, SUFFIX, GK_512, __m512, 16, load16_, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_load_ps, _mm512_store_ps)
GK_KN_STREAM_512(float, f32)
GK_KN_STREAM_512(uint16_t, bf16)
GK_KN512(float, f32)
GK_KN512(uint16_t, bf16)
GK_NK512(float, f32, GK_F32)
GK_NK512(uint16_t, bf16, GK_BF16)

void gk_avx512_kernels(gk_kernel_set *set) {
    gk_avx2_kernels(&avx2_set);
    gk_avx2_kernels(set);
    set->kernel[GK_F32][GK_FORM_NK] = avx512_f32_nk;
    set->kernel[GK_BF16][GK_FORM_NK] = avx512_bf16_nk;
    set->kernel[GK_F32][GK_FORM_KN] = avx512_f32_kn;
    set->kernel[GK_BF16][GK_FORM_KN] = avx512_bf16_kn;
    gk_i8_kernels(set, GK_PATH_AVX512);
}
#endif
