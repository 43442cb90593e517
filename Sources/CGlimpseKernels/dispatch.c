// CPU features and the platform table (MLAS's MlasPlatform): filled once, on first use, from
// CPUID or $GLIMPSE_KERNEL, after a self-check of each vector path against the portable kernels.
#include "internal.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef GK_X86
#include <cpuid.h>
#endif

uint32_t gk_cpu_features(void) {
    uint32_t f = 0;
#ifdef GK_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (c & (1u << 0)) f |= GK_CPU_SSE3;
    int osxsave = (c & (1u << 27)) != 0;
    uint64_t xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
    int ymm = (xcr0 & 0x6) == 0x6;          // SSE + AVX state saved by the OS
    int zmm = ymm && (xcr0 & 0xE0) == 0xE0; // opmask + upper ZMM state
    if (ymm && (c & (1u << 28))) f |= GK_CPU_AVX;
    if (ymm && (c & (1u << 12))) f |= GK_CPU_FMA;
    if (ymm && (c & (1u << 29))) f |= GK_CPU_F16C;
    unsigned max = __get_cpuid_max(0, 0);
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (ymm && (b & (1u << 5))) f |= GK_CPU_AVX2;
        if (zmm) {
            if (b & (1u << 16)) f |= GK_CPU_AVX512F;
            if (b & (1u << 17)) f |= GK_CPU_AVX512DQ;
            if (b & (1u << 28)) f |= GK_CPU_AVX512CD;
            if (b & (1u << 30)) f |= GK_CPU_AVX512BW;
            if (b & (1u << 31)) f |= GK_CPU_AVX512VL;
            if (c & (1u << 11)) f |= GK_CPU_AVX512VNNI;
            if (d & (1u << 23)) f |= GK_CPU_AVX512FP16;
            unsigned a1, b1, c1, d1;
            __cpuid_count(7, 1, a1, b1, c1, d1);
            if (a1 & (1u << 5)) f |= GK_CPU_AVX512BF16;
        }
    }
#elif defined(__aarch64__)
    f |= GK_CPU_NEON;
#endif
    return f;
}

static const char *const names[GK_PATH_COUNT] = { "portable", "avx2", "avx512" };

const char *gk_path_name(int path) { return path >= 0 && path < GK_PATH_COUNT ? names[path] : "unknown"; }

static gk_kernel_set sets[GK_PATH_COUNT];
static int available[GK_PATH_COUNT];
static int current = GK_PATH_PORTABLE;
static char reason[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int cpu_supports(int path, uint32_t f) {
    const uint32_t avx512 = GK_CPU_AVX512F | GK_CPU_AVX512BW | GK_CPU_AVX512DQ | GK_CPU_AVX512VL;
    switch (path) {
    case GK_PATH_PORTABLE: return 1;
#ifdef GK_X86
    case GK_PATH_AVX2: return (f & (GK_CPU_AVX2 | GK_CPU_FMA)) == (GK_CPU_AVX2 | GK_CPU_FMA);
    case GK_PATH_AVX512: return (f & (GK_CPU_AVX2 | GK_CPU_FMA)) == (GK_CPU_AVX2 | GK_CPU_FMA) && (f & avx512) == avx512;
#endif
    default: (void)avx512; return 0;
    }
}

/// Each kernel of `path` on small odd-sized problems (every tile and tail) must equal the portable
/// kernels bit for bit; a path that does not is never selected.
static int self_check(int path) {
    enum { M = 5, N = 83, K = 29 };
    float a[M * K], wf[N * K], scale[N], ref[M * N], out[M * N];
    uint16_t wb[N * K];
    int8_t wi[N * K];
    uint32_t s = 12345;
    for (int i = 0; i < M * K; i++) { s = s * 1664525u + 1013904223u; a[i] = (float)((int)(s >> 9) % 2001 - 1000) / 997.0f; }
    for (int i = 0; i < N * K; i++) {
        s = s * 1664525u + 1013904223u;
        wf[i] = (float)((int)(s >> 9) % 2001 - 1000) / 1013.0f;
        wi[i] = (int8_t)((int)(s >> 13) % 255 - 127);
    }
    gk_f32_to_bf16(wf, wb, N * K);
    for (int n = 0; n < N; n++) scale[n] = 0.01f + 0.001f * (float)n;
    const void *weights[3] = { wf, wb, wi };
    // Five rows take the tiled kernels, three and one the few-row ones.
    const int rows[3] = { M, 3, 1 };
    for (int r = 0; r < 3; r++)
    for (int dtype = 0; dtype < 3; dtype++)
        for (int form = 0; form < 2; form++)
            for (int accumulate = 0; accumulate < 2; accumulate++) {
                long ldw = form == GK_FORM_NK ? K : N;
                const float *sc = dtype == GK_I8 ? scale : NULL;
                for (int i = 0; i < M * N; i++) ref[i] = out[i] = (float)i * 0.25f;
                sets[GK_PATH_PORTABLE].kernel[dtype][form](rows[r], 0, N, K, a, K, weights[dtype], ldw, sc, 0.75f, ref, N, accumulate);
                sets[path].kernel[dtype][form](rows[r], 0, N, K, a, K, weights[dtype], ldw, sc, 0.75f, out, N, accumulate);
                if (memcmp(ref, out, sizeof ref) != 0) return 0;
            }
    return 1;
}

static int parse_path(const char *text) {
    for (int p = 0; p < GK_PATH_COUNT; p++) if (strcmp(text, names[p]) == 0) return p;
    return -1;
}

static int best_available(void) {
    for (int p = GK_PATH_COUNT - 1; p > 0; p--) if (available[p]) return p;
    return GK_PATH_PORTABLE;
}

static void initialize(void) {
    uint32_t f = gk_cpu_features();
    gk_portable_kernels(&sets[GK_PATH_PORTABLE]);
    available[GK_PATH_PORTABLE] = 1;
#ifdef GK_X86
    gk_avx2_kernels(&sets[GK_PATH_AVX2]);
    gk_avx512_kernels(&sets[GK_PATH_AVX512]);
#endif
    char failed[64] = "";
    for (int p = 1; p < GK_PATH_COUNT; p++) {
        if (!cpu_supports(p, f)) continue;
        available[p] = self_check(p);
        if (!available[p]) { strncat(failed, " ", sizeof failed - strlen(failed) - 1); strncat(failed, names[p], sizeof failed - strlen(failed) - 1); }
    }
    int best = best_available();
    const char *env = getenv("GLIMPSE_KERNEL");
    if (env && *env) {
        int wanted = parse_path(env);
        if (wanted >= 0 && available[wanted]) {
            current = wanted;
            snprintf(reason, sizeof reason, "GLIMPSE_KERNEL=%s", env);
        } else {
            current = best;
            snprintf(reason, sizeof reason, "GLIMPSE_KERNEL=%s is %s here; widest available", env,
                     wanted < 0 ? "not a path (portable, avx2, avx512)" : "not available");
        }
    } else {
        current = best;
        snprintf(reason, sizeof reason, "widest path the CPU supports");
    }
    if (failed[0]) {
        size_t used = strlen(reason);
        snprintf(reason + used, sizeof reason - used, " (failed self-check:%s)", failed);
    }
}

static void ensure(void) { pthread_once(&once, initialize); }

int gk_best_path(void) { ensure(); return best_available(); }

int gk_path(void) { ensure(); return current; }
const char *gk_path_reason(void) { ensure(); return reason; }
int gk_path_available(int path) { ensure(); return path >= 0 && path < GK_PATH_COUNT && available[path]; }

int gk_set_path(int path) {
    ensure();
    if (!gk_path_available(path)) return 0;
    current = path;
    snprintf(reason, sizeof reason, "selected by the program");
    return 1;
}

void gk_matmul_on(int path, int dtype, int form, int m, int n0, int n1, int k,
                  const float *a, long lda, const void *w, long ldw, const float *scale,
                  float alpha, float *c, long ldc, int accumulate) {
    ensure();
    sets[path].kernel[dtype][form](m, n0, n1, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate);
}

void gk_matmul(int dtype, int form, int m, int n0, int n1, int k,
               const float *a, long lda, const void *w, long ldw, const float *scale,
               float alpha, float *c, long ldc, int accumulate) {
    gk_matmul_on(gk_path(), dtype, form, m, n0, n1, k, a, lda, w, ldw, scale, alpha, c, ldc, accumulate);
}

#ifdef GK_X86
float gk_sum_read_avx2(const float *src, long count);
#endif

float gk_sum_read(const float *src, long count) {
#ifdef GK_X86
    if (gk_cpu_features() & GK_CPU_AVX2) return gk_sum_read_avx2(src, count);
#endif
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    long i = 0;
    for (; i + 4 <= count; i += 4) { s0 += src[i]; s1 += src[i + 1]; s2 += src[i + 2]; s3 += src[i + 3]; }
    for (; i < count; i++) s0 += src[i];
    return (s0 + s1) + (s2 + s3);
}

static _Thread_local int counted_busy;
int gk_thread_counted_busy(void) { return counted_busy; }
void gk_set_thread_counted_busy(int counted) { counted_busy = counted; }

static _Thread_local int batch_invariant;
int gk_thread_batch_invariant(void) { return batch_invariant; }
void gk_set_thread_batch_invariant(int invariant) { batch_invariant = invariant; }
