import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Which OpenBLAS kernel runs, and why. A distribution's OpenBLAS often predates the CPU and
/// falls back to its generic kernel (Debian 12's 0.3.21 runs `Prescott` on Sapphire Rapids-class
/// Xeons, 5–7× slower at encoder shapes than the `Cooperlake` kernel the same library ships).
/// Glimpse picks the widest kernel the CPU's features allow — decided by CPUID features, never by
/// a model name — unless the environment already set `OPENBLAS_CORETYPE`.
///
/// OpenBLAS reads `OPENBLAS_CORETYPE` once, while it loads (before `main`), so the choice takes
/// effect by re-executing the program once with the variable set (`select(arguments:)`). Loading
/// OpenBLAS later with dlopen would also work but would take the library out of the linker's hands
/// for every target; one re-exec at start-up costs a few milliseconds and keeps linking ordinary.
public enum OpenBLASKernel {
    /// The decision for one start-up (`decide` is pure, so it is tested on synthetic CPUs).
    public enum Decision: Equatable, Sendable {
        /// Keep the kernel OpenBLAS is running.
        case keep(reason: String)
        /// Run `core` instead (set OPENBLAS_CORETYPE=core).
        case use(core: String, reason: String)
    }

    /// OpenBLAS 0.3.21's x86-64 kernels by the widest instruction set they use: 0 generic (SSE),
    /// 1 AVX, 2 AVX2 + FMA, 3 AVX-512, 4 AVX-512 + BF16. A name not listed (a newer kernel) ranks
    /// above everything, so it is never replaced.
    static func rank(of core: String) -> Int {
        switch core.lowercased() {
        case "cooperlake", "sapphirerapids": return 4
        case "skylakex": return 3
        case "haswell", "zen": return 2
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": return 1
        case "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington",
             "nehalem", "athlon", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat", "unknown", "generic":
            return 0
        default: return Int.max
        }
    }

    /// The widest kernel `features` can run, with its rank; nil when nothing beats the generic one.
    static func widest(for features: CPUFeatures) -> (core: String, rank: Int, why: String)? {
        if features.isSuperset(of: CPUFeatures.avx512Core.union(.avx512bf16)) {
            return ("Cooperlake", 4, "AVX-512 with BF16")
        }
        if features.isSuperset(of: .avx512Core) { return ("SkylakeX", 3, "AVX-512 (F, CD, BW, DQ, VL)") }
        if features.isSuperset(of: [.avx2, .fma]) { return ("Haswell", 2, "AVX2 + FMA") }
        return nil
    }

    /// What to do when OpenBLAS `reported` its kernel on a CPU with `features`, given the
    /// environment's `OPENBLAS_CORETYPE` (nil or empty when unset). Pure.
    public static func decide(reported: String, features: CPUFeatures, environment: String?) -> Decision {
        if let value = environment, !value.isEmpty {
            return .keep(reason: "OPENBLAS_CORETYPE=\(value) set by the environment (never overridden)")
        }
        guard let best = widest(for: features) else {
            return .keep(reason: "autodetected; the CPU has no AVX2 + FMA or AVX-512, nothing wider to use")
        }
        let current = rank(of: reported)
        if current >= best.rank {
            return .keep(reason: "autodetected; already uses what the CPU offers (\(best.why))")
        }
        return .use(core: best.core, reason: "OpenBLAS autodetected \(reported), a narrower kernel than the CPU's \(best.why) allows")
    }

    /// The kernel in use and why, as `--verbose` and `glimpse bench` print it.
    public struct Selection: Sendable, CustomStringConvertible {
        public var core: String
        public var reason: String
        public var description: String { "\(core) (\(reason))" }
    }

    /// Environment variables of the protocol between the first start and the re-executed one.
    static let markerVariable = "GLIMPSE_OPENBLAS_SELECTED"
    /// Test hook: makes `select` treat this as the kernel OpenBLAS autodetected (so the re-exec path
    /// can be exercised on a machine whose OpenBLAS knows its CPU). Never set it otherwise.
    static let assumeVariable = "GLIMPSE_OPENBLAS_ASSUME_CORE"

    private static let lock = NSLock()
    nonisolated(unsafe) private static var chosen: Selection?

    /// The kernel in use: what `select` decided, or (when nothing called it) OpenBLAS's own choice.
    public static var selection: Selection {
        lock.lock()
        defer { lock.unlock() }
        if let chosen { return chosen }
        let env = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].flatMap { $0.isEmpty ? nil : $0 }
        return Selection(core: BLAS.coreName,
                         reason: env.map { "OPENBLAS_CORETYPE=\($0) set by the environment" } ?? "autodetected by OpenBLAS; OpenBLASKernel.select() not called")
    }

    /// The one call for programs (the glimpse CLI makes it first thing in main): decides the kernel
    /// and, when OpenBLAS should run another one, re-executes the program once (`/proc/self/exe`,
    /// same `arguments` and environment plus OPENBLAS_CORETYPE). In the re-executed process it runs
    /// a small sgemm self-check against a double-precision reference and, if the chosen kernel gets
    /// it wrong, re-executes once more with the kernel OpenBLAS had autodetected. Call it before any
    /// other thread starts; it returns (without re-executing) when nothing needs to change or when
    /// re-executing is impossible (the reason says so).
    @discardableResult
    public static func select(arguments: [String] = CommandLine.arguments) -> Selection {
        BLAS.setThreadCount(BLAS.threadBudget)   // OpenBLAS single-threaded before its self-check's sgemm
        let env = ProcessInfo.processInfo.environment
        let result: Selection
        if let marker = env[markerVariable] {
            unsetenv(markerVariable)
            result = afterReexec(marker: marker, arguments: arguments)
        } else {
            let reported = env[assumeVariable].flatMap { $0.isEmpty ? nil : $0 } ?? BLAS.coreName
            switch decide(reported: reported, features: .current, environment: env["OPENBLAS_CORETYPE"]) {
            case let .keep(reason):
                result = Selection(core: BLAS.coreName, reason: reason)
            case let .use(core, reason):
                let failure = reexec(arguments, set: core, marker: "choose|\(reported)|\(reason)")
                result = Selection(core: BLAS.coreName, reason: "\(reason); re-executing with OPENBLAS_CORETYPE=\(core) failed (\(failure)), kept")
            }
        }
        lock.lock()
        chosen = result
        lock.unlock()
        BLAS.setThreadCount(BLAS.threadBudget)   // every product's budget (OpenBLAS itself stays single-threaded)
        return result
    }

    /// Marker: "choose|<autodetected>|<reason>" after the first re-exec, "fallback|<autodetected>|<reason>" after a failed check.
    private static func afterReexec(marker: String, arguments: [String]) -> Selection {
        let parts = marker.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        let stage = parts.first ?? "", original = parts.count > 1 ? parts[1] : "Prescott"
        let reason = parts.count > 2 ? parts[2] : "chosen by Glimpse"
        if stage == "fallback" {
            return Selection(core: BLAS.coreName, reason: "back to OpenBLAS's own choice: \(reason)")
        }
        let error = selfCheckError()
        if error <= selfCheckTolerance {
            return Selection(core: BLAS.coreName, reason: "chosen by Glimpse: \(reason); sgemm self-check passed (max error \(String(format: "%.1e", error)))")
        }
        let why = "the \(BLAS.coreName) kernel failed the sgemm self-check (max error \(String(format: "%.1e", error)))"
        let failure = reexec(arguments, set: original, marker: "fallback|\(original)|\(why)")
        return Selection(core: BLAS.coreName, reason: "\(why); falling back to \(original) failed (\(failure))")
    }

    /// Relative error the self-check accepts (fp32 sums of 67 products are good to ~1e-6).
    static let selfCheckTolerance = 1e-4

    /// Worst relative error of OpenBLAS's sgemm (both B layouts) and sgemv against a double loop, on
    /// sizes that reach the packed kernels (not only the small-matrix paths).
    static func selfCheckError() -> Double {
        selfCheckError { m, n, k, a, b, transposeB, c in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                        1, a, Int32(k), b, Int32(transposeB ? k : n), 0, c, Int32(n))
        }
    }

    /// The self-check around any sgemm (`gemm(m, n, k, a, b, transposeB, c)`), so tests can hand it a wrong one.
    static func selfCheckError(_ gemm: (Int, Int, Int, UnsafePointer<Float>, UnsafePointer<Float>, Bool, UnsafeMutablePointer<Float>) -> Void) -> Double {
        let m = 70, n = 96, k = 67
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(seed >> 40) % 2001 - 1000) / 1000
        }
        let a = (0..<m * k).map { _ in next() }, b = (0..<k * n).map { _ in next() }
        var worst = 0.0
        for transposeB in [false, true] {
            var c = [Float](repeating: .nan, count: m * n)
            gemm(m, n, k, a, b, transposeB, &c)
            for i in 0..<m {
                for j in 0..<n {
                    var exact = 0.0, magnitude = 0.0
                    for p in 0..<k {
                        let bv = Double(transposeB ? b[j * k + p] : b[p * n + j])
                        exact += Double(a[i * k + p]) * bv
                        magnitude += abs(Double(a[i * k + p]) * bv)
                    }
                    let error = abs(Double(c[i * n + j]) - exact) / max(magnitude, 1e-30)
                    worst = error.isNaN ? .infinity : max(worst, error)
                }
            }
        }
        return worst
    }

    /// Replaces the process image with the same program and arguments, `OPENBLAS_CORETYPE=core`
    /// and the marker set. Returns only on failure, with the reason.
    private static func reexec(_ arguments: [String], set core: String, marker: String) -> String {
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(markerVariable, marker, 1)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", argv)
        let reason = String(cString: strerror(errno))
        // Still this process: undo, so nothing downstream mistakes our setting for the user's.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(markerVariable)
        for p in argv { free(p) }
        return reason
    }
}
