import CGlimpseKernels
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
            let layer = Linear(weight: WeightMatrix(w, layout: .outputMajor), bias: bias)
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let ours = bestSeconds(repeats: repeats) { layer(a.data, rows: m, into: c.data) }
            let direct = bestSeconds(repeats: repeats) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1,
                            a.data, Int32(k), w.data, Int32(k), 0, c.data, Int32(n))
            }
            return GemmFigure(m: m, n: n, k: k, glimpseGFLOPS: flops / ours / 1e9, openBLASGFLOPS: flops / direct / 1e9)
        }
    }

    /// One decode-shape product: OpenBLAS fp32 against Glimpse's kernels in each element type.
    public struct ProductFigure: Sendable {
        public var m, n, k: Int
        public var layout: WeightMatrix.Layout
        /// Milliseconds: OpenBLAS fp32 (called directly), then Glimpse's kernels fp32, bf16, int8.
        public var openBLAS, fp32, bf16, int8: Double
        /// What the door runs for fp32 at this M ("glimpse avx2" or "openblas").
        public var doorPath: String
        public func gflops(_ ms: Double) -> Double { 2.0 * Double(m * n * k) / (ms / 1000) / 1e9 }
    }

    /// Decode-step products (M activation rows × a [n, k] layer) for each M: OpenBLAS fp32 vs
    /// Glimpse's kernels with fp32, bf16 and int8 weights (best of `repeats`, after a warm-up).
    public static func products(shapes: [(n: Int, k: Int, layout: WeightMatrix.Layout)] =
                                    [(768, 768, .inputMajor), (3072, 768, .inputMajor), (768, 3072, .inputMajor),
                                     (768, 768, .outputMajor), (50257, 768, .outputMajor)],
                                rows: [Int] = [1, 3, 8, 16, 32], repeats: Int = 3) -> [ProductFigure] {
        var figures: [ProductFigure] = []
        for shape in shapes {
            let (n, k) = (shape.n, shape.k), count = n * k
            let stored = Tensor(zeros: shape.layout == .outputMajor ? [n, k] : [k, n])
            for i in 0..<count { stored.data[i] = Float(i % 17 - 8) * 0.01 }
            let fp32 = WeightMatrix(stored, layout: shape.layout)
            let bits = TensorStorage(count: (count + 1) / 2)   // bf16 storage
            let bf16Base = UnsafeMutableRawPointer(bits.pointer).bindMemory(to: UInt16.self, capacity: count)
            gk_f32_to_bf16(stored.data, bf16Base, count)
            let bytes = TensorStorage(count: (count + 3) / 4)   // int8 storage
            let q = UnsafeMutableRawPointer(bytes.pointer).bindMemory(to: Int8.self, capacity: count)
            for i in 0..<count { q[i] = Int8(i % 255 - 127) }
            let scales = Tensor(shape: [n], values: [Float](repeating: 0.01, count: n))
            let bf16 = WeightMatrix(element: .bf16, layout: shape.layout, outFeatures: n, inFeatures: k,
                                    base: UnsafeRawPointer(bf16Base), owner: bits, scales: nil)
            let int8 = WeightMatrix(element: .int8, layout: shape.layout, outFeatures: n, inFeatures: k,
                                    base: UnsafeRawPointer(q), owner: bytes, scales: scales)
            for m in rows {
                let a = Tensor(zeros: [m, k]), c = Tensor(zeros: [m, n])
                for i in 0..<a.count { a.data[i] = Float(i % 7) * 0.01 }
                let outputMajor = shape.layout == .outputMajor
                let direct = bestSeconds(repeats: repeats) {
                    BLAS.openBLAS(m: m, n: n, k: k, a: a.data, lda: k, b: stored.data, ldb: outputMajor ? k : n,
                                  transposeB: outputMajor, c: c.data, ldc: n, beta: 0)
                }
                func ours(_ w: WeightMatrix) -> Double {
                    bestSeconds(repeats: repeats) {
                        SmallMatMul.run(element: w.element, outputMajor: outputMajor, m: m, n: n, k: k, a: a.data, lda: k,
                                        w: w.base, ldw: w.rowStride, scales: w.scales.map { UnsafePointer($0.data) },
                                        alpha: 1, c: c.data, ldc: n, accumulate: false)
                    }
                }
                let door = SmallMatMul.handles(rows: m, element: .f32) ? "glimpse \(SmallMatMul.path)" : "openblas"
                figures.append(ProductFigure(m: m, n: n, k: k, layout: shape.layout, openBLAS: direct * 1000,
                                             fp32: ours(fp32) * 1000, bf16: ours(bf16) * 1000, int8: ours(int8) * 1000,
                                             doorPath: door))
            }
        }
        return figures
    }

    /// Read-only memory bandwidth in GB/s: every core sums its share of a buffer larger than the
    /// caches (loads only, as a decode step reads its weights), best of three.
    public static func readBandwidth(megabytes: Int = 512) -> Double {
        let count = megabytes * 1 << 20 / 4
        let src = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { src.deallocate() }
        src.initialize(repeating: 1, count: count)
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, BLAS.threadCount))
        let sink = UnsafeMutablePointer<Float>.allocate(capacity: workers)
        defer { sink.deallocate() }
        let seconds = bestSeconds(repeats: 3) {
            DispatchQueue.concurrentPerform(iterations: workers) { t in
                let lo = count * t / workers, hi = count * (t + 1) / workers
                sink[t] = gk_sum_read(src + lo, hi - lo)
            }
        }
        return Double(count * 4) / seconds / 1e9
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
