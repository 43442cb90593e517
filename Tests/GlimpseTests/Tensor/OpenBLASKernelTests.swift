import CGlimpseKernels
import XCTest
@testable import Glimpse

/// The OpenBLAS kernel decision on synthetic CPUs (a pure function of the reported kernel, the
/// CPUID features and the environment), the self-check, and the whole start-up through the CLI.
final class OpenBLASKernelTests: XCTestCase {
    let avx2: CPUFeatures = [.sse3, .avx, .avx2, .fma]
    var avx512: CPUFeatures { avx2.union(.avx512Core) }
    var sapphireRapids: CPUFeatures { avx512.union([.avx512bf16, .avx512vnni, .avx512fp16]) }

    func core(_ d: OpenBLASKernel.Decision) -> String? {
        if case let .use(core, _) = d { return core }
        return nil
    }

    func testGenericKernelIsReplacedByTheWidestTheFeaturesAllow() {
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "Prescott", features: sapphireRapids, environment: nil)), "Cooperlake")
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "Prescott", features: avx512, environment: nil)), "SkylakeX")
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "Prescott", features: avx2, environment: nil)), "Haswell")
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "Nehalem", features: avx2, environment: "")), "Haswell")
        // Older than the CPU supports, though not generic.
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "Haswell", features: sapphireRapids, environment: nil)), "Cooperlake")
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "Zen", features: avx512.union(.avx512bf16), environment: nil)), "Cooperlake")
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "SkylakeX", features: sapphireRapids, environment: nil)), "Cooperlake")
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "Sandybridge", features: avx2, environment: nil)), "Haswell")
        // AVX-512 F without BW/DQ/VL (Knights Landing) cannot run SkylakeX kernels.
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "Prescott", features: avx2.union([.avx512f, .avx512cd]), environment: nil)), "Haswell")
        // BF16 without the AVX-512 core set is not enough for Cooperlake.
        XCTAssertEqual(core(OpenBLASKernel.decide(reported: "Prescott", features: avx2.union(.avx512bf16), environment: nil)), "Haswell")
    }

    func testKernelsAlreadyWideEnoughOrUnknownAreKept() {
        XCTAssertNil(core(OpenBLASKernel.decide(reported: "Zen", features: avx2, environment: nil)))   // this machine
        XCTAssertNil(core(OpenBLASKernel.decide(reported: "Haswell", features: avx2, environment: nil)))
        XCTAssertNil(core(OpenBLASKernel.decide(reported: "Cooperlake", features: sapphireRapids, environment: nil)))
        XCTAssertNil(core(OpenBLASKernel.decide(reported: "SkylakeX", features: avx512, environment: nil)))
        XCTAssertNil(core(OpenBLASKernel.decide(reported: "SapphireRapidsNext", features: sapphireRapids, environment: nil)))
        XCTAssertNil(core(OpenBLASKernel.decide(reported: "Prescott", features: [.sse3, .avx], environment: nil)))
        XCTAssertNil(core(OpenBLASKernel.decide(reported: "Prescott", features: [.neon], environment: nil)))
    }

    func testTheEnvironmentsChoiceIsNeverOverridden() {
        let d = OpenBLASKernel.decide(reported: "Prescott", features: sapphireRapids, environment: "Prescott")
        XCTAssertEqual(d, .keep(reason: "OPENBLAS_CORETYPE=Prescott set by the environment (never overridden)"))
    }

    func testSelfCheckPassesOpenBLASAndCatchesAWrongKernel() {
        XCTAssertLessThan(OpenBLASKernel.selfCheckError(), OpenBLASKernel.selfCheckTolerance)
        // A kernel that drops the last k term: caught.
        let wrong = OpenBLASKernel.selfCheckError { m, n, k, a, b, transposeB, c in
            for i in 0..<m { for j in 0..<n {
                var s: Float = 0
                for p in 0..<(k - 1) { s += a[i * k + p] * (transposeB ? b[j * k + p] : b[p * n + j]) }
                c[i * n + j] = s
            } }
        }
        XCTAssertGreaterThan(wrong, OpenBLASKernel.selfCheckTolerance)
        let nan = OpenBLASKernel.selfCheckError { m, n, _, _, _, _, c in c.update(repeating: .nan, count: m * n) }
        XCTAssertEqual(nan, .infinity)
    }

    // MARK: end to end (the CLI re-executes itself)

    func verbose(_ environment: [String: String]) throws -> GlimpseCLI.Output {
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try GlimpseCLI.fixtureModel(), image = try GlimpseCLI.fixtureImage("shapes_40x30.png")
        let (process, out, err) = try GlimpseCLI.process(["caption", image.path, "--model", model.path, "--verbose", "--json"], scratch: dir)
        var env = ProcessInfo.processInfo.environment
        for key in ["OPENBLAS_CORETYPE", "GLIMPSE_KERNEL", OpenBLASKernel.assumeVariable, OpenBLASKernel.markerVariable] { env[key] = nil }
        env.merge(environment) { $1 }
        process.environment = env
        try process.run()
        process.waitUntilExit()
        return GlimpseCLI.collect(process, out, err)
    }

    func captions(_ jsonLine: String) throws -> [(tokens: [Int], score: Double)] {
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(jsonLine.utf8)) as? [String: Any])
        let list = try XCTUnwrap(object["captions"] as? [[String: Any]])
        return list.map { (($0["tokens"] as? [Int]) ?? [], ($0["score"] as? Double) ?? .nan) }
    }

    func kernelLine(_ output: GlimpseCLI.Output) -> String {
        output.stderr.split(separator: "\n").first { $0.contains("OpenBLAS kernel:") }.map(String.init) ?? ""
    }

    func testCLIRespectsTheEnvironmentsCoreType() throws {
        let result = try verbose(["OPENBLAS_CORETYPE": "Prescott"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(kernelLine(result).contains("OpenBLAS kernel: Prescott (OPENBLAS_CORETYPE=Prescott set by the environment"), kernelLine(result))
    }

    func testCLIReplacesAGenericKernelByReexecuting() throws {
        guard let widest = OpenBLASKernel.widest(for: .current) else { throw XCTSkip("no AVX2 + FMA on this CPU") }
        // Pretend OpenBLAS autodetected Prescott: the CLI must re-execute with the widest kernel.
        let result = try verbose([OpenBLASKernel.assumeVariable: "Prescott"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let line = kernelLine(result)
        XCTAssertTrue(line.contains("OpenBLAS kernel: \(widest.core) (chosen by Glimpse: OpenBLAS autodetected Prescott"), line)
        XCTAssertTrue(line.contains("self-check passed"), line)
        // The caption is the same as with the kernel OpenBLAS picks itself (within fp32 noise: same text).
        let plain = try verbose([:])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let text = { (o: GlimpseCLI.Output) in o.stdout.components(separatedBy: "\"text\":").dropFirst().first?.split(separator: "\"").dropFirst().first }
        XCTAssertEqual(text(result), text(plain))
        // Without the hook the CLI keeps what OpenBLAS detected, or widens it as `decide` says
        // (this test process itself never re-executes, so BLAS.coreName is OpenBLAS's own choice).
        let expected: String
        switch OpenBLASKernel.decide(reported: BLAS.coreName, features: .current,
                                     environment: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"]) {
        case .keep: expected = BLAS.coreName
        case .use(let core, _): expected = core
        }
        XCTAssertTrue(kernelLine(plain).contains("OpenBLAS kernel: \(expected)"), kernelLine(plain))
    }

    func testCLIForcesTheGlimpseKernelPathFromTheEnvironment() throws {
        let portable = try verbose(["GLIMPSE_KERNEL": "portable"])
        XCTAssertEqual(portable.status, 0, portable.stderr)
        XCTAssertTrue(portable.stderr.contains("Glimpse kernels: portable (GLIMPSE_KERNEL=portable)"), portable.stderr)
        let best = try verbose([:])
        XCTAssertTrue(best.stderr.contains("Glimpse kernels: \(SmallMatMul.Path(rawValue: gk_best_path())!)"), best.stderr)
        // Same tokens, scores within 1e-5 (fp32 products go to OpenBLAS on the portable path on x86).
        let a = try captions(portable.stdout), b = try captions(best.stdout)
        XCTAssertEqual(a.map(\.tokens), b.map(\.tokens))
        for (x, y) in zip(a, b) { XCTAssertEqual(x.score, y.score, accuracy: 1e-5) }
        let bogus = try verbose(["GLIMPSE_KERNEL": "sse9"])
        XCTAssertTrue(bogus.stderr.contains("GLIMPSE_KERNEL=sse9 is not a path"), bogus.stderr)
    }
}
