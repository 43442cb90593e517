import XCTest
@testable import Glimpse

/// Kernels against torch (fixtures by tools/make_kernel_fixtures.py) and sgemm-based code against naive loops.
final class KernelTests: XCTestCase {
    struct Reference: Decodable {
        let rows, dim: Int
        let x, gamma, beta, layer_norm, gelu, gelu_tanh, quick_gelu, silu, softmax, log_softmax_row0: [Float]
        let layer_norm_eps: Float
    }

    func reference() throws -> Reference {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/kernels/kernels", withExtension: "json"))
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }

    func assertClose(_ a: [Float], _ b: [Float], _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst, tol, "\(what): max |diff| \(worst)", file: file, line: line)
    }

    func testLayerNormMatchesTorch() throws {
        let r = try reference()
        var out = [Float](repeating: 0, count: r.x.count)
        Kernels.layerNorm(r.x, rows: r.rows, dim: r.dim, gamma: r.gamma, beta: r.beta, eps: r.layer_norm_eps, into: &out)
        assertClose(out, r.layer_norm, 1e-5, "layer_norm")
    }

    func testActivationsMatchTorch() throws {
        let r = try reference()
        for (act, expected) in [(Kernels.Activation.gelu, r.gelu), (.geluNew, r.gelu_tanh), (.geluPytorchTanh, r.gelu_tanh),
                                (.quickGelu, r.quick_gelu), (.silu, r.silu)] {
            var x = r.x
            Kernels.activate(&x, count: x.count, act)
            assertClose(x, expected, 1e-5, act.rawValue)
        }
        XCTAssertThrowsError(try Kernels.Activation(name: "swiglu-unknown"))
    }

    func testSoftmaxMatchesTorchAndIsStable() throws {
        let r = try reference()
        var x = r.x
        Kernels.softmaxRows(&x, rows: r.rows, cols: r.dim)
        assertClose(x, r.softmax, 1e-6, "softmax")
        var out = [Float](repeating: 0, count: r.dim)
        Kernels.logSoftmax(r.x, count: r.dim, into: &out)
        assertClose(out, r.log_softmax_row0, 1e-5, "log_softmax")
        var big: [Float] = [1000, 1001, -.infinity]
        Kernels.softmaxRows(&big, rows: 1, cols: 3)
        assertClose(big, [0.26894142, 0.7310586, 0], 1e-6, "softmax of large logits")
    }

    /// gemm through every transpose/stride combination the engine uses, against a Double loop.
    func testGemmMatchesNaiveProduct() {
        var rng = SplitMix64(seed: 7)
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Int(rng.next() % 2001) - 1000) / 500 } }
        for (m, n, k) in [(1, 7, 5), (3, 50, 17), (197, 64, 33), (5, 1, 9)] {
            for transposeB in [false, true] {
                let lda = k + 3, ldb = (transposeB ? k : n) + 2, ldc = n + 1
                let a = random(m * lda), b = random((transposeB ? n : k) * ldb)
                var c = [Float](repeating: 0, count: m * ldc)
                BLAS.gemm(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: &c, ldc: ldc, alpha: 0.5)
                var worst = 0.0
                for i in 0..<m { for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k { s += Double(a[i * lda + p]) * Double(transposeB ? b[j * ldb + p] : b[p * ldb + j]) }
                    worst = max(worst, abs(0.5 * s - Double(c[i * ldc + j])))
                } }
                XCTAssertLessThan(worst, 1e-3, "gemm \(m)x\(n)x\(k) transposeB=\(transposeB) (OpenBLAS core \(BLAS.coreName))")
            }
        }
    }

    /// The one attention routine (per-head sgemm, causal offset, strided operands) against a naive loop.
    func testAttentionMatchesNaiveLoop() {
        var rng = SplitMix64(seed: 11)
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Int(rng.next() % 2001) - 1000) / 700 } }
        let heads = 3, d = 4, width = heads * d, queries = 2, keys = 5, offset = 3, stride = 3 * width
        let q = random(queries * stride), kv = random(keys * stride)
        var out = [Float](repeating: 0, count: queries * width)
        var scores = [Float](repeating: 0, count: queries * keys)
        var probs = [Float](repeating: 0, count: heads * queries * keys)
        let scale: Float = 0.5
        q.withUnsafeBufferPointer { qp in kv.withUnsafeBufferPointer { kp in
            Attention.attend(.init(query: qp.baseAddress!, queryStride: stride, key: kp.baseAddress! + width, keyStride: stride,
                                   value: kp.baseAddress! + 2 * width, valueStride: stride, queryRows: queries, keyRows: keys,
                                   heads: heads, headDim: d, scale: scale, causalOffset: offset),
                             into: &out, outStride: width, scores: &scores, weights: &probs)
        } }
        for h in 0..<heads {
            for i in 0..<queries {
                let visible = min(keys, offset + i + 1)
                var s = (0..<visible).map { j in (0..<d).reduce(0.0) { $0 + Double(q[i * stride + h * d + $1]) * Double(kv[j * stride + width + h * d + $1]) } * Double(scale) }
                let mx = s.max() ?? 0
                s = s.map { exp($0 - mx) }
                let total = s.reduce(0, +)
                for j in 0..<keys {
                    let p = j < visible ? s[j] / total : 0
                    XCTAssertEqual(Double(probs[(h * queries + i) * keys + j]), p, accuracy: 1e-5)
                }
                for c in 0..<d {
                    let expected = (0..<visible).reduce(0.0) { $0 + s[$1] / total * Double(kv[$1 * stride + 2 * width + h * d + c]) }
                    XCTAssertEqual(Double(out[i * width + h * d + c]), expected, accuracy: 1e-5)
                }
            }
        }
    }

    func testBeamReorderMovesOnlyChangedBeams() {
        let state = DecoderState(layers: 1, width: 2, beamCapacity: 3, lengthCapacity: 4)
        state.length = 2
        for b in 0..<3 { for i in 0..<4 { state.keyRows(0, beam: b)[i] = Float(b * 10 + i); state.valueRows(0, beam: b)[i] = Float(100 + b) } }
        state.reorder(parents: [2, 0, 0])   // beam 0 <- 2, beam 1 <- 0, beam 2 <- 0
        XCTAssertEqual(Array(UnsafeBufferPointer(start: state.keyRows(0, beam: 0), count: 4)), [20, 21, 22, 23])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: state.keyRows(0, beam: 1), count: 4)), [0, 1, 2, 3])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: state.keyRows(0, beam: 2), count: 4)), [0, 1, 2, 3])
        XCTAssertEqual(state.valueRows(0, beam: 0)[0], 102)
    }
}
