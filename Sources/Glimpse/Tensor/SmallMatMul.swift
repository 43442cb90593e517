import CGlimpseKernels
import Foundation
import Synchronization

/// Glimpse's own matrix-product kernels for few activation rows (CGlimpseKernels), reached only
/// through `BLAS`. They stream each weight row once for all rows (decode steps are bound by
/// memory bandwidth, where OpenBLAS's packing costs more than it saves) and split the output
/// columns over the cores. A row's result never depends on how many rows share the call, nor on
/// the column split or the instruction set (the C header states the reduction order).
public enum SmallMatMul {
    /// The instruction-set paths of the platform table.
    public enum Path: Int32, Sendable, CaseIterable, CustomStringConvertible {
        case portable = 0, avx2 = 1, avx512 = 2

        public var description: String { String(cString: gk_path_name(rawValue)) }
        /// Supported by this CPU and build, and passed the start-up self-check.
        public var isAvailable: Bool { gk_path_available(rawValue) != 0 }
    }

    /// The path in use (widest available, or `$GLIMPSE_KERNEL`).
    public static var path: Path { Path(rawValue: gk_path()) ?? .portable }
    /// Why that path: the CPU, the environment, or a failed self-check.
    public static var pathReason: String { String(cString: gk_path_reason()) }

    /// Selects `path` for every later product (tests compare paths); false when unavailable.
    @discardableResult
    public static func select(_ path: Path) -> Bool { gk_set_path(path.rawValue) != 0 }

    /// Most activation rows the kernels take. Measured with `glimpse bench` (README, Performance):
    /// at M ≤ 32 they beat OpenBLAS on every decoder shape on the AVX2 machine, so the whole decode
    /// range uses one kernel and batching rows (beams × images) cannot change a row's result.
    public static let maxRows = 32

    /// Whether the door sends a product with `rows` activation rows here: up to `maxRows`, or any
    /// number inside a decoder step (`BLAS.batchInvariant`: the kernels give a row the same bits
    /// whatever M); on a vector path (the portable kernels are a correctness fallback, slower than
    /// OpenBLAS on x86), or for bf16/int8 weights, which OpenBLAS cannot read without a conversion.
    static func handles(rows: Int, element: WeightMatrix.Element) -> Bool {
        guard rows <= maxRows || gk_thread_batch_invariant() != 0 else { return false }
        #if arch(x86_64)
        return element != .f32 || path != .portable
        #else
        return true
        #endif
    }

    /// Work (weight bytes) below which splitting across cores costs more than it saves.
    static let parallelBytes = 1 << 18

    /// C[m, n] = alpha · Σ_k A[m, k] · W(n, k) (+ C when accumulate) on the current path, columns
    /// split across the idle cores (`idleThreads`), or on the calling thread alone unless `parallel`.
    static func run(element: WeightMatrix.Element, outputMajor: Bool, m: Int, n: Int, k: Int,
                    a: UnsafePointer<Float>, lda: Int, w: UnsafeRawPointer, ldw: Int, scales: UnsafePointer<Float>?,
                    alpha: Float, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, parallel: Bool = true) {
        let dtype: Int32 = element == .f32 ? Int32(GK_F32) : element == .bf16 ? Int32(GK_BF16) : Int32(GK_I8)
        let form: Int32 = outputMajor ? Int32(GK_FORM_NK) : Int32(GK_FORM_KN)
        let workers = parallel && n * k * element.byteSize >= parallelBytes ? idleThreads : 1
        let acc: Int32 = accumulate ? 1 : 0
        if workers == 1 {
            gk_matmul(dtype, form, Int32(m), 0, Int32(n), Int32(k), a, lda, w, ldw, scales, alpha, c, ldc, acc)
            return
        }
        // Column chunks aligned to the kernels' tiles (8 weight rows NK, 64 columns KN).
        let align = outputMajor ? 8 : 64
        Parallel.forEach(iterations: workers) { t in
            let lo = min(n, (n * t / workers + align - 1) / align * align)
            let hi = t == workers - 1 ? n : min(n, (n * (t + 1) / workers + align - 1) / align * align)
            if lo < hi {
                gk_matmul(dtype, form, Int32(m), Int32(lo), Int32(hi), Int32(k), a, lda, w, ldw, scales, alpha, c, ldc, acc)
            }
        }
    }

    static let cores = ProcessInfo.processInfo.activeProcessorCount

    /// Threads outside products that keep cores busy now (a batch's encoder workers while they
    /// encode): a decode step splits its columns over the rest of the thread budget, so it uses
    /// both cores when the encoders wait and does not crowd them when they run.
    static let busyThreads = Atomic<Int>(0)

    /// Runs `body` counted as one busy thread.
    public static func countedBusy<T>(_ body: () throws -> T) rethrows -> T {
        let outer = gk_thread_counted_busy()
        if outer == 0 { busyThreads.add(1, ordering: .relaxed) }
        gk_set_thread_counted_busy(1)
        defer {
            gk_set_thread_counted_busy(outer)
            if outer == 0 { busyThreads.subtract(1, ordering: .relaxed) }
        }
        return try body()
    }

    /// Threads a product started on the calling thread may use: the budget less the busy threads,
    /// the caller's own core back when it is one of them (one image's encoder in a batch run
    /// has both cores while the decoder waits; two encoders get one each).
    static var idleThreads: Int {
        let others = busyThreads.load(ordering: .relaxed) - Int(gk_thread_counted_busy())
        return max(1, min(cores, BLAS.threadCount) - others)
    }
}

/// What this CPU offers, from CPUID (with the operating system's register-state support).
public struct CPUFeatures: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let sse3 = CPUFeatures(rawValue: UInt32(GK_CPU_SSE3))
    public static let avx = CPUFeatures(rawValue: UInt32(GK_CPU_AVX))
    public static let avx2 = CPUFeatures(rawValue: UInt32(GK_CPU_AVX2))
    public static let fma = CPUFeatures(rawValue: UInt32(GK_CPU_FMA))
    public static let avx512f = CPUFeatures(rawValue: UInt32(GK_CPU_AVX512F))
    public static let avx512bw = CPUFeatures(rawValue: UInt32(GK_CPU_AVX512BW))
    public static let avx512dq = CPUFeatures(rawValue: UInt32(GK_CPU_AVX512DQ))
    public static let avx512vl = CPUFeatures(rawValue: UInt32(GK_CPU_AVX512VL))
    public static let avx512cd = CPUFeatures(rawValue: UInt32(GK_CPU_AVX512CD))
    public static let avx512bf16 = CPUFeatures(rawValue: UInt32(GK_CPU_AVX512BF16))
    public static let avx512vnni = CPUFeatures(rawValue: UInt32(GK_CPU_AVX512VNNI))
    public static let avx512fp16 = CPUFeatures(rawValue: UInt32(GK_CPU_AVX512FP16))
    public static let neon = CPUFeatures(rawValue: UInt32(GK_CPU_NEON))
    public static let f16c = CPUFeatures(rawValue: UInt32(GK_CPU_F16C))

    /// The AVX-512 subset SkylakeX-class kernels need (F, CD, BW, DQ, VL).
    public static let avx512Core: CPUFeatures = [.avx512f, .avx512cd, .avx512bw, .avx512dq, .avx512vl]

    /// This CPU.
    public static var current: CPUFeatures { CPUFeatures(rawValue: gk_cpu_features()) }

    static let names: [(CPUFeatures, String)] = [
        (.sse3, "sse3"), (.avx, "avx"), (.avx2, "avx2"), (.fma, "fma"), (.f16c, "f16c"), (.avx512f, "avx512f"),
        (.avx512cd, "avx512cd"), (.avx512bw, "avx512bw"), (.avx512dq, "avx512dq"), (.avx512vl, "avx512vl"),
        (.avx512bf16, "avx512_bf16"), (.avx512vnni, "avx512_vnni"), (.avx512fp16, "avx512_fp16"), (.neon, "neon"),
    ]

    public var description: String {
        let present = Self.names.filter { contains($0.0) }.map(\.1)
        return present.isEmpty ? "none" : present.joined(separator: " ")
    }
}
