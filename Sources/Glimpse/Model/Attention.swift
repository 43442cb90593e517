import Foundation

/// Multi-head scaled dot-product attention: the one routine every encoder, decoder and
/// cross-attention layer in Glimpse calls. Buffers are row-major with explicit row strides so
/// callers can pass slices of fused projections (e.g. GPT-2's c_attn output [rows, 3·E]) and KV caches.
enum Attention {
    struct Operands {
        var query: UnsafePointer<Float>
        var queryStride: Int
        var key: UnsafePointer<Float>
        var keyStride: Int
        var value: UnsafePointer<Float>
        var valueStride: Int
        var queryRows: Int
        var keyRows: Int
        var heads: Int
        var headDim: Int
        var scale: Float
        /// Query row i may attend keys 0 ... causalOffset + i (nil: no mask).
        var causalOffset: Int?
    }

    /// out[queryRows, heads·headDim] (row stride `outStride`) = softmax(scale · Q·Kᵀ + mask) · V per head.
    /// `scores` must hold queryRows·keyRows floats. When `weights` is given, the attention
    /// probabilities are also stored there as [heads, queryRows, keyRows].
    static func attend(_ o: Operands, into out: UnsafeMutablePointer<Float>, outStride: Int,
                       scores: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>? = nil) {
        let n = o.queryRows, m = o.keyRows, d = o.headDim
        for h in 0..<o.heads {
            // scores = scale · Q_h · K_hᵀ      (torch: attn_weights = q @ k.transpose(-1, -2) * scale)
            BLAS.gemm(m: n, n: m, k: d, a: o.query + h * d, lda: o.queryStride,
                      b: o.key + h * d, ldb: o.keyStride, transposeB: true,
                      c: scores, ldc: m, alpha: o.scale)
            if let offset = o.causalOffset {
                for i in 0..<n {
                    let first = offset + i + 1
                    if first < m { for j in first..<m { scores[i * m + j] = -.infinity } }
                }
            }
            Kernels.softmaxRows(scores, rows: n, cols: m)
            if let weights { (weights + h * n * m).update(from: scores, count: n * m) }
            // out_h = P · V_h
            BLAS.gemm(m: n, n: d, k: m, a: scores, lda: m,
                      b: o.value + h * d, ldb: o.valueStride,
                      c: out + h * d, ldc: outStride)
        }
    }
}
