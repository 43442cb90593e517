// The portable kernels: plain C defining the reduction order every other path reproduces bit for
// bit (see glimpse_kernels.h). fmaf keeps each step a single rounding, as the vector FMAs do.
#include "internal.h"
#include <string.h>

#define GK_PORTABLE(NAME, TYPE, LOAD)                                                              \
static void NAME##_nk(int m, int n0, int n1, int k, const float *a, long lda, const void *wv,      \
                      long ldw, const float *scale, float alpha, float *c, long ldc, int acc) {    \
    const TYPE *w = (const TYPE *)wv;                                                              \
    int k8 = k & ~7;                                                                               \
    for (int n = n0; n < n1; n++) {                                                                \
        const TYPE *row = w + (long)n * ldw;                                                       \
        for (int i = 0; i < m; i++) {                                                              \
            const float *x = a + (long)i * lda;                                                    \
            float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                 \
            for (int kk = 0; kk < k8; kk += 8)                                                     \
                for (int j = 0; j < 8; j++) s[j] = fmaf(x[kk + j], LOAD(row[kk + j]), s[j]);       \
            float sum = gk_combine8(s);                                                            \
            for (int kk = k8; kk < k; kk++) sum = fmaf(x[kk], LOAD(row[kk]), sum);                 \
            gk_store(c + (long)i * ldc + n, sum, scale, n, alpha, acc);                            \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
static void NAME##_kn(int m, int n0, int n1, int k, const float *a, long lda, const void *wv,      \
                      long ldw, const float *scale, float alpha, float *c, long ldc, int acc) {    \
    const TYPE *w = (const TYPE *)wv;                                                              \
    enum { NB = 64 };                                                                              \
    float sums[NB];                                                                                \
    for (int i = 0; i < m; i++) {                                                                  \
        const float *x = a + (long)i * lda;                                                        \
        for (int nb = n0; nb < n1; nb += NB) {                                                     \
            int width = n1 - nb < NB ? n1 - nb : NB;                                               \
            for (int j = 0; j < width; j++) sums[j] = 0;                                           \
            for (int kk = 0; kk < k; kk++) {                                                       \
                const TYPE *row = w + (long)kk * ldw + nb;                                         \
                float xv = x[kk];                                                                  \
                for (int j = 0; j < width; j++) sums[j] = fmaf(xv, LOAD(row[j]), sums[j]);         \
            }                                                                                      \
            for (int j = 0; j < width; j++)                                                        \
                gk_store(c + (long)i * ldc + nb + j, sums[j], scale, nb + j, alpha, acc);          \
        }                                                                                          \
    }                                                                                              \
}

#define GK_LOAD_F32(v) (v)
#define GK_LOAD_BF16(v) gk_bf16(v)
GK_PORTABLE(portable_f32, float, GK_LOAD_F32)
GK_PORTABLE(portable_bf16, uint16_t, GK_LOAD_BF16)

void gk_portable_kernels(gk_kernel_set *set) {
    set->kernel[GK_F32][GK_FORM_NK] = portable_f32_nk;
    set->kernel[GK_F32][GK_FORM_KN] = portable_f32_kn;
    set->kernel[GK_BF16][GK_FORM_NK] = portable_bf16_nk;
    set->kernel[GK_BF16][GK_FORM_KN] = portable_bf16_kn;
    gk_i8_kernels(set, GK_PATH_PORTABLE);
}

void gk_bf16_to_f32(const uint16_t *src, float *dst, long count) {
    for (long i = 0; i < count; i++) dst[i] = gk_bf16(src[i]);
}

void gk_f32_to_bf16(const float *src, uint16_t *dst, long count) {
    // Branch-free, so the compiler vectorizes it (it rounds every encoder activation for oneDNN).
    for (long i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, src + i, sizeof u);
        uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;   // to nearest, ties to even
        uint32_t quiet = (u >> 16) | 0x0040u;                        // NaN stays NaN (quiet)
        dst[i] = (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded);
    }
}
