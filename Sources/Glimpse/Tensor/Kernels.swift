import CGlimpseKernels
import Foundation

/// Element-wise and row-wise kernels of a transformer forward pass, on raw row-major buffers.
/// Matrix products are in `BLAS`; these are the memory-bound steps between them.
public enum Kernels {
    /// Splits `rows` across both cores when the work is large enough to pay for the dispatch.
    @inline(__always)
    static func forEachRowChunk(rows: Int, cols: Int, _ body: (Range<Int>) -> Void) {
        let work = rows * cols
        let chunks = (work >= 1 << 16 && rows >= 2) ? min(rows, ProcessInfo.processInfo.activeProcessorCount) : 1
        if chunks == 1 { body(0..<rows); return }
        Parallel.forEach(iterations: chunks) { c in
            let lo = rows * c / chunks, hi = rows * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }

    /// out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta   (torch.nn.LayerNorm, biased variance)
    public static func layerNorm(_ x: UnsafePointer<Float>, rows: Int, dim: Int,
                                 gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float,
                                 into out: UnsafeMutablePointer<Float>) {
        forEachRowChunk(rows: rows, cols: dim) { range in
            for r in range {
                let src = x + r * dim, dst = out + r * dim
                var sum: Float = 0
                for i in 0..<dim { sum += src[i] }
                let mean = sum / Float(dim)
                var sq: Float = 0
                for i in 0..<dim { let d = src[i] - mean; sq += d * d }
                let inv = 1 / (sq / Float(dim) + eps).squareRoot()
                for i in 0..<dim { dst[i] = (src[i] - mean) * inv * gamma[i] + beta[i] }
            }
        }
    }

    /// Activations named as in transformers' ACT2FN.
    public enum Activation: String, Sendable {
        case gelu                    // the erf form: 0.5·x·(1 + erf(x/√2)), erf to 1.5e-7 (elementwise.c)
        case geluNew = "gelu_new"    // tanh approximation (GPT-2)
        case geluPytorchTanh = "gelu_pytorch_tanh"
        case geluFast = "gelu_fast"
        case quickGelu = "quick_gelu"
        case relu
        case silu

        public init(name: String) throws {
            switch name {
            case "gelu_python": self = .gelu
            case "swish": self = .silu
            default:
                guard let act = Activation(rawValue: name) else { throw ModelError.unsupported("activation '\(name)'") }
                self = act
            }
        }
    }

    public static func activate(_ x: UnsafeMutablePointer<Float>, count: Int, _ act: Activation) {
        forEachRowChunk(rows: max(1, count / 1024), cols: 1024) { range in
            let lo = range.lowerBound * 1024
            let hi = range.upperBound == max(1, count / 1024) ? count : range.upperBound * 1024
            apply(act, x + lo, hi - lo)
        }
    }

    @inline(__always)
    static func apply(_ act: Activation, _ x: UnsafeMutablePointer<Float>, _ n: Int) {
        // Vectorized polynomial forms (CGlimpseKernels, bitwise equal on every path); relu needs none.
        switch act {
        case .gelu: gk_activate(Int32(GK_ACT_GELU), x, n)
        case .geluNew, .geluPytorchTanh: gk_activate(Int32(GK_ACT_GELU_TANH), x, n)
        case .geluFast: gk_activate(Int32(GK_ACT_GELU_FAST), x, n)
        case .quickGelu: gk_activate(Int32(GK_ACT_QUICK_GELU), x, n)
        case .relu: for i in 0..<n where x[i] < 0 { x[i] = 0 }
        case .silu: gk_activate(Int32(GK_ACT_SILU), x, n)
        }
    }

    /// In-place numerically stable softmax over `cols` for each row.
    @inline(__always)
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        for r in 0..<rows {
            let row = x + r * cols
            var maxv = -Float.infinity
            for i in 0..<cols where row[i] > maxv { maxv = row[i] }
            if maxv == -.infinity { for i in 0..<cols { row[i] = 0 }; continue }
            let inv = 1 / gk_exp_sum(row, cols, maxv)
            for i in 0..<cols { row[i] *= inv }
        }
    }

    /// log_softmax of one row, into `out` (computed in Float, like torch's float32 log_softmax);
    /// `out` must not overlap `x` (it holds the exponentials on the way).
    public static func logSoftmax(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
        var maxv = -Float.infinity
        for i in 0..<count where x[i] > maxv { maxv = x[i] }
        // The exponentials go through `out` on the vector path (a vocabulary row: 50257 libm expf
        // calls were 0.2 ms a row, a tenth of a beam-3 decode step of GPT-2 small).
        out.update(from: x, count: count)
        let sum = gk_exp_sum(out, count, maxv)
        let lse = maxv + logf(sum)
        for i in 0..<count { out[i] = x[i] - lse }
    }

    /// x += y (residual connection)
    @inline(__always)
    public static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { x[i] += y[i] }
    }

    /// Fills each of `rows` rows of `out` with `bias` (so a following gemm with beta = 1 adds the product).
    @inline(__always)
    public static func broadcastRows(_ bias: UnsafePointer<Float>, rows: Int, cols: Int,
                                     into out: UnsafeMutablePointer<Float>, rowStride: Int? = nil) {
        let stride = rowStride ?? cols
        for r in 0..<rows { (out + r * stride).update(from: bias, count: cols) }
    }

    /// Copies row `index` of an embedding table [vocab × dim].
    @inline(__always)
    public static func embeddingRow(_ table: UnsafePointer<Float>, index: Int, dim: Int,
                                    into out: UnsafeMutablePointer<Float>) {
        out.update(from: table + index * dim, count: dim)
    }
}
