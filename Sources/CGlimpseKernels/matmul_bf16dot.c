// Large products with bf16 or int8 weights on AVX512_BF16 dot products (VDPBF16PS): the encoder's
// products and any product of more rows than the few-row kernels take. Each instruction multiplies
// 16 lanes × 2 bf16 pairs and accumulates in fp32: twice fp32 FMA's work per instruction.
//
// Layout: the lanes run over activation rows, not output columns. A is rounded to bf16 and packed
// once per product (gk_bf16dot_pack: blocks of 16 rows, for each pair of k the 16 rows' pairs side
// by side), so the weights are read in their stored layout with no packing at load time: in [N, K]
// a weight pair (W[n, 2j], W[n, 2j+1]) is one 32-bit broadcast. int8 rows are widened to bf16 (exact:
// |q| <= 128 has 8 significant bits), and [K, N] (Conv1D) columns gathered, into a small staging
// tile of 12 weight rows first ([K, N] pairs interleaved across the 12 columns, so gathering is a few
// vector steps per pair of rows); an int8 scale multiplies the finished sum.
//
// Each output element is one fp32 chain over k pairs in order, whatever M, the tile it falls in or
// the column split, so a row's result does not depend on which rows share the call.
#include "internal.h"
#include <math.h>
#include <pthread.h>
#include <string.h>
#ifdef GK_X86
#include <immintrin.h>

#define GK_DOT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define GK_DOT_INLINE static inline __attribute__((always_inline)) GK_DOT

enum { DOT_NT = 12, DOT_ROWS = 32 };

// Rows m0..m0+16·mv of the tile (mv blocks of 16 packed rows, `block` u32 apart) × columns
// n..n+nt, whose weights are at wr[0..nt) (kp bf16 pairs each, `ps` elements from one pair to the next:
// 2 for weight rows, 2·DOT_NT for the pair-interleaved [K, N] staging tile).
GK_DOT_INLINE void dot_tile(int mv, int nt, int kp, const uint32_t *pa, long block, const uint16_t *const *wr,
                            long ps, float out[2][DOT_NT][16]) {
    __m512 acc[2][DOT_NT];
    for (int i = 0; i < mv; i++)
        for (int j = 0; j < nt; j++) acc[i][j] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
        __m512i x[2];
        for (int i = 0; i < mv; i++) x[i] = _mm512_loadu_si512((const void *)(pa + (long)i * block + (long)p * 16));
        for (int j = 0; j < nt; j++) {
            int32_t pair;
            memcpy(&pair, wr[j] + ps * (long)p, 4);
            __m512i wv = _mm512_set1_epi32(pair);
            for (int i = 0; i < mv; i++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)x[i], (__m512bh)wv);
        }
    }
    for (int i = 0; i < mv; i++)
        for (int j = 0; j < nt; j++) _mm512_storeu_ps(out[i][j], acc[i][j]);
}

static void dot_tile_2x12(int kp, const uint32_t *pa, long block, const uint16_t *const *wr, long ps,
                          float out[2][DOT_NT][16]) GK_DOT;
static void dot_tile_2x12(int kp, const uint32_t *pa, long block, const uint16_t *const *wr, long ps,
                          float out[2][DOT_NT][16]) {
    dot_tile(2, DOT_NT, kp, pa, block, wr, ps, out);
}
static void dot_tile_1x12(int kp, const uint32_t *pa, long block, const uint16_t *const *wr, long ps,
                          float out[2][DOT_NT][16]) GK_DOT;
static void dot_tile_1x12(int kp, const uint32_t *pa, long block, const uint16_t *const *wr, long ps,
                          float out[2][DOT_NT][16]) {
    dot_tile(1, DOT_NT, kp, pa, block, wr, ps, out);
}
static void dot_tile_any(int mv, int nt, int kp, const uint32_t *pa, long block, const uint16_t *const *wr,
                         long ps, float out[2][DOT_NT][16]) GK_DOT;
static void dot_tile_any(int mv, int nt, int kp, const uint32_t *pa, long block, const uint16_t *const *wr,
                         long ps, float out[2][DOT_NT][16]) {
    // Column remainders (N not a multiple of 12): one column at a time keeps the chain order.
    for (int j = 0; j < nt; j++) {
        float one[2][DOT_NT][16];
        if (mv == 2) dot_tile(2, 1, kp, pa, block, wr + j, ps, one);
        else dot_tile(1, 1, kp, pa, block, wr + j, ps, one);
        for (int i = 0; i < mv; i++) memcpy(out[i][j], one[i][0], sizeof one[i][0]);
    }
}

static int self_check(void);
static int available;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void initialize(void) {
    const uint32_t need = GK_CPU_AVX512F | GK_CPU_AVX512BW | GK_CPU_AVX512DQ | GK_CPU_AVX512VL | GK_CPU_AVX512BF16;
    available = (gk_cpu_features() & need) == need && self_check();
}

int gk_bf16dot_supported(void) {
    pthread_once(&once, initialize);
    return available;
}

static void pack_rows(int m0, int rows, int k, const float *a, long lda, uint16_t *dst) GK_DOT;
static void pack_rows(int m0, int rows, int k, const float *a, long lda, uint16_t *dst) {
    // dst: one 16-row block; element (row r, k index q) at ((q / 2) * 16 + r) * 2 + (q & 1).
    int kp = (k + 1) / 2;
    memset(dst, 0, (size_t)kp * 32 * sizeof(uint16_t));
    for (int r = 0; r < rows; r++) {
        const float *src = a + (long)(m0 + r) * lda;
        int q = 0;
        for (; q + 32 <= k; q += 32) {
            // 32 floats -> 32 bf16 (round to nearest even), then scattered two by two into the lanes.
            __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + q + 16), _mm512_loadu_ps(src + q));
            uint32_t pairs[16];
            _mm512_storeu_si512((void *)pairs, (__m512i)h);
            uint32_t *out = (uint32_t *)dst + (long)(q / 2) * 16 + r;
            for (int t = 0; t < 16; t++) out[t * 16] = pairs[t];
        }
        for (; q < k; q++) {
            uint16_t b;
            gk_f32_to_bf16(src + q, &b, 1);
            dst[((long)(q / 2) * 16 + r) * 2 + (q & 1)] = b;
        }
    }
}

void gk_bf16dot_pack(int m, int k, const float *a, long lda, uint16_t *packed) {
    long block = gk_bf16dot_block(k);
    for (int m0 = 0, b = 0; m0 < m; m0 += 16, b++)
        pack_rows(m0, m - m0 < 16 ? m - m0 : 16, k, a, lda, packed + b * block * 2);
}

static void widen_i8_rows(const int8_t *w, long ldw, int n, int nt, int k, uint16_t *stage, long stride) GK_DOT;
static void widen_i8_rows(const int8_t *w, long ldw, int n, int nt, int k, uint16_t *stage, long stride) {
    for (int j = 0; j < nt; j++) {
        const int8_t *src = w + (long)(n + j) * ldw;
        uint16_t *dst = stage + j * stride;
        int q = 0;
        for (; q + 16 <= k; q += 16) {
            __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(src + q))));
            _mm256_storeu_si256((__m256i *)(dst + q), (__m256i)_mm512_cvtneps_pbh(f));
        }
        for (; q < k; q++) { float f = (float)src[q]; gk_f32_to_bf16(&f, dst + q, 1); }
        if (k & 1) dst[k] = 0;
    }
}

// [K, N] (Conv1D) weights: columns n..n+nt (nt <= 12) as bf16 pairs, interleaved so that one pair of
// rows is one vector step: stage[(p · DOT_NT + j) · 2 + h] = W[2p + h, n + j] (0 past K). Masked
// loads read only the tile's columns.
static void gather_kn_columns(int dtype, const void *w, long ldw, int n, int nt, int k, uint16_t *stage) GK_DOT;
static void gather_kn_columns(int dtype, const void *w, long ldw, int n, int nt, int k, uint16_t *stage) {
    const __mmask16 mask = (__mmask16)((1u << nt) - 1);
    for (int q = 0; q < k; q += 2) {
        uint16_t *dst = stage + (long)(q / 2) * DOT_NT * 2;
        int second = q + 1 < k;
        if (dtype == GK_I8) {
            const int8_t *r0 = (const int8_t *)w + (long)q * ldw + n;
            __m128i a0 = _mm_maskz_loadu_epi8(mask, r0);
            __m128i a1 = second ? _mm_maskz_loadu_epi8(mask, r0 + ldw) : _mm_setzero_si128();
            // int8 values are exact in bf16: the upper half of their fp32 form.
            __m256bh lo = _mm512_cvtneps_pbh(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_unpacklo_epi8(a0, a1))));
            __m256bh hi = _mm512_cvtneps_pbh(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_unpackhi_epi8(a0, a1))));
            _mm256_storeu_si256((__m256i *)dst, (__m256i)lo);
            _mm_storeu_si128((__m128i *)(dst + 16), _mm256_castsi256_si128((__m256i)hi));
        } else {
            const uint16_t *r0 = (const uint16_t *)w + (long)q * ldw + n;
            __m128i a0 = _mm_maskz_loadu_epi16((__mmask8)mask, r0), b0 = _mm_maskz_loadu_epi16((__mmask8)(mask >> 8), r0 + 8);
            __m128i a1 = _mm_setzero_si128(), b1 = _mm_setzero_si128();
            if (second) {
                a1 = _mm_maskz_loadu_epi16((__mmask8)mask, r0 + ldw);
                b1 = _mm_maskz_loadu_epi16((__mmask8)(mask >> 8), r0 + ldw + 8);
            }
            _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi16(a0, a1));
            _mm_storeu_si128((__m128i *)(dst + 8), _mm_unpackhi_epi16(a0, a1));
            _mm_storeu_si128((__m128i *)(dst + 16), _mm_unpacklo_epi16(b0, b1));
        }
    }
}

void gk_bf16dot_matmul(int dtype, int form, int m, int n0, int n1, int k, const uint16_t *packed, const void *w,
                       long ldw, const float *scale, float *c, long ldc, int accumulate, uint16_t *stage) {
    const int kp = (k + 1) / 2;
    const long block = gk_bf16dot_block(k);
    // Column tiles outer, all rows inner: each tile's weights are read (and int8 ones widened) once;
    // the packed activations come from L2/L3 for every tile (blocking rows into L2-sized passes
    // measured the same, 185-199 GFLOPS a core at encoder shapes, and widened int8 tiles once per pass).
    // Staging for int8 rows and [K, N] columns, and for bf16 rows when k is odd (the last pair's
    // second half must be 0, not the next row's first weight).
    const int stage_rows = dtype == GK_I8 || (k & 1) || form == GK_FORM_KN;
    const long stride = 2L * kp;
    float out[2][DOT_NT][16];
    const uint16_t *wr[DOT_NT];
    for (int n = n0; n < n1; n += DOT_NT) {
        int nt = n1 - n < DOT_NT ? n1 - n : DOT_NT;
        if (form == GK_FORM_KN) {
            gather_kn_columns(dtype, w, ldw, n, nt, k, stage);
        } else if (dtype == GK_I8) {
            widen_i8_rows((const int8_t *)w, ldw, n, nt, k, stage, stride);
        } else if (k & 1) {
            for (int j = 0; j < nt; j++) {
                memcpy(stage + j * stride, (const uint16_t *)w + (long)(n + j) * ldw, (size_t)k * 2);
                stage[j * stride + k] = 0;
            }
        }
        const long ps = form == GK_FORM_KN ? 2 * DOT_NT : 2;
        for (int j = 0; j < nt; j++)
            wr[j] = form == GK_FORM_KN ? stage + 2 * j : stage_rows ? stage + j * stride : (const uint16_t *)w + (long)(n + j) * ldw;
        for (int m0 = 0; m0 < m; m0 += DOT_ROWS) {
            int rows = m - m0 < DOT_ROWS ? m - m0 : DOT_ROWS;
            int mv = rows > 16 ? 2 : 1;
            const uint32_t *pa = (const uint32_t *)packed + (long)(m0 / 16) * block;
            if (nt == DOT_NT && mv == 2) dot_tile_2x12(kp, pa, block, wr, ps, out);
            else if (nt == DOT_NT) dot_tile_1x12(kp, pa, block, wr, ps, out);
            else dot_tile_any(mv, nt, kp, pa, block, wr, ps, out);
            for (int r = 0; r < rows; r++) {
                float *dst = c + (long)(m0 + r) * ldc + n;
                const float *src = &out[r / 16][0][r % 16];
                for (int j = 0; j < nt; j++) {
                    float v = src[j * 16];
                    if (scale) v *= scale[n + j];
                    dst[j] = accumulate ? dst[j] + v : v;
                }
            }
        }
    }
}
// Start-up check on a small odd-sized problem (row and column remainders, odd K, both weight types
// and forms): every result within 1e-5 of Σ|a·w| of a double-precision product of the
// bf16-rounded activations, or the kernels are never used.
static int self_check(void) {
    enum { M = 19, N = 29, K = 37 };
    float a[M * K], c[M * N], scale[N];
    uint16_t packed[((M + 15) / 16) * ((K + 1) / 2) * 32], wb[N * K], ab[M * K], stage[12 * (K + 1)];
    int8_t wi[N * K];
    uint32_t s = 2463534242u;
    for (int i = 0; i < M * K; i++) { s ^= s << 13; s ^= s >> 17; s ^= s << 5; a[i] = (float)((int)(s % 2001) - 1000) / 613.0f; }
    for (int i = 0; i < N * K; i++) {
        s ^= s << 13; s ^= s >> 17; s ^= s << 5;
        float f = (float)((int)(s % 2001) - 1000) / 877.0f;
        gk_f32_to_bf16(&f, wb + i, 1);
        wi[i] = (int8_t)((int)(s % 255) - 127);
    }
    for (int n = 0; n < N; n++) scale[n] = 0.02f + 0.001f * (float)n;
    gk_f32_to_bf16(a, ab, M * K);
    gk_bf16dot_pack(M, K, a, K, packed);
    for (int dtype = GK_BF16; dtype <= GK_I8; dtype++)
        for (int form = GK_FORM_NK; form <= GK_FORM_KN; form++) {
            const void *w = dtype == GK_BF16 ? (const void *)wb : (const void *)wi;
            long ldw = form == GK_FORM_NK ? K : N;   // the same buffer read as [N, K] or [K, N]
            const float *sc = dtype == GK_I8 ? scale : NULL;
            gk_bf16dot_matmul(dtype, form, M, 0, N, K, packed, w, ldw, sc, c, N, 0, stage);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    double exact = 0, magnitude = 0;
                    for (int q = 0; q < K; q++) {
                        long i = form == GK_FORM_NK ? (long)n * K + q : (long)q * N + n;
                        double wv = dtype == GK_BF16 ? gk_bf16(wb[i]) : (double)wi[i] * scale[n];
                        double term = (double)gk_bf16(ab[m * K + q]) * wv;
                        exact += term;
                        magnitude += fabs(term);
                    }
                    if (!(fabs((double)c[m * N + n] - exact) <= 1e-5 * magnitude + 1e-30)) return 0;
                }
        }
    return 1;
}
#else
int gk_bf16dot_supported(void) { return 0; }
void gk_bf16dot_pack(int m, int k, const float *a, long lda, uint16_t *packed) {
    (void)m; (void)k; (void)a; (void)lda; (void)packed;
}
void gk_bf16dot_matmul(int dtype, int form, int m, int n0, int n1, int k, const uint16_t *packed, const void *w,
                       long ldw, const float *scale, float *c, long ldc, int accumulate, uint16_t *stage) {
    (void)dtype; (void)form; (void)stage; (void)m; (void)n0; (void)n1; (void)k; (void)packed; (void)w; (void)ldw; (void)scale; (void)c;
    (void)ldc; (void)accumulate;
}
#endif

long gk_bf16dot_block(int k) { return (long)((k + 1) / 2) * 16; }

long gk_bf16dot_packed_count(int m, int k) { return (long)((m + 15) / 16) * gk_bf16dot_block(k) * 2; }

long gk_bf16dot_stage_count(int k) { return 12L * 2 * ((k + 1) / 2); }
