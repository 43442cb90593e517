// Few-row products with int8 weights, in integers: each activation row is quantized to int16 with
// its own scale, products of int16 activations and int8 weights accumulate exactly in int32, and
// the sum is scaled back once per output. Widening every int8 weight to fp32 and doing one fp32 FMA
// per row (the fp32/bf16 kernels' way) made the step compute-bound at 4-5 G weights/s a core; pairs
// of int16 products (pmaddwd, AVX512_VNNI's vpdpwssd) do 32 products per instruction and leave the
// step to memory bandwidth. Integer sums are exact in any order, so every path (portable, AVX2,
// AVX-512 with or without VNNI) gives the same bits, and a row's result never depends on its batch.
//
// Per row m: amax = max_k |A[m, k]|, qmax = gk_i8_qmax(K) (at most 32767, and small enough that
// K · 128 · qmax fits in int32), q[k] = A[m, k] · (qmax / amax) rounded to nearest even,
// rowscale = amax / qmax; C[m, n] = ((float)Σ_k q[k] · W(n, k) · rowscale) · scale[n] · alpha.
// A row of zeros gives zeros (so does one whose max |a| is below qmax / FLT_MAX, ~1e-34, where
// qmax / amax would overflow); a row with a NaN or infinity gives NaN.
#include "internal.h"
#include <float.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef GK_X86
#include <immintrin.h>
#endif

static int gk_i8_qmax(int k) {
    long bound = 2147483647L / (128L * (k > 0 ? k : 1));
    return (int)(bound < 32767 ? (bound > 0 ? bound : 1) : 32767);
}

/// Activation rows padded with zeros to a multiple of 64 (the widest load; tails need no mask).
static long padded(int k) { return ((long)k + 63) & ~63L; }

static void gk_i8_quantize_row(int k, const float *a, int16_t *q, long kpad, float *rowscale) {
    float amax = 0;
    int finite = 1;
    for (int i = 0; i < k; i++) {
        float v = fabsf(a[i]);
        finite &= v <= FLT_MAX;
        amax = v > amax ? v : amax;
    }
    int qmax = gk_i8_qmax(k);
    float inv = (float)qmax / amax, limit = (float)qmax;
    // A row of zeros, or one so small that qmax / amax overflows (max |a| below ~1e-34), is zeros.
    if (!finite || !(inv <= FLT_MAX)) {
        memset(q, 0, sizeof(int16_t) * (size_t)kpad);
        *rowscale = finite ? 0 : NAN;
        return;
    }
    // Round to nearest even by the 1.5·2^23 shift (exact for |y| < 2^22; |y| <= qmax here): plain
    // adds, so the loop vectorizes on any x86-64 where rintf would be a library call.
    const float shift = 12582912.0f;
    for (int i = 0; i < k; i++) {
        float y = (a[i] * inv + shift) - shift;
        y = y > limit ? limit : (y < -limit ? -limit : y);
        q[i] = (int16_t)y;
    }
    for (long i = k; i < kpad; i++) q[i] = 0;
    *rowscale = amax / (float)qmax;
}

// Per-thread scratch for the quantized rows (grown when a larger product comes, kept after: no
// allocation in the decode loop once warm; freed when the thread ends).
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local void *scratch;
static _Thread_local size_t scratch_bytes;
static void free_scratch(void *buffer) {
    free(buffer);
    scratch = NULL;
    scratch_bytes = 0;
}
static void make_scratch_key(void) { pthread_key_create(&scratch_key, free_scratch); }

static void *scratch_of(size_t bytes) {
    if (bytes <= scratch_bytes) return scratch;
    pthread_once(&scratch_once, make_scratch_key);
    size_t size = (bytes + 4095) & ~(size_t)4095;
    void *fresh = aligned_alloc(64, size);
    if (!fresh) return NULL;
    free(scratch);
    scratch = fresh;
    scratch_bytes = size;
    pthread_setspecific(scratch_key, fresh);
    return fresh;
}

/// The inner kernel of a path: C for rows < m and columns [n0, n1) from quantized rows.
typedef void (*i8_inner)(int m, int n0, int n1, int k, const int16_t *q, long ldq, const float *rowscale,
                         const int8_t *w, long ldw, const float *scale, float alpha, float *c, long ldc,
                         int accumulate, int32_t *work);

/// KN kernels keep partial sums of `m` rows × this many int32 columns (L1-sized) in `work`.
static int kn_chunk(int m) {
    int cw = (6144 / (m > 0 ? m : 1)) / 32 * 32;
    return cw < 32 ? 32 : cw;
}

static inline void store_i8(float *c, int32_t acc, float rowscale, const float *scale, int n, float alpha,
                            int accumulate) {
    gk_store(c, (float)acc * rowscale, scale, n, alpha, accumulate);
}

// Portable: the definition, the vector KN kernels' column tails, and the fallback when scratch
// cannot be had (quantizes row by row).
static void portable_nk(int m, int n0, int n1, int k, const int16_t *q, long ldq, const float *rs,
                        const int8_t *w, long ldw, const float *scale, float alpha, float *c, long ldc,
                        int accumulate, int32_t *work) {
    (void)work;
    for (int n = n0; n < n1; n++) {
        const int8_t *row = w + (long)n * ldw;
        for (int i = 0; i < m; i++) {
            const int16_t *x = q + (long)i * ldq;
            int32_t acc = 0;
            for (int kk = 0; kk < k; kk++) acc += (int32_t)x[kk] * row[kk];
            store_i8(c + (long)i * ldc + n, acc, rs[i], scale, n, alpha, accumulate);
        }
    }
}

static void portable_kn(int m, int n0, int n1, int k, const int16_t *q, long ldq, const float *rs,
                        const int8_t *w, long ldw, const float *scale, float alpha, float *c, long ldc,
                        int accumulate, int32_t *work) {
    (void)work;
    enum { NB = 64 };
    int32_t sums[NB];
    for (int i = 0; i < m; i++) {
        const int16_t *x = q + (long)i * ldq;
        for (int nb = n0; nb < n1; nb += NB) {
            int width = n1 - nb < NB ? n1 - nb : NB;
            memset(sums, 0, sizeof sums);
            for (int kk = 0; kk < k; kk++) {
                const int8_t *row = w + (long)kk * ldw + nb;
                int32_t xv = x[kk];
                for (int j = 0; j < width; j++) sums[j] += xv * row[j];
            }
            for (int j = 0; j < width; j++) store_i8(c + (long)i * ldc + nb + j, sums[j], rs[i], scale, nb + j, alpha, accumulate);
        }
    }
}

#ifdef GK_X86
// ---- AVX2: pmaddwd on 16 int16 (8 pairs) per instruction.
#define I8_AVX2 __attribute__((target("avx2,fma")))
#define I8_AVX2_INLINE static inline __attribute__((always_inline)) I8_AVX2

I8_AVX2_INLINE int32_t hsum8_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

I8_AVX2_INLINE void avx2_nk_tile(int mt, int nt, int n, int k, const int16_t *q, long ldq, const float *rs,
                                 const int8_t *w, long ldw, const float *scale, float alpha, float *c, long ldc,
                                 int accumulate) {
    __m256i acc[4][2];
    for (int i = 0; i < mt; i++) for (int j = 0; j < nt; j++) acc[i][j] = _mm256_setzero_si256();
    int k16 = k & ~15;
    for (int j = 0; j < nt; j++)   // one weight row after the other (see the AVX-512 tile)
        for (int kk = 0; kk < k16; kk += 16) {
            __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + (long)(n + j) * ldw + kk)));
            for (int i = 0; i < mt; i++)
                acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(
                    _mm256_loadu_si256((const __m256i *)(q + (long)i * ldq + kk)), wv));
        }
    for (int i = 0; i < mt; i++)
        for (int j = 0; j < nt; j++) {
            const int8_t *row = w + (long)(n + j) * ldw;
            const int16_t *x = q + (long)i * ldq;
            int32_t sum = hsum8_epi32(acc[i][j]);
            for (int kk = k16; kk < k; kk++) sum += (int32_t)x[kk] * row[kk];
            store_i8(c + (long)i * ldc + n + j, sum, rs[i], scale, n + j, alpha, accumulate);
        }
}

static I8_AVX2 void avx2_nk(int m, int n0, int n1, int k, const int16_t *q, long ldq, const float *rs,
                            const int8_t *w, long ldw, const float *scale, float alpha, float *c, long ldc,
                            int accumulate, int32_t *work) {
    (void)work;
    int n = n0;
    for (; n + 2 <= n1; n += 2) {
        int i = 0;
        for (; i + 4 <= m; i += 4)
            avx2_nk_tile(4, 2, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate);
        switch (m - i) {
        case 3: avx2_nk_tile(3, 2, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate); break;
        case 2: avx2_nk_tile(2, 2, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate); break;
        case 1: avx2_nk_tile(1, 2, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate); break;
        default: break;
        }
    }
    for (; n < n1; n++)
        for (int i = 0; i < m; i++)
            avx2_nk_tile(1, 1, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate);
}

// KN form: two weight rows k, k+1 interleaved byte by byte and widened give 8 outputs × (k, k+1)
// pairs per register; the activation pair (q[k], q[k+1]) is one 32-bit broadcast. Partial sums of a
// chunk of columns wait in `work` (L1) while eight weight rows at a time stream past.
I8_AVX2_INLINE void avx2_pairs(const int8_t *r0, const int8_t *r1, __m256i *lo, __m256i *hi) {
    __m128i a0 = _mm_loadu_si128((const __m128i *)r0);
    __m128i a1 = r1 ? _mm_loadu_si128((const __m128i *)r1) : _mm_setzero_si128();
    *lo = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a0, a1));
    *hi = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(a0, a1));
}

I8_AVX2_INLINE int32_t pair_of(const int16_t *x) {
    int32_t v;
    memcpy(&v, x, sizeof v);
    return v;
}

static I8_AVX2 void avx2_kn(int m, int n0, int n1, int k, const int16_t *q, long ldq, const float *rs,
                            const int8_t *w, long ldw, const float *scale, float alpha, float *c, long ldc,
                            int accumulate, int32_t *work) {
    int cw = kn_chunk(m);
    for (int c0 = n0; c0 < n1; c0 += cw) {
        int width = n1 - c0 < cw ? n1 - c0 : cw, nv = width / 16;
        memset(work, 0, sizeof(int32_t) * (size_t)m * (size_t)(nv * 16));
        for (int kk = 0; kk < k; kk += 8) {
            int pairs = (k - kk + 1) / 2 < 4 ? (k - kk + 1) / 2 : 4;
            for (int v = 0; v < nv; v++) {
                __m256i lo[4], hi[4];
                for (int p = 0; p < pairs; p++) {
                    const int8_t *r0 = w + (long)(kk + 2 * p) * ldw + c0 + 16 * v;
                    avx2_pairs(r0, kk + 2 * p + 1 < k ? r0 + ldw : NULL, &lo[p], &hi[p]);
                }
                for (int i = 0; i < m; i++) {
                    int32_t *s = work + ((long)i * nv + v) * 16;
                    __m256i slo = _mm256_loadu_si256((const __m256i *)s), shi = _mm256_loadu_si256((const __m256i *)(s + 8));
                    for (int p = 0; p < pairs; p++) {
                        __m256i x = _mm256_set1_epi32(pair_of(q + (long)i * ldq + kk + 2 * p));
                        slo = _mm256_add_epi32(slo, _mm256_madd_epi16(x, lo[p]));
                        shi = _mm256_add_epi32(shi, _mm256_madd_epi16(x, hi[p]));
                    }
                    _mm256_storeu_si256((__m256i *)s, slo);
                    _mm256_storeu_si256((__m256i *)(s + 8), shi);
                }
            }
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < nv * 16; j++)
                store_i8(c + (long)i * ldc + c0 + j, work[(long)i * nv * 16 + j], rs[i], scale, c0 + j, alpha, accumulate);
        portable_kn(m, c0 + nv * 16, c0 + width, k, q, ldq, rs, w, ldw, scale, alpha, c, ldc, accumulate, NULL);
    }
}

// ---- AVX-512: 32 products per instruction, vpdpwssd where AVX512_VNNI is present, else
// vpmaddwd + vpaddd (the same sums: no pair can overflow, see gk_i8_qmax).
#define I8_512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define I8_VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")))
#define DP_VNNI(acc, x, w) _mm512_dpwssd_epi32(acc, x, w)
#define DP_512(acc, x, w) _mm512_add_epi32(acc, _mm512_madd_epi16(x, w))

// NK form: a tile of MT rows × NT weight rows; 32 k per step (the last step masked).
#define I8_NK512(NAME, ATTR, DP)                                                                  \
static inline __attribute__((always_inline)) ATTR void NAME##_tile(                               \
        int mt, int nt, int n, int k, const int16_t *q, long ldq, const float *rs, const int8_t *w, \
        long ldw, const float *scale, float alpha, float *c, long ldc, int accumulate) {          \
    __m512i acc[4][4];                                                                            \
    for (int i = 0; i < mt; i++) for (int j = 0; j < nt; j++) acc[i][j] = _mm512_setzero_si512(); \
    /* One weight row after the other: the tile's rows are adjacent in memory, so the loads run   \
       straight through it (interleaving the rows 32 k at a time, with software prefetches,        \
       streamed 8-9 G weights/s from memory on one core; this order 14-19, `make bench`). */      \
    for (int j = 0; j < nt; j++) {                                                                \
        const int8_t *row = w + (long)(n + j) * ldw;                                              \
        for (int kk = 0; kk < k; kk += 32) {                                                      \
            __mmask32 mask = k - kk >= 32 ? 0xFFFFFFFFu : (1u << (k - kk)) - 1;                   \
            __m512i wv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, row + kk));           \
            for (int i = 0; i < mt; i++) acc[i][j] = DP(acc[i][j], _mm512_loadu_si512(q + (long)i * ldq + kk), wv); \
        }                                                                                         \
    }                                                                                             \
    for (int i = 0; i < mt; i++)                                                                  \
        for (int j = 0; j < nt; j++)                                                              \
            store_i8(c + (long)i * ldc + n + j, _mm512_reduce_add_epi32(acc[i][j]), rs[i], scale, n + j, alpha, accumulate); \
}                                                                                                 \
static ATTR void NAME(int m, int n0, int n1, int k, const int16_t *q, long ldq, const float *rs,  \
                      const int8_t *w, long ldw, const float *scale, float alpha, float *c, long ldc, \
                      int accumulate, int32_t *work) {                                            \
    (void)work;                                                                                   \
    int n = n0;                                                                                   \
    for (; n + 4 <= n1; n += 4) {                                                                 \
        int i = 0;                                                                                \
        for (; i + 4 <= m; i += 4)                                                                \
            NAME##_tile(4, 4, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate); \
        switch (m - i) {                                                                          \
        case 3: NAME##_tile(3, 4, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate); break; \
        case 2: NAME##_tile(2, 4, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate); break; \
        case 1: NAME##_tile(1, 4, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate); break; \
        default: break;                                                                           \
        }                                                                                         \
    }                                                                                             \
    for (; n < n1; n++)                                                                           \
        for (int i = 0; i < m; i++)                                                               \
            NAME##_tile(1, 1, n, k, q + (long)i * ldq, ldq, rs + i, w, ldw, scale, alpha, c + (long)i * ldc, ldc, accumulate); \
}

// KN form: as the AVX2 one with 32 columns per step. Interleaving bytes works within 128-bit
// lanes, so the low register holds columns 0-7 and 16-23, the high one 8-15 and 24-31; `work`
// keeps them in that order and the epilogue puts each back in its column.
#define I8_KN512(NAME, ATTR, DP)                                                                  \
static inline __attribute__((always_inline)) ATTR void NAME##_pairs(const int8_t *r0, const int8_t *r1, \
                                                                   __m512i *lo, __m512i *hi) {    \
    __m256i a0 = _mm256_loadu_si256((const __m256i *)r0);                                         \
    __m256i a1 = r1 ? _mm256_loadu_si256((const __m256i *)r1) : _mm256_setzero_si256();           \
    *lo = _mm512_cvtepi8_epi16(_mm256_unpacklo_epi8(a0, a1));                                     \
    *hi = _mm512_cvtepi8_epi16(_mm256_unpackhi_epi8(a0, a1));                                     \
}                                                                                                 \
/* Weight rows kk .. kk + 2·PAIRS (the last one absent when odd) into the partial sums of every   \
   row for 32·nv columns from c0. */                                                              \
static inline __attribute__((always_inline)) ATTR void NAME##_rows(                               \
        int pairs, int odd, int m, int nv, int kk, int k, int c0, const int16_t *q, long ldq,     \
        const int8_t *w, long ldw, int32_t *work) {                                               \
    for (int v = 0; v < nv; v++) {                                                                \
        __m512i lo[4], hi[4];                                                                     \
        for (int p = 0; p < pairs; p++) {                                                         \
            const int8_t *r0 = w + (long)(kk + 2 * p) * ldw + c0 + 32 * v;                        \
            NAME##_pairs(r0, odd && p == pairs - 1 ? NULL : r0 + ldw, &lo[p], &hi[p]);            \
            if (pairs == 4 && kk + 16 <= k && v % 2 == 0) {                                       \
                _mm_prefetch((const char *)(r0 + 8 * ldw), _MM_HINT_T0);                          \
                _mm_prefetch((const char *)(r0 + 9 * ldw), _MM_HINT_T0);                          \
            }                                                                                     \
        }                                                                                         \
        for (int i = 0; i < m; i++) {                                                             \
            int32_t *s = work + ((long)i * nv + v) * 32;                                          \
            const int16_t *x = q + (long)i * ldq + kk;                                            \
            __m512i slo = _mm512_loadu_si512(s), shi = _mm512_loadu_si512(s + 16);                \
            for (int p = 0; p < pairs; p++) {                                                     \
                int32_t pair;                                                                     \
                memcpy(&pair, x + 2 * p, sizeof pair);                                            \
                __m512i b = _mm512_set1_epi32(pair);                                              \
                slo = DP(slo, b, lo[p]);                                                          \
                shi = DP(shi, b, hi[p]);                                                          \
            }                                                                                     \
            _mm512_storeu_si512(s, slo);                                                          \
            _mm512_storeu_si512(s + 16, shi);                                                     \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
static ATTR void NAME(int m, int n0, int n1, int k, const int16_t *q, long ldq, const float *rs,  \
                      const int8_t *w, long ldw, const float *scale, float alpha, float *c, long ldc, \
                      int accumulate, int32_t *work) {                                            \
    static const int8_t column[32] = { 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23,   \
                                       8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31 }; \
    int cw = kn_chunk(m);                                                                         \
    for (int c0 = n0; c0 < n1; c0 += cw) {                                                        \
        int width = n1 - c0 < cw ? n1 - c0 : cw, nv = width / 32;                                 \
        memset(work, 0, sizeof(int32_t) * (size_t)m * (size_t)(nv * 32));                         \
        int kk = 0;                                                                               \
        for (; kk + 8 <= k; kk += 8) NAME##_rows(4, 0, m, nv, kk, k, c0, q, ldq, w, ldw, work);   \
        for (; kk + 2 <= k; kk += 2) NAME##_rows(1, 0, m, nv, kk, k, c0, q, ldq, w, ldw, work);   \
        if (kk < k) NAME##_rows(1, 1, m, nv, kk, k, c0, q, ldq, w, ldw, work);                   \
        for (int i = 0; i < m; i++)                                                               \
            for (int v = 0; v < nv; v++)                                                          \
                for (int l = 0; l < 32; l++) {                                                    \
                    int n = c0 + 32 * v + column[l];                                              \
                    store_i8(c + (long)i * ldc + n, work[((long)i * nv + v) * 32 + l], rs[i], scale, n, alpha, accumulate); \
                }                                                                                 \
        portable_kn(m, c0 + nv * 32, c0 + width, k, q, ldq, rs, w, ldw, scale, alpha, c, ldc, accumulate, NULL); \
    }                                                                                             \
}

I8_NK512(avx512_nk, I8_512, DP_512)
I8_KN512(avx512_kn, I8_512, DP_512)
I8_NK512(vnni_nk, I8_VNNI, DP_VNNI)
I8_KN512(vnni_kn, I8_VNNI, DP_VNNI)
#endif

/// Quantizes the rows into this thread's scratch and runs `nk`/`kn` on them.
static void i8_product(i8_inner nk, i8_inner kn, int form, int m, int n0, int n1, int k, const float *a, long lda,
                       const void *wv, long ldw, const float *scale, float alpha, float *c, long ldc, int accumulate) {
    if (m <= 0 || n1 <= n0) return;
    long kpad = padded(k);
    size_t qbytes = sizeof(int16_t) * (size_t)m * (size_t)kpad, rbytes = sizeof(float) * (size_t)(m + 16);
    size_t wbytes = form == GK_FORM_KN ? sizeof(int32_t) * (size_t)m * (size_t)kn_chunk(m) : 0;
    char *base = scratch_of(qbytes + rbytes + wbytes);
    if (!base) {   // out of memory: one row at a time on the stack-free portable kernels
        for (int i = 0; i < m; i++) {
            int16_t *q = malloc(sizeof(int16_t) * (size_t)kpad);
            float rs;
            if (!q) { for (int n = n0; n < n1; n++) c[(long)i * ldc + n] = NAN; continue; }
            gk_i8_quantize_row(k, a + (long)i * lda, q, kpad, &rs);
            (form == GK_FORM_KN ? portable_kn : portable_nk)(1, n0, n1, k, q, kpad, &rs, wv, ldw, scale, alpha,
                                                           c + (long)i * ldc, ldc, accumulate, NULL);
            free(q);
        }
        return;
    }
    int16_t *q = (int16_t *)base;
    float *rs = (float *)(base + qbytes);
    int32_t *work = (int32_t *)(base + qbytes + rbytes);
    for (int i = 0; i < m; i++) gk_i8_quantize_row(k, a + (long)i * lda, q + (long)i * kpad, kpad, rs + i);
    (form == GK_FORM_KN ? kn : nk)(m, n0, n1, k, q, kpad, rs, wv, ldw, scale, alpha, c, ldc, accumulate, work);
}

#define I8_ENTRY(NAME, NK, KN)                                                                    \
static void NAME##_i8_nk(int m, int n0, int n1, int k, const float *a, long lda, const void *w, long ldw, \
                         const float *scale, float alpha, float *c, long ldc, int accumulate) {   \
    i8_product(NK, KN, GK_FORM_NK, m, n0, n1, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate); \
}                                                                                                 \
static void NAME##_i8_kn(int m, int n0, int n1, int k, const float *a, long lda, const void *w, long ldw, \
                         const float *scale, float alpha, float *c, long ldc, int accumulate) {   \
    i8_product(NK, KN, GK_FORM_KN, m, n0, n1, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate); \
}
I8_ENTRY(portable, portable_nk, portable_kn)
#ifdef GK_X86
I8_ENTRY(avx2, avx2_nk, avx2_kn)
I8_ENTRY(avx512, avx512_nk, avx512_kn)
I8_ENTRY(vnni, vnni_nk, vnni_kn)
#endif

void gk_i8_kernels(gk_kernel_set *set, int path) {
    gk_kernel nk = portable_i8_nk, kn = portable_i8_kn;
#ifdef GK_X86
    if (path == GK_PATH_AVX2) { nk = avx2_i8_nk; kn = avx2_i8_kn; }
    if (path == GK_PATH_AVX512) {
        int vnni = (gk_cpu_features() & GK_CPU_AVX512VNNI) != 0;
        nk = vnni ? vnni_i8_nk : avx512_i8_nk;
        kn = vnni ? vnni_i8_kn : avx512_i8_kn;
    }
#else
    (void)path;
#endif
    set->kernel[GK_I8][GK_FORM_NK] = nk;
    set->kernel[GK_I8][GK_FORM_KN] = kn;
}
