// Element-wise transcendental steps of a transformer pass: the GELU family and the exponentials of
// a softmax. libm's scalar erff/expf/tanhf took about 8% of a ViT-base encoder pass; these are
// polynomial forms the compiler vectorizes, written once (GK_ELEMENTWISE) and compiled for each
// path with its target attributes. Built with -ffp-contract=off and without reassociation, every
// element goes through the same IEEE operations on every path, so all paths give the same bits
// (the softmax sum keeps 16 fixed partial sums, combined in a fixed order).
#include "internal.h"
#include <stdint.h>
#include <string.h>

#define GK_ELEMENTWISE(SUFFIX, ATTR)                                                                        \
/* exp(x), Cephes' expf: x = n·ln2 + r (ln2 split in two parts), a degree-6 polynomial in r, times 2^n; */ \
/* inputs clamped to [-87.3, 88] (2^n stays a normal float; exp(88) = 1.7e38 stands for larger); below */ \
/* -87.3 the result is 0, as -inf's must be in a masked softmax; NaN stays NaN (never reaches the int). */  \
static inline ATTR float exp_##SUFFIX(float x) {                                                            \
    float xc = x > -87.33654f ? x : -87.33654f;                                                             \
    xc = xc < 88.0f ? xc : 88.0f;                                                                           \
    float t = xc * 1.44269504088896341f + 0.5f;                                                             \
    int n = (int)t;                                                                                         \
    n -= (float)n > t;                                 /* floor */                                          \
    float fn = (float)n;                                                                                    \
    float r = xc - fn * 0.693359375f;                                                                       \
    r = r - fn * -2.12194440e-4f;                                                                           \
    float p = 1.9875691500e-4f;                                                                             \
    p = p * r + 1.3981999507e-3f;                                                                           \
    p = p * r + 8.3334519073e-3f;                                                                           \
    p = p * r + 4.1665795894e-2f;                                                                           \
    p = p * r + 1.6666665459e-1f;                                                                           \
    p = p * r + 5.0000001201e-1f;                                                                           \
    p = p * (r * r) + r + 1.0f;                                                                             \
    union { int32_t i; float f; } scale = { (n + 127) << 23 };                                              \
    float y = x < -87.33654f ? 0.0f : p * scale.f;                                                          \
    return x != x ? x : y;                                                                                  \
}                                                                                                           \
/* erf(x), Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7): 1 - poly(t)·exp(-x²), t = 1/(1 + p|x|). */    \
static inline ATTR float erf_##SUFFIX(float x) {                                                            \
    float ax = x < 0 ? -x : x;                                                                              \
    float t = 1.0f / (1.0f + 0.3275911f * ax);                                                              \
    float y = 1.061405429f;                                                                                 \
    y = y * t + -1.453152027f;                                                                              \
    y = y * t + 1.421413741f;                                                                               \
    y = y * t + -0.284496736f;                                                                              \
    y = y * t + 0.254829592f;                                                                               \
    y = 1.0f - y * t * exp_##SUFFIX(-ax * ax);                                                              \
    return x < 0 ? -y : y;                                                                                  \
}                                                                                                           \
/* tanh(y) = sign(y)·(1 - 2/(exp(2|y|) + 1)). */                                                              \
static inline ATTR float tanh_##SUFFIX(float y) {                                                           \
    float ay = y < 0 ? -y : y;                                                                              \
    float r = 1.0f - 2.0f / (exp_##SUFFIX(2.0f * ay) + 1.0f);                                               \
    return y < 0 ? -r : r;                                                                                  \
}                                                                                                           \
static ATTR void activate_##SUFFIX(int kind, float *x, long n) {                                            \
    switch (kind) {                                                                                         \
    case GK_ACT_GELU:                                                                                       \
        for (long i = 0; i < n; i++) { float v = x[i]; x[i] = 0.5f * v * (1.0f + erf_##SUFFIX(v * 0.70710678118654752f)); } \
        break;                                                                                              \
    case GK_ACT_GELU_TANH:                                                                                  \
        for (long i = 0; i < n; i++) {                                                                      \
            float v = x[i];                                                                                 \
            x[i] = 0.5f * v * (1.0f + tanh_##SUFFIX(0.7978845608028654f * (v + 0.044715f * v * v * v)));  \
        }                                                                                                   \
        break;                                                                                              \
    case GK_ACT_GELU_FAST:                                                                                  \
        for (long i = 0; i < n; i++) {                                                                      \
            float v = x[i];                                                                                 \
            x[i] = 0.5f * v * (1.0f + tanh_##SUFFIX(v * 0.7978845608f * (1.0f + 0.044715f * v * v)));      \
        }                                                                                                   \
        break;                                                                                              \
    case GK_ACT_QUICK_GELU:                                                                                 \
        for (long i = 0; i < n; i++) { float v = x[i]; x[i] = v / (1.0f + exp_##SUFFIX(-1.702f * v)); }     \
        break;                                                                                              \
    case GK_ACT_SILU:                                                                                       \
        for (long i = 0; i < n; i++) { float v = x[i]; x[i] = v / (1.0f + exp_##SUFFIX(-v)); }              \
        break;                                                                                              \
    }                                                                                                       \
}                                                                                                           \
static ATTR float exp_sum_##SUFFIX(float *x, long n, float shift) {                                         \
    float part[16] = { 0 };                                                                                 \
    long i = 0;                                                                                             \
    for (; i + 16 <= n; i += 16)                                                                            \
        for (int j = 0; j < 16; j++) { float e = exp_##SUFFIX(x[i + j] - shift); x[i + j] = e; part[j] += e; } \
    for (int j = 0; i < n; i++, j++) { float e = exp_##SUFFIX(x[i] - shift); x[i] = e; part[j] += e; }      \
    for (int w = 8; w >= 1; w /= 2)                                                                         \
        for (int j = 0; j < w; j++) part[j] += part[j + w];                                                 \
    return part[0];                                                                                         \
}

GK_ELEMENTWISE(portable, )
#ifdef GK_X86
GK_ELEMENTWISE(avx2, __attribute__((target("avx2,fma"))))
GK_ELEMENTWISE(avx512, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))))
#endif

void gk_activate_on(int path, int kind, float *x, long n) {
#ifdef GK_X86
    if (path == GK_PATH_AVX512) { activate_avx512(kind, x, n); return; }
    if (path == GK_PATH_AVX2) { activate_avx2(kind, x, n); return; }
#endif
    (void)path;
    activate_portable(kind, x, n);
}

float gk_exp_sum_on(int path, float *x, long n, float shift) {
#ifdef GK_X86
    if (path == GK_PATH_AVX512) return exp_sum_avx512(x, n, shift);
    if (path == GK_PATH_AVX2) return exp_sum_avx2(x, n, shift);
#endif
    (void)path;
    return exp_sum_portable(x, n, shift);
}

void gk_activate(int kind, float *x, long n) { gk_activate_on(gk_path(), kind, x, n); }
float gk_exp_sum(float *x, long n, float shift) { return gk_exp_sum_on(gk_path(), x, n, shift); }

// Blocks of 64 x 64 elements: a block's source rows and target rows all stay in L1, so each byte is
// read and written once from memory; bytes move 16 x 16 at a time in SSE2 registers (x86-64's
// baseline), four rounds of unpacks (a byte loop took ~80 ms of vit-gpt2 int8's load).
#define GK_TRANSPOSE_SCALAR(T, rb, re, cb, ce)                                                    \
    for (long c = cb; c < ce; c++)                                                                \
        for (long r = rb; r < re; r++) ((T *)dst)[c * rows + r] = ((const T *)src)[r * cols + c];

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
static inline void transpose16x16_u8(const uint8_t *src, long lds, uint8_t *dst, long ldd) {
    __m128i r[16], l[8], h[8], a[4][4], b[2][8];
    for (int i = 0; i < 16; i++) r[i] = _mm_loadu_si128((const __m128i *)(src + i * lds));
    for (int g = 0; g < 8; g++) {          // row pairs: columns 0-7 and 8-15 as 2-byte units
        l[g] = _mm_unpacklo_epi8(r[2 * g], r[2 * g + 1]);
        h[g] = _mm_unpackhi_epi8(r[2 * g], r[2 * g + 1]);
    }
    for (int q = 0; q < 4; q++) {          // row quads: four columns a register, 4 bytes each
        a[q][0] = _mm_unpacklo_epi16(l[2 * q], l[2 * q + 1]);
        a[q][1] = _mm_unpackhi_epi16(l[2 * q], l[2 * q + 1]);
        a[q][2] = _mm_unpacklo_epi16(h[2 * q], h[2 * q + 1]);
        a[q][3] = _mm_unpackhi_epi16(h[2 * q], h[2 * q + 1]);
    }
    for (int o = 0; o < 2; o++)            // row octets: two columns a register, 8 bytes each
        for (int c = 0; c < 4; c++) {
            b[o][2 * c] = _mm_unpacklo_epi32(a[2 * o][c], a[2 * o + 1][c]);
            b[o][2 * c + 1] = _mm_unpackhi_epi32(a[2 * o][c], a[2 * o + 1][c]);
        }
    for (int c = 0; c < 8; c++) {          // all 16 rows of columns 2c and 2c + 1
        _mm_storeu_si128((__m128i *)(dst + (2 * c) * ldd), _mm_unpacklo_epi64(b[0][c], b[1][c]));
        _mm_storeu_si128((__m128i *)(dst + (2 * c + 1) * ldd), _mm_unpackhi_epi64(b[0][c], b[1][c]));
    }
}
#endif

void gk_transpose_bytes(const void *src, void *dst, long rows, long cols, long r0, long r1) {
    for (long rb = r0; rb < r1; rb += 64) {
        long re = rb + 64 < r1 ? rb + 64 : r1;
        for (long cb = 0; cb < cols; cb += 64) {
            long ce = cb + 64 < cols ? cb + 64 : cols;
#if defined(__x86_64__) || defined(_M_X64)
            long rt = rb + (re - rb) / 16 * 16, ct = cb + (ce - cb) / 16 * 16;
            for (long r = rb; r < rt; r += 16)
                for (long c = cb; c < ct; c += 16)
                    transpose16x16_u8((const uint8_t *)src + r * cols + c, cols, (uint8_t *)dst + c * rows + r, rows);
            GK_TRANSPOSE_SCALAR(uint8_t, rb, rt, ct, ce)
            GK_TRANSPOSE_SCALAR(uint8_t, rt, re, cb, ce)
#else
            GK_TRANSPOSE_SCALAR(uint8_t, rb, re, cb, ce)
#endif
        }
    }
}
