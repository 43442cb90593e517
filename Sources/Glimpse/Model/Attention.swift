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

    /// Heads run side by side on this many threads at most, each head's products single-threaded:
    /// an encoder head's products (197×197×64) ran no faster on OpenBLAS's two threads than on one.
    static func workerLimit(queryRows n: Int, keyRows m: Int, headDim d: Int, heads: Int) -> Int {
        n * m * d * heads >= parallelWork ? max(1, min(heads, SmallMatMul.cores, BLAS.threadBudget)) : 1
    }
    /// Multiply-adds below which a second thread costs more than it saves. A GPT-2-small beam-3
    /// step's cross-attention (3 × 197 × 64 × 12 = 454k) is above it: splitting its heads took a
    /// 16-token int8 caption from 221 to 210 ms (`glimpse bench`, median of 4); a greedy step's
    /// (151k) and the default model's (231k at beam 3) stay on one thread.
    static let parallelWork = 1 << 18

    /// Floats `scores` must hold for `attend` on operands of these sizes.
    static func scoreFloats(queryRows n: Int, keyRows m: Int, headDim d: Int, heads: Int) -> Int {
        workerLimit(queryRows: n, keyRows: m, headDim: d, heads: heads) * n * m
    }

    /// out[queryRows, heads·headDim] (row stride `outStride`) = softmax(scale · Q·Kᵀ + mask) · V per head.
    /// `scores` must hold `scoreFloats(...)` floats (at least queryRows·keyRows). When `weights` is
    /// given, the attention probabilities are also stored there as [heads, queryRows, keyRows].
    /// Heads are independent, so the result is the same on any number of threads.
    static func attend(_ o: Operands, into out: UnsafeMutablePointer<Float>, outStride: Int,
                       scores: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>? = nil) {
        let n = o.queryRows, m = o.keyRows
        let workers = min(workerLimit(queryRows: n, keyRows: m, headDim: o.headDim, heads: o.heads), SmallMatMul.idleThreads)
        guard workers > 1 else {
            for h in 0..<o.heads { head(h, o, into: out, outStride: outStride, scores: scores, weights: weights) }
            return
        }
        Parallel.forEach(iterations: workers) { t in
            for h in stride(from: t, to: o.heads, by: workers) {
                head(h, o, into: out, outStride: outStride, scores: scores + t * n * m, weights: weights, parallel: false)
            }
        }
    }

    private static func head(_ h: Int, _ o: Operands, into out: UnsafeMutablePointer<Float>, outStride: Int,
                             scores: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>?,
                             parallel: Bool = true) {
        let n = o.queryRows, m = o.keyRows, d = o.headDim
        // scores = scale · Q_h · K_hᵀ      (torch: attn_weights = q @ k.transpose(-1, -2) * scale)
        BLAS.gemm(m: n, n: m, k: d, a: o.query + h * d, lda: o.queryStride,
                  b: o.key + h * d, ldb: o.keyStride, transposeB: true,
                  c: scores, ldc: m, alpha: o.scale, parallel: parallel)
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
                  c: out + h * d, ldc: outStride, parallel: parallel)
    }
}
