import CGlimpseDNNL
import Foundation
import Synchronization

/// Large products (more rows than `SmallMatMul` takes: encoder passes, prompt prefill, wide
/// batches) through oneDNN's matmul, with each weight matrix packed once into oneDNN's blocked
/// layout (OpenBLAS packs the weights again on every call). Only when asked for
/// (`GLIMPSE_F32_MATMUL` / `GLIMPSE_BF16_MATMUL` = `onednn`): the packing costs more than one
/// image's encoder pass, so OpenBLAS is the default engine (see `choice`).
///
/// - fp32 weights: fp32 throughout (no implicit down-conversion), 1.1–2.3× OpenBLAS's sgemm at
///   encoder shapes on AVX-512 once packed. Summation order differs from OpenBLAS's, so results
///   agree with it to fp32 rounding, not bitwise.
/// - bf16/int8 weights (AMX tiles or AVX512_BF16 dot products where the CPU has them): activations
///   are rounded to bf16 and products accumulate in fp32, so a result is within about 2^-8 of Σ|a·w|
///   of the fp32 product. On OpenBLAS such weights are widened to fp32 panel by panel instead.
public enum OneDNNMatMul {
    public enum Engine: String, Sendable {
        case oneDNN = "onednn", openBLAS = "openblas"
        /// Glimpse's AVX512_BF16 dot-product kernels (`BF16DotMatMul`; bf16/int8 weights only).
        case glimpse
    }

    /// The weights a product reads: fp32, or reduced precision (bf16, int8).
    public enum Weights: Int, Sendable, CaseIterable, CustomStringConvertible {
        case fp32 = 0, reduced = 1

        init(_ element: WeightMatrix.Element) { self = element == .f32 ? .fp32 : .reduced }
        public var description: String { self == .fp32 ? "fp32" : "bf16/int8" }
        var environmentName: String { self == .fp32 ? "GLIMPSE_F32_MATMUL" : "GLIMPSE_BF16_MATMUL" }
    }

    /// The engine of large products with `weights`.
    public static func engine(_ weights: Weights) -> Engine { selected[weights.rawValue] ?? choice[weights.rawValue].engine }
    /// Why, in words (`--verbose`, `glimpse bench`).
    public static func reason(_ weights: Weights) -> String {
        selected[weights.rawValue].map { "selected by the program: \($0.rawValue)" } ?? choice[weights.rawValue].reason
    }
    /// Whether oneDNN can run such a matmul here at all.
    public static func isAvailable(_ weights: Weights) -> Bool { gd_supported(Int32(weights.rawValue)) != 0 }

    /// Whether `engine` can run large products with `weights` here.
    public static func canRun(_ engine: Engine, for weights: Weights) -> Bool {
        switch engine {
        case .openBLAS: return true
        case .oneDNN: return isAvailable(weights)
        case .glimpse: return weights == .reduced && BF16DotMatMul.isSupported
        }
    }

    /// Selects the engine for later products (tests and benchmarks compare them); only one that
    /// `canRun` here. Returns whether the selection took.
    @discardableResult
    public static func select(_ engine: Engine?, for weights: Weights) -> Bool {
        guard engine.map({ canRun($0, for: weights) }) ?? true else { return false }
        selected[weights.rawValue] = engine
        return true
    }
    nonisolated(unsafe) private static var selected: [Engine?] = [nil, nil]

    private static let choice: [(engine: Engine, reason: String)] = Weights.allCases.map { weights in
        let variable = weights.environmentName
        let wanted = ProcessInfo.processInfo.environment[variable].flatMap(Engine.init(rawValue:))
        let library = String(cString: gd_description(Int32(weights.rawValue)))
        let otherwise = weights == .fp32 ? "OpenBLAS" : "weights widened to fp32 for OpenBLAS"
        if wanted == .openBLAS { return (.openBLAS, "\(variable)=openblas") }
        if wanted != .oneDNN && canRun(.glimpse, for: weights) {
            // Twice OpenBLAS's fp32 rate at encoder shapes with nothing packed at load time (`glimpse
            // bench`, 2-core AMD Zen 4: 197×768×768 at ~200 GFLOPS a core against ~100).
            return (.glimpse, "Glimpse's AVX512_BF16 dot-product kernels (CPUID)" + (wanted == .glimpse ? " (\(variable)=glimpse)" : ""))
        }
        guard gd_supported(Int32(weights.rawValue)) != 0 else {
            return (.openBLAS, "\(library); \(otherwise)")
        }
        if wanted == .oneDNN { return (.oneDNN, "\(library) (\(variable)=onednn)") }
        // Packing a ViT-base encoder's weights for oneDNN costs more than it saves on one image (2-core
        // AMD Zen 4, `glimpse caption` of one image: fp32 encoder 620-1010 ms against OpenBLAS's 250 ms,
        // int8 470-670 ms against 280-300 ms widened into OpenBLAS; the AMX Xeon measured the same way
        // round), and only a long run earns it back (warm fp32 encoder 204 ms against 303 ms, bf16
        // products 380-420 GFLOPS against ~100): opt-in, never chosen by default.
        let packed = weights == .fp32 ? "packs fp32 weights for oneDNN" : "computes in bf16 on oneDNN's packed weights"
        return (.openBLAS, "\(otherwise) by default; \(variable)=onednn \(packed): slower for one image, faster for long runs")
    }

    /// out = x · W (+ out when `accumulate`) through oneDNN, as far as it can: returns the row
    /// ranges it left to the caller (all rows when OpenBLAS is the engine or the matrix cannot be
    /// packed; a part oneDNN failed on, its rows of `out` unchanged).
    ///
    /// Each core's thread runs oneDNN single-threaded on its share of the rows: an OpenMP team
    /// waiting at its barriers for a core that OpenBLAS's pool is spinning on ran 5–8× slower here.
    static func run(_ x: UnsafePointer<Float>, rows: Int, lda: Int, weight w: WeightMatrix,
                    into out: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) -> [Range<Int>] {
        guard engine(Weights(w.element)) == .oneDNN, let packed = w.packedForOneDNN.handle(for: w) else { return [0..<rows] }
        let workers = rows >= 2 * minimumRowsPerThread ? min(SmallMatMul.idleThreads, rows / minimumRowsPerThread) : 1
        let failed = Atomic<Int>(0)   // bit t: part t left to the caller
        Parallel.forEach(iterations: workers) { t in
            let lo = rows * t / workers, hi = rows * (t + 1) / workers
            gd_set_threads(1)
            if gd_matmul(packed, Int32(hi - lo), x + lo * lda, lda, out + lo * ldc, ldc, accumulate ? 1 : 0) != 0 {
                failed.bitwiseOr(1 << t, ordering: .relaxed)
            }
        }
        let mask = failed.load(ordering: .relaxed)
        return (0..<workers).filter { mask & (1 << $0) != 0 }.map { rows * $0 / workers..<rows * ($0 + 1) / workers }
    }

    /// Fewer rows per thread cost more in oneDNN's per-call setup than the split saves.
    static let minimumRowsPerThread = 32
}

/// A weight matrix's packed copy for oneDNN, made on first use by any thread, freed with the matrix.
final class OneDNNWeights: @unchecked Sendable {
    private let lock = NSLock()
    private var packed: OpaquePointer?
    private var attempted = false

    func handle(for w: WeightMatrix) -> OpaquePointer? {
        lock.lock()
        defer { lock.unlock() }
        if !attempted {
            attempted = true
            let dtype: Int32 = w.element == .f32 ? 0 : w.element == .bf16 ? 1 : 2
            packed = gd_weights_create(dtype, w.layout == .outputMajor ? 1 : 0, Int32(w.outFeatures), Int32(w.inFeatures),
                                       w.base, w.rowStride, w.scales.map { UnsafePointer($0.data) })
            // The packed copy serves the large products from now on: the file's pages of the matrix
            // leave the resident set (they come back from the page cache if a few-row product reads them).
            if packed != nil { MappedFileRegistry.releasePages(w.base, count: w.outFeatures * w.inFeatures * w.element.byteSize) }
        }
        return packed
    }

    /// Bytes of the packed copy (0 before first use).
    var byteCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return gd_weights_bytes(packed)
    }

    deinit { gd_weights_destroy(packed) }
}
