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
        /// The same product with bf16 weights through the door (oneDNN or widened into OpenBLAS,
        /// as `OneDNNMatMul.engine(.reduced)` says).
        public var bf16GFLOPS: Double
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

    /// A bf16 matrix rounded from an fp32 tensor stored as `layout`.
    static func bf16Matrix(_ stored: Tensor, layout: WeightMatrix.Layout, n: Int, k: Int) -> WeightMatrix {
        let bits = TensorStorage(count: (stored.count + 1) / 2)
        let base = UnsafeMutableRawPointer(bits.pointer).bindMemory(to: UInt16.self, capacity: stored.count)
        gk_f32_to_bf16(stored.data, base, stored.count)
        return WeightMatrix(element: .bf16, layout: layout, outFeatures: n, inFeatures: k,
                            base: UnsafeRawPointer(base), owner: bits, scales: nil)
    }

    /// GFLOPS of C = A·Bᵀ (nn.Linear layout) for each shape, through `Linear` and through cblas_sgemm.
    public static func gemm(shapes: [(Int, Int, Int)] = [(197, 768, 768), (197, 3072, 768), (197, 768, 3072), (3, 50257, 768),
                                                          (577, 3072, 768), (2304, 2048, 512), (36864, 512, 128)],
                            repeats: Int = 5) -> [GemmFigure] {
        shapes.map { (m, n, k) in
            let a = Tensor(zeros: [m, k]), w = Tensor(zeros: [n, k]), bias = Tensor(zeros: [n]), c = Tensor(zeros: [m, n])
            for i in 0..<a.count { a.data[i] = Float(i % 7) * 0.01 }
            for i in 0..<w.count { w.data[i] = Float(i % 5) * 0.01 }
            let layer = Linear(weight: WeightMatrix(w, layout: .outputMajor), bias: bias)
            let bf16 = bf16Matrix(w, layout: .outputMajor, n: n, k: k)
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let ours = bestSeconds(repeats: repeats) { layer(a.data, rows: m, into: c.data) }
            let direct = bestSeconds(repeats: repeats) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1,
                            a.data, Int32(k), w.data, Int32(k), 0, c.data, Int32(n))
            }
            let reduced = bestSeconds(repeats: repeats) { BLAS.product(a.data, rows: m, weight: bf16, into: c.data) }
            return GemmFigure(m: m, n: n, k: k, glimpseGFLOPS: flops / ours / 1e9, openBLASGFLOPS: flops / direct / 1e9,
                              bf16GFLOPS: flops / reduced / 1e9)
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
            // As in a decode step, weights come from memory, not cache: each timing walks enough
            // copies of the matrix (≥ 256 MB of fp32) that none is still cached when it is read again.
            let copies = max(1, (256 << 20) / (count * 4))
            let stored = Tensor(zeros: shape.layout == .outputMajor ? [copies * n, k] : [copies * k, n])
            for i in 0..<count * copies { stored.data[i] = Float(i % 17 - 8) * 0.01 }
            let bits = TensorStorage(count: (count * copies + 1) / 2)   // bf16 storage
            let bf16Base = UnsafeMutableRawPointer(bits.pointer).bindMemory(to: UInt16.self, capacity: count * copies)
            gk_f32_to_bf16(stored.data, bf16Base, count * copies)
            let bytes = TensorStorage(count: (count * copies + 3) / 4)   // int8 storage
            let q = UnsafeMutableRawPointer(bytes.pointer).bindMemory(to: Int8.self, capacity: count * copies)
            for i in 0..<count * copies { q[i] = Int8(i % 255 - 127) }
            let scales = Tensor(shape: [n], values: [Float](repeating: 0.01, count: n))
            let elements: [(WeightMatrix.Element, UnsafeRawPointer)] = [
                (.f32, UnsafeRawPointer(stored.data)), (.bf16, UnsafeRawPointer(bf16Base)), (.int8, UnsafeRawPointer(q)),
            ]
            for m in rows {
                let a = Tensor(zeros: [m, k]), c = Tensor(zeros: [m, n])
                for i in 0..<a.count { a.data[i] = Float(i % 7) * 0.01 }
                let outputMajor = shape.layout == .outputMajor
                let ldw = outputMajor ? k : n
                let direct = bestSeconds(repeats: repeats) {
                    for copy in 0..<copies {
                        BLAS.openBLAS(m: m, n: n, k: k, a: a.data, lda: k, b: stored.data + copy * count, ldb: ldw,
                                      transposeB: outputMajor, c: c.data, ldc: n, beta: 0)
                    }
                } / Double(copies)
                let ours = elements.map { element, base in
                    bestSeconds(repeats: repeats) {
                        for copy in 0..<copies {
                            SmallMatMul.run(element: element, outputMajor: outputMajor, m: m, n: n, k: k, a: a.data, lda: k,
                                            w: base + copy * count * element.byteSize, ldw: ldw,
                                            scales: element == .int8 ? UnsafePointer(scales.data) : nil,
                                            alpha: 1, c: c.data, ldc: n, accumulate: false)
                        }
                    } / Double(copies)
                }
                let door = SmallMatMul.handles(rows: m, element: .f32) ? "glimpse \(SmallMatMul.path)" : "openblas"
                figures.append(ProductFigure(m: m, n: n, k: k, layout: shape.layout, openBLAS: direct * 1000,
                                             fp32: ours[0] * 1000, bf16: ours[1] * 1000, int8: ours[2] * 1000,
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
            Parallel.forEach(iterations: workers) { t in
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
