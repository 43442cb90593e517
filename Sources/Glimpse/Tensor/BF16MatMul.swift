import CGlimpseDNNL
import Foundation
import Synchronization

/// Large products (more rows than `SmallMatMul` takes: encoder passes, prompt prefill, wide
/// batches) with bf16 or int8 weights, through oneDNN's matmul where the CPU has bf16 instructions
/// (AMX tiles or AVX512_BF16 dot products: several times OpenBLAS's fp32 rate on the same cores).
/// Activations are rounded to bf16 and products accumulate in fp32, so a result is within about
/// 2^-8 of Σ|a·w| of the fp32 product: the precision a user chose with bf16/int8 weights
/// (`glimpse quantize`), never applied to fp32 weights. Elsewhere, or with
/// `GLIMPSE_BF16_MATMUL=openblas`, the door widens such weights to fp32 panel by panel for OpenBLAS.
public enum BF16MatMul {
    public enum Engine: String, Sendable {
        case oneDNN = "onednn", openBLAS = "openblas"
    }

    /// The engine of large bf16/int8 products, chosen once from CPUID and the environment.
    public static var engine: Engine { selected ?? choice.engine }
    /// Why, in words (`--verbose`, `glimpse bench`).
    public static var reason: String { selected.map { "selected by the program: \($0.rawValue)" } ?? choice.reason }
    /// Whether oneDNN can run bf16 matmul here at all (any CPU with AVX-512; slow without bf16).
    public static var isAvailable: Bool { gd_supported() != 0 }

    /// Selects the engine for later products (tests and benchmarks compare them); `.oneDNN` only
    /// where it is available. Returns whether the selection took.
    @discardableResult
    public static func select(_ engine: Engine?) -> Bool {
        guard engine != .oneDNN || isAvailable else { return false }
        selected = engine
        return true
    }
    private static var selected: Engine?

    private static let choice: (engine: Engine, reason: String) = {
        let wanted = ProcessInfo.processInfo.environment["GLIMPSE_BF16_MATMUL"].flatMap(Engine.init(rawValue:))
        let library = String(cString: gd_description())
        if wanted == .openBLAS { return (.openBLAS, "GLIMPSE_BF16_MATMUL=openblas") }
        guard gd_supported() != 0 else { return (.openBLAS, "\(library); weights widened to fp32 for OpenBLAS") }
        if wanted == .oneDNN { return (.oneDNN, "\(library) (GLIMPSE_BF16_MATMUL=onednn)") }
        // Without bf16 instructions oneDNN emulates bf16 more slowly than OpenBLAS runs fp32.
        guard CPUFeatures.current.contains(.avx512bf16) else {
            return (.openBLAS, "the CPU has no bf16 instructions; weights widened to fp32 for OpenBLAS")
        }
        return (.oneDNN, library)
    }()

    /// out = x · W (+ out when `accumulate`) through oneDNN, as far as it can: returns the row
    /// ranges it left to the caller (all rows when OpenBLAS is the engine or the matrix cannot be
    /// packed; a part oneDNN failed on, its rows of `out` unchanged).
    ///
    /// Each core's thread runs oneDNN single-threaded on its share of the rows: an OpenMP team
    /// waiting at its barriers for a core that OpenBLAS's pool is spinning on ran 5–8× slower here.
    static func run(_ x: UnsafePointer<Float>, rows: Int, lda: Int, weight w: WeightMatrix,
                    into out: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) -> [Range<Int>] {
        guard engine == .oneDNN, w.element != .f32, let packed = w.packedForOneDNN?.handle(for: w) else { return [0..<rows] }
        let workers = rows >= 2 * minimumRowsPerThread ? min(SmallMatMul.idleThreads, rows / minimumRowsPerThread) : 1
        let failed = Atomic<Int>(0)   // bit t: part t left to the caller
        DispatchQueue.concurrentPerform(iterations: workers) { t in
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
            let dtype: Int32 = w.element == .bf16 ? 1 : 2
            packed = gd_weights_create(dtype, w.layout == .outputMajor ? 1 : 0, Int32(w.outFeatures), Int32(w.inFeatures),
                                       w.base, w.rowStride, w.scales.map { UnsafePointer($0.data) })
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
