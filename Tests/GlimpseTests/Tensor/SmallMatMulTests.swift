import CGlimpseKernels
import XCTest
@testable import Glimpse

/// Glimpse's small-M kernels on every dispatch path this machine has, against a double-precision
/// loop and OpenBLAS; the reduction-order contract (bitwise equal across paths, a row's result
/// independent of its batch); the door's routing, including the bf16/int8 conversion path.
/// Tolerance: |ours - exact| ≤ 1e-5 · Σ|a·w| (fp32 sums of up to 3072 products stay well inside);
/// few-row int8 products are checked against their integer definition (`assertMatchesInt8Definition`).
final class SmallMatMulTests: XCTestCase {
    struct Problem {
        var m, n, k: Int
        var a: [Float]
        var w: [Float]          // stored matrix: [n, k] (NK) or [k, n] (KN)
        var bf16: [UInt16]
        var int8: [Int8]
        var scales: [Float]
        var outputMajor: Bool
    }

    func problem(m: Int, n: Int, k: Int, outputMajor: Bool, seed: UInt64) -> Problem {
        var rng = SplitMix64(seed: seed)
        func value() -> Float { Float(Int(rng.next() % 2001) - 1000) / 700 }
        let a = (0..<m * k).map { _ in value() }, w = (0..<n * k).map { _ in value() }
        var bf16 = [UInt16](repeating: 0, count: w.count)
        gk_f32_to_bf16(w, &bf16, w.count)
        let int8 = (0..<n * k).map { _ in Int8(Int(rng.next() % 255) - 127) }
        let scales = (0..<n).map { Float($0 % 13 + 1) * 0.003 }
        return Problem(m: m, n: n, k: k, a: a, w: w, bf16: bf16, int8: int8, scales: scales, outputMajor: outputMajor)
    }

    /// W(n, k) as fp32 (bf16 widened, int8 dequantized), for the reference.
    func weight(_ p: Problem, _ element: WeightMatrix.Element, n: Int, k: Int) -> Double {
        let i = p.outputMajor ? n * p.k + k : k * p.n + n
        switch element {
        case .f32: return Double(p.w[i])
        case .bf16: return Double(Float(bitPattern: UInt32(p.bf16[i]) << 16))
        case .int8: return Double(p.int8[i]) * Double(p.scales[n])
        }
    }

    func run(_ p: Problem, _ element: WeightMatrix.Element, path: SmallMatMul.Path? = nil, rows: Range<Int>? = nil) -> [Float] {
        let rows = rows ?? 0..<p.m
        var c = [Float](repeating: 0, count: rows.count * p.n)
        let dtype: Int32 = element == .f32 ? Int32(GK_F32) : element == .bf16 ? Int32(GK_BF16) : Int32(GK_I8)
        let form: Int32 = p.outputMajor ? Int32(GK_FORM_NK) : Int32(GK_FORM_KN)
        let ldw = p.outputMajor ? p.k : p.n
        p.a.withUnsafeBufferPointer { a in
            let rowsA = a.baseAddress! + rows.lowerBound * p.k
            func call(_ w: UnsafeRawPointer) {
                gk_matmul_on((path ?? SmallMatMul.path).rawValue, dtype, form, Int32(rows.count), 0, Int32(p.n), Int32(p.k),
                             rowsA, p.k, w, ldw, element == .int8 ? p.scales : nil, 1, &c, p.n, 0)
            }
            switch element {
            case .f32: p.w.withUnsafeBytes { call($0.baseAddress!) }
            case .bf16: p.bf16.withUnsafeBytes { call($0.baseAddress!) }
            case .int8: p.int8.withUnsafeBytes { call($0.baseAddress!) }
            }
        }
        return c
    }

    func assertMatchesReference(_ c: [Float], _ p: Problem, _ element: WeightMatrix.Element, _ what: String,
                                tolerance: Double = 1e-5, stride: Int? = nil, file: StaticString = #filePath, line: UInt = #line) {
        let stride = stride ?? p.n
        var worst = 0.0
        for i in 0..<p.m {
            for j in 0..<p.n {
                var exact = 0.0, magnitude = 0.0
                for q in 0..<p.k {
                    let term = Double(p.a[i * p.k + q]) * weight(p, element, n: j, k: q)
                    exact += term
                    magnitude += abs(term)
                }
                worst = max(worst, abs(Double(c[i * stride + j]) - exact) / max(magnitude, 1e-30))
            }
        }
        XCTAssertLessThan(worst, tolerance, "\(what): worst relative error \(worst)", file: file, line: line)
    }

    /// Few-row int8 products (matmul_i8.c): each activation row quantized to int16 with its own scale,
    /// integer sums. `c` must equal glimpse_kernels' definition evaluated here step by step (the same
    /// float operations, so bit for bit), and the double-precision product within the quantization's
    /// bound: half a step of the row's scale times Σ_k |W(n, k)|, plus 1e-5 · Σ|a·w| for the fp32 rest.
    func assertMatchesInt8Definition(_ c: [Float], _ p: Problem, _ what: String,
                                     file: StaticString = #filePath, line: UInt = #line) {
        let qmax = Float(min(32767, Int(Int32.max) / (128 * p.k)))
        var worst = 0.0
        for i in 0..<p.m {
            let row = p.a[(i * p.k)..<((i + 1) * p.k)]
            let amax = row.map(abs).max() ?? 0
            let inv = qmax / amax, step = amax / qmax
            let zeros = !(inv <= .greatestFiniteMagnitude)   // a zero row, or max |a| below ~1e-34
            let q = row.map { x -> Int in
                if zeros { return 0 }
                let y = (x * inv + 12582912) - 12582912
                return Int(min(qmax, max(-qmax, y)))
            }
            for j in 0..<p.n {
                var acc = 0, bound = 0.0, exact = 0.0, magnitude = 0.0
                for kk in 0..<p.k {
                    let index = p.outputMajor ? j * p.k + kk : kk * p.n + j
                    acc += q[kk] * Int(p.int8[index])
                    let w = weight(p, .int8, n: j, k: kk)
                    bound += abs(w)
                    exact += Double(row[row.startIndex + kk]) * w
                    magnitude += abs(Double(row[row.startIndex + kk]) * w)
                }
                let defined = zeros ? 0 : (Float(acc) * step) * p.scales[j]
                XCTAssertEqual(c[i * p.n + j].bitPattern, defined.bitPattern, "\(what): [\(i), \(j)] \(c[i * p.n + j]) vs \(defined)",
                               file: file, line: line)
                let allowed = zeros ? 1e-30 + 1e-34 * bound : 0.5 * Double(step) * bound * (1 + 1e-6) + 1e-5 * magnitude
                worst = max(worst, abs(Double(c[i * p.n + j]) - exact) / max(allowed, 1e-30))
            }
        }
        XCTAssertLessThanOrEqual(worst, 1, "\(what): error \(worst) of the quantization bound", file: file, line: line)
    }

    /// int8 at GPT-2's K (768 and 3072: qmax bounded by K so the int32 sums cannot overflow) and
    /// odd K past them, with the worst case for overflow (every weight -128, activations at full
    /// scale): the definition bit for bit on every path.
    func testInt8AtDecoderSizesAndTheOverflowBound() {
        let paths = SmallMatMul.Path.allCases.filter(\.isAvailable)
        for (m, n, k, outputMajor) in [(3, 197, 769, true), (3, 197, 769, false), (2, 70, 3072, false), (5, 40, 3073, true)] {
            var p = problem(m: m, n: n, k: k, outputMajor: outputMajor, seed: UInt64(k + m))
            let what = "int8 \(m)x\(n)x\(k) outputMajor=\(outputMajor)"
            assertMatchesInt8Definition(run(p, .int8, path: .portable), p, what)
            for path in paths { XCTAssertEqual(run(p, .int8, path: path), run(p, .int8, path: .portable), "\(path) \(what)") }
            p.int8 = [Int8](repeating: -128, count: p.int8.count)
            p.a = (0..<p.a.count).map { $0 % 7 == 0 ? 1 : -1 }
            assertMatchesInt8Definition(run(p, .int8, path: .portable), p, "\(what), weights -128")
            for path in paths { XCTAssertEqual(run(p, .int8, path: path), run(p, .int8, path: .portable), "\(path) \(what), weights -128") }
        }
    }

    /// int8 rows of zeros give zeros (so does a row too small to scale, max |a| ~1e-36), rows with a
    /// NaN or an infinity give NaN (and leave the other rows alone), on every path.
    func testInt8RowsOfZerosAndNonFiniteRows() {
        for path in SmallMatMul.Path.allCases where path.isAvailable {
            for outputMajor in [true, false] {
                var p = problem(m: 4, n: 40, k: 70, outputMajor: outputMajor, seed: 5)
                let clean = run(p, .int8, path: path)
                for kk in 0..<p.k { p.a[kk] = kk % 3 == 0 ? 1e-36 : 0 }
                p.a[2 * p.k + 9] = .nan
                p.a[3 * p.k + 1] = -.infinity
                let c = run(p, .int8, path: path)
                XCTAssertEqual(Array(c[0..<p.n]), [Float](repeating: 0, count: p.n), "\(path) zero row")
                XCTAssertEqual(Array(c[p.n..<(2 * p.n)]), Array(clean[p.n..<(2 * p.n)]), "\(path) clean row")
                XCTAssertTrue(c[(2 * p.n)...].allSatisfy(\.isNaN), "\(path) non-finite rows")
            }
        }
    }

    /// The door's strided output accumulated onto a prefill of 0.5 (a bias): `c` plus 0.5 in each
    /// row (within 1e-4), and nothing written past a row's `p.n` columns.
    func assertStridedAccumulation(_ p: Problem, _ matrix: WeightMatrix, matches c: [Float], _ what: String,
                                   file: StaticString = #filePath, line: UInt = #line) {
        let stride = p.n + 8
        var strided = [Float](repeating: 0.5, count: p.m * stride)
        BLAS.product(p.a, rows: p.m, weight: matrix, into: &strided, outStride: stride, accumulate: true)
        for i in 0..<p.m {
            for j in 0..<p.n {
                XCTAssertEqual(strided[i * stride + j], c[i * p.n + j] + 0.5, accuracy: 1e-4, what, file: file, line: line)
            }
            for j in p.n..<stride { XCTAssertEqual(strided[i * stride + j], 0.5, "\(what): wrote past the row", file: file, line: line) }
        }
    }

    static let shapes = [(1, 7, 5), (2, 33, 9), (3, 64, 64), (5, 83, 29), (8, 130, 67), (17, 70, 131), (32, 200, 96)]

    func testEveryPathMatchesTheDoubleReferenceAndThePortableKernelsBitForBit() throws {
        let paths = SmallMatMul.Path.allCases.filter(\.isAvailable)
        XCTAssertTrue(paths.contains(.portable))
        #if arch(x86_64)
        if CPUFeatures.current.isSuperset(of: [.avx2, .fma]) { XCTAssertTrue(paths.contains(.avx2), "AVX2 + FMA CPU without the avx2 path") }
        #endif
        for (index, (m, n, k)) in Self.shapes.enumerated() {
            for outputMajor in [true, false] {
                let p = problem(m: m, n: n, k: k, outputMajor: outputMajor, seed: UInt64(index * 2 + (outputMajor ? 1 : 0)))
                for element in WeightMatrix.Element.allCases {
                    let portable = run(p, element, path: .portable)
                    if element == .int8 {
                        assertMatchesInt8Definition(portable, p, "portable int8 \(m)x\(n)x\(k) outputMajor=\(outputMajor)")
                    } else {
                        assertMatchesReference(portable, p, element, "portable \(element) \(m)x\(n)x\(k) outputMajor=\(outputMajor)")
                    }
                    for path in paths where path != .portable {
                        let ours = run(p, element, path: path)
                        XCTAssertEqual(ours, portable, "\(path) \(element) \(m)x\(n)x\(k) outputMajor=\(outputMajor) differs from portable")
                    }
                }
            }
        }
    }

    /// The property batched decoding relies on: a row's result is the same whether it is computed
    /// alone or among any other rows (bitwise, on every path).
    func testARowsResultDoesNotDependOnItsBatch() throws {
        for path in SmallMatMul.Path.allCases where path.isAvailable {
            for outputMajor in [true, false] {
                let p = problem(m: 32, n: 96, k: 200, outputMajor: outputMajor, seed: 99)
                for element in WeightMatrix.Element.allCases {
                    let all = run(p, element, path: path)
                    for rows in [0..<1, 5..<8, 3..<27, 31..<32, 7..<19] {
                        let part = run(p, element, path: path, rows: rows)
                        XCTAssertEqual(part, Array(all[rows.lowerBound * p.n..<rows.upperBound * p.n]),
                                       "\(path) \(element) rows \(rows) outputMajor=\(outputMajor)")
                    }
                }
            }
        }
    }

    /// Through the door (threads split the columns): the same values for M = 1 and M = 24 rows,
    /// within 1e-4 (relative) of OpenBLAS, for both weight layouts.
    func testDoorMatchesOpenBLASAndIsBatchInvariantWithThreads() {
        for outputMajor in [true, false] {
            let (n, k) = (768, 384)   // above the parallel threshold
            let p = problem(m: 24, n: n, k: k, outputMajor: outputMajor, seed: 7)
            let w = Tensor(shape: outputMajor ? [n, k] : [k, n], values: p.w)
            let matrix = WeightMatrix(w, layout: outputMajor ? .outputMajor : .inputMajor)
            var batch = [Float](repeating: 0, count: 24 * n), reference = batch
            BLAS.product(p.a, rows: 24, weight: matrix, into: &batch)
            BLAS.openBLAS(m: 24, n: n, k: k, a: p.a, lda: k, b: w.data, ldb: outputMajor ? k : n, transposeB: outputMajor,
                          c: &reference, ldc: n, beta: 0)
            let worst = zip(batch, reference).map { abs($0 - $1) / max(abs($1), 1) }.max() ?? 0
            // Sums of 384 products of magnitude ~2, in two summation orders: ~1e-5 apart.
            XCTAssertLessThan(worst, 1e-4, "door vs OpenBLAS outputMajor=\(outputMajor)")
            for r in [0, 13, 23] {
                var single = [Float](repeating: 0, count: n)
                p.a.withUnsafeBufferPointer { BLAS.product($0.baseAddress! + r * k, rows: 1, weight: matrix, into: &single) }
                XCTAssertEqual(single, Array(batch[r * n..<(r + 1) * n]), "row \(r) alone vs in a batch of 24")
            }
        }
    }

    /// The loader turns int8 Conv1D matrices into [out, in] copies (`outputMajorCopy`): every element
    /// lands at its transposed place (odd sizes), and int8 products, exact integer sums on either
    /// layout, keep their bits.
    func testOutputMajorCopyOfConv1DMatrices() {
        for (n, k) in [(130, 77), (64, 64), (1100, 520)] {
            let p = problem(m: 3, n: n, k: k, outputMajor: false, seed: 9)
            forEachReducedPrecisionMatrix(p) { element, matrix in
                guard element == .int8 else { return }
                let turned = matrix.outputMajorCopy()
                XCTAssertEqual(turned.layout, .outputMajor)
                XCTAssertEqual(turned.outFeatures, n)
                XCTAssertEqual(turned.inFeatures, k)
                let size = element.byteSize
                var misplaced = 0
                for r in 0..<k {
                    for c in 0..<n where memcmp(turned.base + (c * k + r) * size, matrix.base + (r * n + c) * size, size) != 0 {
                        misplaced += 1
                    }
                }
                XCTAssertEqual(misplaced, 0, "\(element) \(n)x\(k)")
                var before = [Float](repeating: 0, count: p.m * n), after = before
                p.a.withUnsafeBufferPointer {
                    BLAS.product($0.baseAddress!, rows: p.m, weight: matrix, into: &before)
                    BLAS.product($0.baseAddress!, rows: p.m, weight: turned, into: &after)
                }
                XCTAssertEqual(after, before, "int8 \(n)x\(k): the same bits from either layout")
            }
        }
    }

    /// `body` with the problem's bf16 and its int8 weights as matrices of its layout.
    func forEachReducedPrecisionMatrix(_ p: Problem, _ body: (WeightMatrix.Element, WeightMatrix) -> Void) {
        p.bf16.withUnsafeBytes { bf in
            p.int8.withUnsafeBytes { q in
                let scales = Tensor(shape: [p.n], values: p.scales)
                let layout: WeightMatrix.Layout = p.outputMajor ? .outputMajor : .inputMajor
                for (element, base) in [(WeightMatrix.Element.bf16, bf.baseAddress!), (.int8, q.baseAddress!)] {
                    body(element, WeightMatrix(element: element, layout: layout, outFeatures: p.n, inFeatures: p.k,
                                               base: base, owner: scales.storage, scales: element == .int8 ? scales : nil))
                }
            }
        }
    }

    /// Many rows with bf16/int8 weights go through the fp32 conversion into OpenBLAS: in one piece
    /// through the door, and in several (as a vocabulary head's) with smaller pieces.
    func testReducedPrecisionLargeProductsConvertIntoOpenBLAS() {
        OneDNNMatMul.select(.openBLAS, for: .reduced)
        defer { OneDNNMatMul.select(nil, for: .reduced) }
        for outputMajor in [true, false] {
            let p = problem(m: 40, n: 1100, k: 520, outputMajor: outputMajor, seed: 3)   // 40 > maxRows
            XCTAssertGreaterThan(p.m, SmallMatMul.maxRows)
            forEachReducedPrecisionMatrix(p) { element, matrix in
                var c = [Float](repeating: 0, count: p.m * p.n)
                BLAS.product(p.a, rows: p.m, weight: matrix, into: &c)
                assertMatchesReference(c, p, element, "\(element) conversion path outputMajor=\(outputMajor)")
                c = [Float](repeating: 0, count: p.m * p.n)
                BLAS.widenedProduct(p.a, rows: p.m, lda: p.k, weight: matrix, into: &c, ldc: p.n, accumulate: false,
                                    piece: 1 << 19)   // panels of 1008 and 92 channels
                assertMatchesReference(c, p, element, "\(element) conversion in pieces outputMajor=\(outputMajor)")
            }
        }
    }

    /// Where the CPU has AVX512_BF16, many rows with bf16/int8 weights (both layouts) go through
    /// Glimpse's dot-product kernels: against a double-precision product of the bf16-rounded
    /// activations within 1e-5 of Σ|a·w| (only fp32 accumulation left), hence within 2^-8 of the fp32
    /// product; odd K, column counts off the 12-column tile, strided and accumulated outputs; a row's
    /// result the same bits alone and in any batch (1 row, 17, all).
    func testReducedPrecisionLargeProductsOnBF16DotProducts() throws {
        try XCTSkipUnless(OneDNNMatMul.canRun(.glimpse, for: .reduced), "no AVX512_BF16 on this CPU")
        XCTAssertFalse(OneDNNMatMul.canRun(.glimpse, for: .fp32))
        XCTAssertTrue(OneDNNMatMul.select(.glimpse, for: .reduced))
        defer { OneDNNMatMul.select(nil, for: .reduced) }
        for (m, n, k, outputMajor) in [(33, 136, 200, true), (197, 100, 77, true), (64, 1100, 520, true), (40, 12, 31, true),
                                        (33, 136, 200, false), (197, 100, 77, false), (40, 1100, 64, false)] {
            let p = problem(m: m, n: n, k: k, outputMajor: outputMajor, seed: UInt64(m + n))
            var rounded = p
            var bits = [UInt16](repeating: 0, count: p.a.count)
            gk_f32_to_bf16(p.a, &bits, p.a.count)
            rounded.a = bits.map { Float(bitPattern: UInt32($0) << 16) }
            forEachReducedPrecisionMatrix(p) { element, matrix in
                let what = "bf16 dot \(element) m=\(m) n=\(n) k=\(k) outputMajor=\(outputMajor)"
                XCTAssertTrue(BF16DotMatMul.handles(matrix), what)
                var c = [Float](repeating: 0, count: p.m * p.n)
                BLAS.product(p.a, rows: p.m, weight: matrix, into: &c)
                assertMatchesReference(c, rounded, element, what)
                assertMatchesReference(c, p, element, what, tolerance: 1.0 / 256)
                for rows in [0..<1, 5..<22, 0..<m] {
                    var part = [Float](repeating: 0, count: rows.count * p.n)
                    p.a.withUnsafeBufferPointer { a in
                        BF16DotMatMul.run(a.baseAddress! + rows.lowerBound * p.k, rows: rows.count, lda: p.k, weight: matrix,
                                          into: &part, ldc: p.n, accumulate: false)
                    }
                    XCTAssertEqual(part, Array(c[(rows.lowerBound * p.n)..<(rows.upperBound * p.n)]), "\(what): rows \(rows) alone differ")
                }
                assertStridedAccumulation(p, matrix, matches: c, what)
            }
        }
    }

    /// Where oneDNN runs bf16 matmul, many rows with bf16/int8 weights go through it: activations
    /// rounded to bf16 (relative error ≤ 2^-9 each), fp32 accumulation, so |ours - exact| stays
    /// within 2^-8 · Σ|a·w|; strided and accumulating outputs too; the packed copy is made once.
    func testReducedPrecisionLargeProductsThroughOneDNN() throws {
        try XCTSkipUnless(OneDNNMatMul.isAvailable(.reduced), "oneDNN has no bf16 matmul on this CPU: \(OneDNNMatMul.reason(.reduced))")
        XCTAssertTrue(OneDNNMatMul.select(.oneDNN, for: .reduced))
        defer { OneDNNMatMul.select(nil, for: .reduced) }
        for (m, outputMajor) in [(33, true), (197, false), (64, false), (40, true)] {
            let p = problem(m: m, n: 136, k: 200, outputMajor: outputMajor, seed: UInt64(m))
            forEachReducedPrecisionMatrix(p) { element, matrix in
                let what = "oneDNN \(element) m=\(m) outputMajor=\(outputMajor)"
                var c = [Float](repeating: 0, count: p.m * p.n)
                BLAS.product(p.a, rows: p.m, weight: matrix, into: &c)
                assertMatchesReference(c, p, element, what, tolerance: 1.0 / 256)
                XCTAssertGreaterThan(matrix.packedForOneDNN.byteCount, 0, "\(what): no packed copy")
                assertStridedAccumulation(p, matrix, matches: c, what)
            }
        }
    }

    /// Large fp32 products on both engines: OpenBLAS, and oneDNN with packed fp32 weights where it
    /// runs (no down-conversion: within 1e-5 of Σ|a·w| of the exact product, as OpenBLAS is). On
    /// oneDNN a row's result must not depend on how many rows share the call nor where the thread
    /// split falls (an encoder pass of one image and of a batch give the same features): bitwise
    /// equal. OpenBLAS's sgemm blocks by rows, so there only the tolerance holds.
    func testLargeFp32ProductsOnEveryEngine() throws {
        let engines: [OneDNNMatMul.Engine] = OneDNNMatMul.isAvailable(.fp32) ? [.openBLAS, .oneDNN] : [.openBLAS]
        defer { OneDNNMatMul.select(nil, for: .fp32) }
        for engine in engines {
            XCTAssertTrue(OneDNNMatMul.select(engine, for: .fp32))
            for (m, outputMajor) in [(33, true), (197, false), (394, true), (64, false)] {
                let p = problem(m: m, n: 136, k: 200, outputMajor: outputMajor, seed: UInt64(m) + 7)
                let what = "\(engine) fp32 m=\(m) outputMajor=\(outputMajor)"
                let matrix = WeightMatrix(Tensor(shape: outputMajor ? [p.n, p.k] : [p.k, p.n], values: p.w),
                                          layout: outputMajor ? .outputMajor : .inputMajor)
                var c = [Float](repeating: 0, count: p.m * p.n)
                BLAS.product(p.a, rows: p.m, weight: matrix, into: &c)
                assertMatchesReference(c, p, .f32, what)
                if engine == .oneDNN { XCTAssertGreaterThan(matrix.packedForOneDNN.byteCount, 0, "\(what): no packed copy") }
                // The last 40 rows alone, and the first 33 alone: the same bits as in the whole call.
                for rows in [max(0, m - 40)..<m, 0..<33] {
                    var part = [Float](repeating: 0, count: rows.count * p.n)
                    p.a.withUnsafeBufferPointer { a in
                        BLAS.product(a.baseAddress! + rows.lowerBound * p.k, rows: rows.count, weight: matrix, into: &part)
                    }
                    var sub = p
                    sub.m = rows.count
                    sub.a = Array(p.a[(rows.lowerBound * p.k)..<(rows.upperBound * p.k)])
                    assertMatchesReference(part, sub, .f32, "\(what): rows \(rows)")
                    if engine == .oneDNN && rows.count > SmallMatMul.maxRows {
                        XCTAssertEqual(part, Array(c[(rows.lowerBound * p.n)..<(rows.upperBound * p.n)]), "\(what): rows \(rows) alone differ")
                    }
                }
                assertStridedAccumulation(p, matrix, matches: c, what)
            }
        }
    }

    func testPathSelectionAndItsReason() {
        let original = SmallMatMul.path
        defer { SmallMatMul.select(original) }
        XCTAssertTrue(SmallMatMul.select(.portable))
        XCTAssertEqual(SmallMatMul.path, .portable)
        XCTAssertEqual(SmallMatMul.pathReason, "selected by the program")
        #if arch(x86_64)
        // fp32 leaves the slow portable path for OpenBLAS; bf16/int8 still come here.
        XCTAssertFalse(SmallMatMul.handles(rows: 1, element: .f32))
        XCTAssertTrue(SmallMatMul.handles(rows: 1, element: .int8))
        #endif
        if !SmallMatMul.Path.avx512.isAvailable { XCTAssertFalse(SmallMatMul.select(.avx512)) }
        XCTAssertFalse(SmallMatMul.handles(rows: SmallMatMul.maxRows + 1, element: .bf16))
    }

    func testReadOnlySumReadsEveryElement() {
        let values = (0..<1003).map { Float($0 % 7) }
        XCTAssertEqual(gk_sum_read(values, values.count), values.reduce(0, +))
    }
}
