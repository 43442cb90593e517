import CGlimpseKernels
import COpenBLAS
import Dispatch
import Synchronization

/// The one door to matrix products: every product in Glimpse goes through `gemm` (activations ×
/// any matrix) or `product` (activations × a layer's weights in fp32, bf16 or int8). Behind it,
/// Glimpse's own kernels (`SmallMatMul`) take the few-row products of decode steps and every
/// bf16/int8 product they can; the large ones go to OpenBLAS, large bf16/int8 ones to the CPU's
/// bf16 dot products where it has them (`BF16DotMatMul`), or to oneDNN with packed weights when
/// the environment asks for it (`OneDNNMatMul`). Callers never choose.
public enum BLAS {
    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, row-major.
    /// `transposeB` reads B stored as [n×k] (PyTorch `nn.Linear` weights are [out, in]).
    @inline(__always)
    public static func gemm(m: Int, n: Int, k: Int,
                            a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
                            b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
                            c: UnsafeMutablePointer<Float>, ldc: Int,
                            alpha: Float = 1, beta: Float = 0, parallel: Bool = true) {
        if m == 0 || n == 0 { return }
        // Weight-sized products with few rows (attention's small per-head products stay in OpenBLAS).
        if !transposeA && (beta == 0 || beta == 1) && n * k >= 1 << 15 && SmallMatMul.handles(rows: m, element: .f32) {
            SmallMatMul.run(element: .f32, outputMajor: transposeB, m: m, n: n, k: k, a: a, lda: lda,
                            w: UnsafeRawPointer(b), ldw: ldb, scales: nil, alpha: alpha, c: c, ldc: ldc, accumulate: beta == 1,
                            parallel: parallel)
            return
        }
        guard !transposeA else {
            openBLAS(m: m, n: n, k: k, a: a, lda: lda, transposeA: true, b: b, ldb: ldb, transposeB: transposeB,
                     c: c, ldc: ldc, alpha: alpha, beta: beta)
            return
        }
        openBLASRows(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc,
                     alpha: alpha, beta: beta, parallel: parallel)
    }

    /// Runs `body` (a decoder step) with every product it starts on this thread batch-invariant: the
    /// few-row kernels take it however many rows it has (`SmallMatMul.handles`), so a step of many
    /// images' beams gives each row the bits it gets alone (the large-product engines round or block
    /// differently: bf16 dot products round the activations).
    static func batchInvariant<T>(_ body: () throws -> T) rethrows -> T {
        let outer = gk_thread_batch_invariant()
        gk_set_thread_batch_invariant(1)
        defer { gk_set_thread_batch_invariant(outer) }
        return try body()
    }

    /// A large product on a single-threaded OpenBLAS with its rows split over the idle cores
    /// (OpenBLAS's own pool spins on `sched_yield` after every call it threads, on the cores
    /// Glimpse's kernels and threads need next).
    static func openBLASRows(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                             c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float,
                             parallel: Bool = true) {
        let workers = parallel && m * n * k >= 1 << 22
            ? min(SmallMatMul.idleThreads, m / OneDNNMatMul.minimumRowsPerThread) : 1
        guard workers > 1 else {
            openBLAS(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB,
                     c: c, ldc: ldc, alpha: alpha, beta: beta)
            return
        }
        Parallel.forEach(iterations: workers) { t in
            let lo = m * t / workers, hi = m * (t + 1) / workers
            openBLAS(m: hi - lo, n: n, k: k, a: a + lo * lda, lda: lda, b: b, ldb: ldb, transposeB: transposeB,
                     c: c + lo * ldc, ldc: ldc, alpha: alpha, beta: beta)
        }
    }

    /// out[rows × outFeatures] (row stride `outStride`) = x[rows × inFeatures] · W (+ out when
    /// `accumulate`, e.g. a bias broadcast beforehand), for a layer's weights in any element type.
    public static func product(_ x: UnsafePointer<Float>, rows: Int, xStride: Int? = nil, weight w: WeightMatrix,
                               into out: UnsafeMutablePointer<Float>, outStride: Int? = nil, accumulate: Bool = false) {
        let n = w.outFeatures, k = w.inFeatures, lda = xStride ?? k, ldc = outStride ?? n
        if rows == 0 || n == 0 { return }
        let outputMajor = w.layout == .outputMajor
        if SmallMatMul.handles(rows: rows, element: w.element) {
            SmallMatMul.run(element: w.element, outputMajor: outputMajor, m: rows, n: n, k: k, a: x, lda: lda,
                            w: w.base, ldw: w.rowStride, scales: w.scales.map { UnsafePointer($0.data) }, alpha: 1,
                            c: out, ldc: ldc, accumulate: accumulate)
            return
        }
        if BF16DotMatMul.handles(w) {
            BF16DotMatMul.run(x, rows: rows, lda: lda, weight: w, into: out, ldc: ldc, accumulate: accumulate)
            return
        }
        for part in OneDNNMatMul.run(x, rows: rows, lda: lda, weight: w, into: out, ldc: ldc, accumulate: accumulate) {
            let x = x + part.lowerBound * lda, out = out + part.lowerBound * ldc
            if let floats = w.floats {
                openBLASRows(m: part.count, n: n, k: k, a: x, lda: lda, b: floats, ldb: w.rowStride, transposeB: outputMajor,
                             c: out, ldc: ldc, beta: accumulate ? 1 : 0)
            } else {
                widenedProduct(x, rows: part.count, lda: lda, weight: w, into: out, ldc: ldc, accumulate: accumulate)
            }
        }
    }

    /// bf16 / int8 weights and many rows without bf16 instructions: widen the output channels to
    /// fp32 (`piece` floats at a time) and let OpenBLAS multiply them. One piece per call, as fp32
    /// weights get: each OpenBLAS call forks and joins its threads, and on a loaded machine every
    /// join waits for a descheduled thread (2 MB panels, 5 calls at K = 3072, ran 2-4× slower than
    /// fp32 at encoder shapes there, with the same speed on an idle one).
    static func widenedProduct(_ x: UnsafePointer<Float>, rows: Int, lda: Int, weight w: WeightMatrix,
                               into out: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
                               piece: Int = widenedFloats) {
        let n = w.outFeatures, k = w.inFeatures, outputMajor = w.layout == .outputMajor
        let panel = min(n, max(16, piece / max(k, 1) / 16 * 16))
        let scratch = widenedScratch.withLock { $0.popLast() } ?? Scratch()
        defer { widenedScratch.withLock { $0.append(scratch) } }
        let buffer = scratch.reserve(panel * k)
        var n0 = 0
        while n0 < n {
            let n1 = min(n, n0 + panel), width = n1 - n0
            w.widen(channels: n0..<n1, into: buffer)
            openBLASRows(m: rows, n: width, k: k, a: x, lda: lda, b: buffer, ldb: outputMajor ? k : width,
                         transposeB: outputMajor, c: out + n0, ldc: ldc, beta: accumulate ? 1 : 0)
            n0 = n1
        }
    }

    /// Most weights widened at once: 16 MB, any encoder layer's matrix (a vocabulary head goes in pieces).
    static let widenedFloats = 1 << 22
    /// `widenedProduct`'s buffers, kept between calls: one for each product running at the same time.
    private static let widenedScratch = Mutex<[Scratch]>([])

    @inline(__always)
    static func openBLAS(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
                         b: UnsafePointer<Float>, ldb: Int, transposeB: Bool, c: UnsafeMutablePointer<Float>, ldc: Int,
                         alpha: Float = 1, beta: Float) {
        _ = openBLASSingleThreaded
        if m == 1 && !transposeA {
            // One row: sgemv streams B once; sgemm would pack it first.
            cblas_sgemv(CblasRowMajor, transposeB ? CblasNoTrans : CblasTrans,
                        Int32(transposeB ? n : k), Int32(transposeB ? k : n), alpha,
                        b, Int32(ldb), a, 1, beta, c, 1)
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Name of the OpenBLAS kernel in use (e.g. "SkylakeX"); `OpenBLASKernel` says why.
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Threads one product may use now (Glimpse's own: OpenBLAS itself always runs single-threaded
    /// and large products are split by rows over Glimpse's threads, see `setThreadCount`).
    public static var threadCount: Int { productThreads.load(ordering: .relaxed) }
    private static let productThreads = Atomic<Int>(threadBudget)

    /// Gives every later product at most `count` threads (within `threadBudget`). OpenBLAS stays
    /// single-threaded whatever the count: its idle pool spins on `sched_yield` for a while after
    /// each call it threads, on the cores Glimpse's own kernels need next (a quarter of an int8
    /// caption's CPU time, and its encoder 15-25% slower, on the 2-core Zen 4), so Glimpse's threads
    /// split OpenBLAS's products by rows instead (the same speed for fp32 there).
    public static func setThreadCount(_ count: Int) {
        _ = openBLASSingleThreaded
        productThreads.store(max(1, min(count, threadBudget)), ordering: .relaxed)
    }

    /// OpenBLAS set to one thread, once, before its first product (after `threadBudget` is read).
    private static let openBLASSingleThreaded: Void = {
        _ = threadBudget
        openblas_set_num_threads(1)
    }()

    /// The thread budget of every product: OpenBLAS's count as the process started
    /// (`OPENBLAS_NUM_THREADS`, else one per core), read once, before anything lowers it for a while.
    public static let threadBudget: Int = max(1, Int(openblas_get_num_threads()))
}
