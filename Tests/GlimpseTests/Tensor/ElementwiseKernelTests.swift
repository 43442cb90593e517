import CGlimpseKernels
import Foundation
import XCTest
@testable import Glimpse

/// The vectorized activations and softmax exponentials (CGlimpseKernels/elementwise.c) against a
/// double-precision reference, and bitwise equal on every path this machine has.
final class ElementwiseKernelTests: XCTestCase {
    private var paths: [Int32] { (0..<Int32(GK_PATH_COUNT)).filter { gk_path_available($0) != 0 } }

    /// -12...12 densely, plus zeros, tiny, large and very large magnitudes.
    private let inputs: [Float] = stride(from: -12.0, through: 12.0, by: 0.00071).map { Float($0) }
        + [0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 30, -30, 87, -87, 100, -100, 1e6, -1e6]

    private static func reference(_ kind: Int32, _ x: Double) -> Double {
        switch kind {
        case Int32(GK_ACT_GELU): return 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
        case Int32(GK_ACT_GELU_TANH): return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
        case Int32(GK_ACT_GELU_FAST): return 0.5 * x * (1 + tanh(x * 0.7978845608 * (1 + 0.044715 * x * x)))
        case Int32(GK_ACT_QUICK_GELU): return x / (1 + exp(-1.702 * x))
        default: return x / (1 + exp(-x))
        }
    }

    func testActivationsMatchADoubleReferenceOnEveryPath() {
        let kinds = [GK_ACT_GELU, GK_ACT_GELU_TANH, GK_ACT_GELU_FAST, GK_ACT_QUICK_GELU, GK_ACT_SILU].map { Int32($0) }
        XCTAssertEqual(paths.first, Int32(GK_PATH_PORTABLE))
        for kind in kinds {
            var first: [Float]?
            for path in paths {
                var x = inputs
                gk_activate_on(path, kind, &x, x.count)
                var worst = 0.0, at: Float = 0
                for (v, y) in zip(inputs, x) {
                    let ref = Self.reference(kind, Double(v))
                    // erf to 1.5e-7 (Abramowitz & Stegun 7.1.26) scaled by x, plus float rounding of the steps.
                    let excess = abs(Double(y) - ref) - (1.5e-7 * (1 + abs(Double(v))) + 1e-6 * abs(ref))
                    if !(excess <= worst) { worst = excess; at = v }
                }
                XCTAssertLessThanOrEqual(worst, 0, "activation \(kind) on path \(path): worst at x = \(at)")
                if let first {
                    XCTAssertTrue(first.elementsEqual(x) { $0.bitPattern == $1.bitPattern }, "activation \(kind): path \(path) differs from portable")
                } else {
                    first = x
                }
            }
        }
    }

    func testSoftmaxExponentialsAndSumOnEveryPath() {
        var generator = SystemRandomNumberGenerator()
        for count in [1, 15, 16, 17, 197, 1000] {
            let row = (0..<count).map { _ in Float.random(in: -40...6, using: &generator) }
            let shift = row.max() ?? 0
            var first: ([Float], Float)?
            for path in paths {
                var x = row
                let sum = gk_exp_sum_on(path, &x, x.count, shift)
                var total = 0.0
                for (v, e) in zip(row, x) {
                    let ref = exp(Double(v - shift))   // the argument as the kernel has it (rounded to float)
                    total += ref
                    XCTAssertEqual(Double(e), ref, accuracy: 3e-7 * ref + 1e-38, "exp(\(v) - \(shift)) on path \(path)")
                }
                XCTAssertEqual(Double(sum), total, accuracy: 1e-6 * total, "sum of \(count) on path \(path)")
                if let first {
                    XCTAssertTrue(first.0.elementsEqual(x) { $0.bitPattern == $1.bitPattern } && first.1.bitPattern == sum.bitPattern,
                                  "exp_sum of \(count): path \(path) differs from portable")
                } else {
                    first = (x, sum)
                }
            }
        }
        // Masked scores (-inf) get exactly 0; NaN stays NaN (the logits check downstream must see it).
        for path in paths {
            var x: [Float] = [0, -.infinity, -200, .nan]
            let sum = gk_exp_sum_on(path, &x, x.count, 0)
            XCTAssertEqual(Array(x[0..<3]), [1, 0, 0], "path \(path)")
            XCTAssertTrue(x[3].isNaN && sum.isNaN, "path \(path)")
            for kind in [GK_ACT_GELU, GK_ACT_GELU_TANH, GK_ACT_QUICK_GELU, GK_ACT_SILU].map({ Int32($0) }) {
                var y: [Float] = [.nan, .infinity, 3]
                gk_activate_on(path, kind, &y, y.count)
                XCTAssertTrue(y[0].isNaN, "activation \(kind) of NaN on path \(path)")
                XCTAssertEqual(y[1], .infinity, "activation \(kind) of inf on path \(path)")
            }
        }
        // Rows of a softmax sum to 1 (a fully masked row is all zeros, as before).
        var rows: [Float] = [0.5, -1, 3, 2, -.infinity, -.infinity, -.infinity, -.infinity]
        Kernels.softmaxRows(&rows, rows: 2, cols: 4)
        XCTAssertEqual(rows[0..<4].reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(Array(rows[4..<8]), [0, 0, 0, 0])
    }
}
