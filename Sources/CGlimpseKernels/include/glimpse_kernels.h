#ifndef GLIMPSE_KERNELS_H
#define GLIMPSE_KERNELS_H
// Glimpse's own matrix-product kernels for few activation rows (decode steps: M up to ~32), in the
// manner of ONNX Runtime's MLAS: one kernel per instruction set in its own file (per-function
// target attributes, so the target builds for any x86-64 or arm64), and one platform table filled
// once from CPUID. Swift reaches them only through Tensor/BLAS.swift (the one matrix-product door).
//
// Every kernel computes, for rows m < M and output columns n in [n0, n1):
//     C[m, n] = alpha * scale[n] * sum_k A[m, k] * W(n, k)   (+ C[m, n] when accumulate)
// where W is stored either as [N, K] rows (GK_FORM_NK: nn.Linear and lm_head layout) or as
// [K, N] rows (GK_FORM_KN: GPT-2 Conv1D layout), in fp32, bf16 or int8 (scale = per-output-channel
// dequantization factor, NULL for fp32/bf16). Each weight row is read once for all M rows.
// The fp32 and bf16 kernels widen each weight to fp32 and accumulate by fp32 FMA:
//
// The reduction order is fixed per output element and identical on every path, so a row's result
// never depends on M, on which other rows share the call, on the column split between threads, or
// on the instruction set (results are bitwise equal across paths):
//   GK_FORM_KN: acc = 0; for k in 0..<K: acc = fma(A[m,k], W[k,n], acc)
//   GK_FORM_NK: eight partial sums s[j] = fma chains over k = 8c + j (k < K & ~7), combined as
//               ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)), then the tail k >= K & ~7 by fma in order.
// Then r = r * alpha, C = accumulate ? C + r : r.
//
// int8 weights (matmul_i8.c) are the exception: each activation row is quantized to int16 with its
// own scale and the products are summed exactly in int32 (any order gives the same sum), then
//   r = ((float)Σ_k q[m, k] · W(n, k) · rowscale[m]) · scale[n], r = r * alpha, store as above;
// q, rowscale and the bound that keeps the sum inside int32 are defined in matmul_i8.c.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// CPU features (OS support of the register state included: AVX needs XCR0 bits 1-2, AVX-512 5-7).
enum {
    GK_CPU_SSE3 = 1 << 0,
    GK_CPU_AVX = 1 << 1,
    GK_CPU_AVX2 = 1 << 2,
    GK_CPU_FMA = 1 << 3,
    GK_CPU_AVX512F = 1 << 4,
    GK_CPU_AVX512BW = 1 << 5,
    GK_CPU_AVX512DQ = 1 << 6,
    GK_CPU_AVX512VL = 1 << 7,
    GK_CPU_AVX512CD = 1 << 8,
    GK_CPU_AVX512BF16 = 1 << 9,
    GK_CPU_AVX512VNNI = 1 << 10,
    GK_CPU_AVX512FP16 = 1 << 11,
    GK_CPU_NEON = 1 << 12,
    GK_CPU_F16C = 1 << 13,
};
/// This CPU's features (cpuid + xgetbv on x86-64, NEON on arm64).
uint32_t gk_cpu_features(void);

enum { GK_F32 = 0, GK_BF16 = 1, GK_I8 = 2 };
enum { GK_FORM_NK = 0, GK_FORM_KN = 1 };

/// Dispatch paths, widest last.
enum { GK_PATH_PORTABLE = 0, GK_PATH_AVX2 = 1, GK_PATH_AVX512 = 2, GK_PATH_COUNT = 3 };

/// The widest path this CPU (and build) supports.
int gk_best_path(void);
/// The path in use: filled once (first call) from gk_best_path(), or from $GLIMPSE_KERNEL
/// (portable | avx2 | avx512) when set and supported. A path whose start-up self-check disagrees
/// with the portable kernels is never used (the next narrower one is).
int gk_path(void);
/// Whether `path` is supported here (CPU and build) and passed its self-check.
int gk_path_available(int path);
/// Selects `path` for later calls (tests; returns 0 when unavailable, leaving the path unchanged).
int gk_set_path(int path);
/// "portable", "avx2", "avx512".
const char *gk_path_name(int path);
/// Why the current path was chosen (environment, CPU, self-check), for --verbose and bench.
const char *gk_path_reason(void);

/// C[0..<m, n0..<n1] as described above, on the current path. `w` points at element (0, 0) of the
/// stored matrix, `ldw` is its row stride in elements; `scale` has N entries (int8) or is NULL.
void gk_matmul(int dtype, int form, int m, int n0, int n1, int k,
               const float *a, long lda, const void *w, long ldw, const float *scale,
               float alpha, float *c, long ldc, int accumulate);

/// Same on an explicit path (tests and benchmarks); the path must be available.
void gk_matmul_on(int path, int dtype, int form, int m, int n0, int n1, int k,
                  const float *a, long lda, const void *w, long ldw, const float *scale,
                  float alpha, float *c, long ldc, int accumulate);

/// Large products with bf16 or int8 weights (either form) on AVX512_BF16 dot products
/// (matmul_bf16dot.c): C[m, n] = scale[n] · Σ_k bf16(A[m, k]) · W(n, k) (+ C when accumulate), for
/// m < M and n in [n0, n1). The activations are rounded to bf16 (round to nearest even) and packed
/// once per product by gk_bf16dot_pack into gk_bf16dot_packed_count(M, K) elements; products
/// accumulate in fp32, one chain over k pairs in order per output element, so a row's result does
/// not depend on M or on the column split. Only where gk_bf16dot_supported() (CPUID, and a start-up
/// self-check against a double-precision product).
int gk_bf16dot_supported(void);
long gk_bf16dot_block(int k);
long gk_bf16dot_packed_count(int m, int k);
/// Elements of the staging tile one gk_bf16dot_matmul call needs (one per concurrent call).
long gk_bf16dot_stage_count(int k);
void gk_bf16dot_pack(int m, int k, const float *a, long lda, uint16_t *packed);
void gk_bf16dot_matmul(int dtype, int form, int m, int n0, int n1, int k, const uint16_t *packed, const void *w,
                       long ldw, const float *scale, float *c, long ldc, int accumulate, uint16_t *stage);

/// Widens `count` bf16 / int8 (times scale) values to fp32 (large products: weights converted
/// panel by panel for OpenBLAS). For int8, `scale` is applied per element: out[i] = q[i] * scale[i / per].
void gk_bf16_to_f32(const uint16_t *src, float *dst, long count);
/// dst[c, r] = src[r, c] for rows r0 ..< r1 of a [rows, cols] matrix of bytes (int8 weights), in
/// cache-sized blocks; a caller splits the rows across threads.
void gk_transpose_bytes(const void *src, void *dst, long rows, long cols, long r0, long r1);
/// Rounds fp32 to bf16, round-to-nearest-even (NaN kept quiet).
void gk_f32_to_bf16(const float *src, uint16_t *dst, long count);

/// Activations of transformers' ACT2FN computed in place over `n` floats on the current path:
/// GELU exact (erf to 1.5e-7: within 1.5e-7·(1+|x|) plus float rounding of the exact form), its tanh
/// forms, quick GELU and SiLU. Bitwise equal on every path.
enum { GK_ACT_GELU = 0, GK_ACT_GELU_TANH = 1, GK_ACT_GELU_FAST = 2, GK_ACT_QUICK_GELU = 3, GK_ACT_SILU = 4 };
void gk_activate(int kind, float *x, long n);
void gk_activate_on(int path, int kind, float *x, long n);
/// x[i] = exp(x[i] - shift) in place; returns their sum (16 partial sums in a fixed order). A
/// softmax row's exponentials; bitwise equal on every path.
float gk_exp_sum(float *x, long n, float shift);
float gk_exp_sum_on(int path, float *x, long n, float shift);

/// Whether the calling thread is counted among the busy threads that keep cores occupied outside
/// products (a per-thread flag: such a thread's own products may still use its core).
int gk_thread_counted_busy(void);
void gk_set_thread_counted_busy(int counted);

/// Whether the calling thread runs a decoder step, whose products must give each row the same bits
/// however many rows share them (the few-row kernels at any M); a per-thread flag.
int gk_thread_batch_invariant(void);
void gk_set_thread_batch_invariant(int invariant);

/// A task of a parallel job: `task` runs from 0 to the job's task count - 1.
typedef void (*gk_task_fn)(void *ctx, int task);
/// Runs fn(ctx, 0 ..< tasks) on the calling thread and the pool's workers (pool.c: spinning
/// workers, so jobs of a few microseconds split well) and returns when all are done. Runs them on
/// the calling thread alone when the pool is busy with another caller's job, from inside a task,
/// or for more than 65535 tasks.
void gk_parallel_for(int tasks, gk_task_fn fn, void *ctx);

/// Read-only memory bandwidth: sums `count` floats of `src` (wide loads, no stores), returns the sum
/// so the reads cannot be optimized away.
float gk_sum_read(const float *src, long count);

#ifdef __cplusplus
}
#endif
#endif
