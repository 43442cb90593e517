#ifndef GLIMPSE_DNNL_H
#define GLIMPSE_DNNL_H
// Large matrix products through oneDNN (Debian's libdnnl), whose matmul picks the CPU's
// instructions at run time, with weights packed once into its blocked layout (OpenBLAS repacks the
// weights on every call: a fifth of an encoder pass's product time).
// - bf16 / int8 weights: AMX tiles or AVX512_BF16 dot products. OpenBLAS has no such kernels in
//   Debian 12's 0.3.21: there, reduced-precision weights are widened to fp32 and multiplied in fp32.
//   Activations are rounded to bf16 (round to nearest even) and products accumulate in fp32: the
//   error of a result is within about 2^-8 of sum_k |a[m,k] * W(n,k)|.
// - fp32 weights: fp32 activations, fp32 products and sums (no implicit down-conversion).
//
// Computes, as glimpse_kernels.h does, for rows m < M and every output column n:
//     C[m, n] = scale[n] * sum_k A[m, k] * W(n, k)   (+ C[m, n] when accumulate)
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/// oneDNN's version and the implementation its matmul with `dtype` weights (0 fp32, 1 bf16, 2 int8 as
/// bf16) takes on this CPU (e.g. "oneDNN 2.6.3: brg:avx512_core_amx_bf16"), or why there is none.
const char *gd_description(int dtype);
/// Whether such a matmul can be created on this CPU at all (any implementation).
int gd_supported(int dtype);

/// Weights packed once into the layout oneDNN's matmul reads fastest. `dtype`: 0 = fp32, 1 = bf16, 2 = int8
/// (with `scale` [n], one factor per output column). `output_major`: W stored as [n, k] rows
/// (nn.Linear), else as [k, n] rows (GPT-2 Conv1D); `ldw` is the stored row stride in elements.
/// Returns NULL when oneDNN cannot (unsupported CPU, memory).
typedef struct gd_weights gd_weights;
gd_weights *gd_weights_create(int dtype, int output_major, int n, int k, const void *w, long ldw, const float *scale);
void gd_weights_destroy(gd_weights *weights);
/// Bytes the packed copy holds.
long gd_weights_bytes(const gd_weights *weights);

/// C[m rows, stride ldc] as above from A[m rows, stride lda] (fp32). Safe to call from several
/// threads at once. Returns 0 on success, nonzero when oneDNN failed (C is then unchanged).
int gd_matmul(gd_weights *weights, int m, const float *a, long lda, float *c, long ldc, int accumulate);

/// Threads of the calling thread's next oneDNN products (its OpenMP team size).
void gd_set_threads(int count);

#ifdef __cplusplus
}
#endif
#endif
