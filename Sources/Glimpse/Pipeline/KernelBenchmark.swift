import COpenBLAS
import Foundation

/// Kernel-level measurements for `glimpse bench`: sgemm through Glimpse's path vs OpenBLAS called
/// directly at transformer shapes, and the machine's memory-copy bandwidth (the floor of a decoder step).
public enum KernelBenchmark {
    public struct GemmFigure: Sendable {
        public var m, n, k: Int
        public var glimpseGFLOPS: Double
        public var openBLASGFLOPS: Double
    }

    static func bestSeconds(repeats: Int, _ body: () -> Void) -> Double {
        body()  // warm-up
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = ContinuousClock.now
            body()
            best = min(best, milliseconds(since: start) / 1000)
        }
        return best
    }

    /// GFLOPS of C = A·Bᵀ (nn.Linear layout) for each shape, through `Linear` and through cblas_sgemm.
    public static func gemm(shapes: [(Int, Int, Int)] = [(197, 768, 768), (197, 3072, 768), (197, 768, 3072), (3, 50257, 768)],
                            repeats: Int = 5) -> [GemmFigure] {
        shapes.map { (m, n, k) in
            let a = Tensor(zeros: [m, k]), w = Tensor(zeros: [n, k]), bias = Tensor(zeros: [n]), c = Tensor(zeros: [m, n])
            for i in 0..<a.count { a.data[i] = Float(i % 7) * 0.01 }
            for i in 0..<w.count { w.data[i] = Float(i % 5) * 0.01 }
            let layer = Linear(weight: w, bias: bias, inFeatures: k, outFeatures: n, inputMajor: false)
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let ours = bestSeconds(repeats: repeats) { layer(a.data, rows: m, into: c.data) }
            let direct = bestSeconds(repeats: repeats) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1,
                            a.data, Int32(k), w.data, Int32(k), 0, c.data, Int32(n))
            }
            return GemmFigure(m: m, n: n, k: k, glimpseGFLOPS: flops / ours / 1e9, openBLASGFLOPS: flops / direct / 1e9)
        }
    }

    /// Memory-copy bandwidth in GB/s (bytes read + written per second) over a buffer larger than the caches.
    public static func copyBandwidth(megabytes: Int = 256) -> Double {
        let count = megabytes * 1 << 20 / 4
        let src = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let dst = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { src.deallocate(); dst.deallocate() }
        src.initialize(repeating: 1, count: count)
        dst.initialize(repeating: 0, count: count)
        let seconds = bestSeconds(repeats: 3) { dst.update(from: src, count: count) }
        return 2.0 * Double(count * 4) / seconds / 1e9
    }
}
