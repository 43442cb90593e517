import Foundation

/// A dense layer. PyTorch `nn.Linear` stores weight as [out, in] (y = x·Wᵀ + b); GPT-2's `Conv1D`
/// stores it as [in, out] (y = x·W + b). Both run as one sgemm over all rows.
struct Linear {
    let weight: Tensor
    let bias: Tensor?
    let inFeatures: Int
    let outFeatures: Int
    /// true for GPT-2 Conv1D ([in, out]); false for nn.Linear ([out, in]).
    let inputMajor: Bool

    /// Loads `<prefix>.weight` / `<prefix>.bias` in nn.Linear layout ([out, in]).
    static func linear(_ w: WeightLoader, _ name: String, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws -> Linear {
        let s = w.scoped(name)
        return Linear(weight: try s.tensor("weight", shape: [outFeatures, inFeatures]),
                      bias: bias ? try s.tensor("bias", shape: [outFeatures]) : nil,
                      inFeatures: inFeatures, outFeatures: outFeatures, inputMajor: false)
    }

    /// Loads GPT-2's Conv1D (`<prefix>.weight` [in, out], `<prefix>.bias` [out]).
    static func conv1D(_ w: WeightLoader, _ name: String, in inFeatures: Int, out outFeatures: Int) throws -> Linear {
        let s = w.scoped(name)
        return Linear(weight: try s.tensor("weight", shape: [inFeatures, outFeatures]),
                      bias: try s.tensor("bias", shape: [outFeatures]),
                      inFeatures: inFeatures, outFeatures: outFeatures, inputMajor: true)
    }

    /// out[rows × outFeatures] = x[rows × inFeatures] · W (+ b); `xStride`/`outStride` allow column slices.
    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>,
                        xStride: Int? = nil, outStride: Int? = nil) {
        let ldo = outStride ?? outFeatures
        if let bias { Kernels.broadcastRows(bias.data, rows: rows, cols: outFeatures, into: out, rowStride: ldo) }
        BLAS.gemm(m: rows, n: outFeatures, k: inFeatures,
                  a: x, lda: xStride ?? inFeatures,
                  b: weight.data, ldb: inputMajor ? outFeatures : inFeatures, transposeB: !inputMajor,
                  c: out, ldc: ldo, beta: bias == nil ? 0 : 1)
    }
}

/// torch.nn.LayerNorm over the last dimension.
struct LayerNorm {
    let weight: Tensor
    let bias: Tensor
    let eps: Float
    var dim: Int { weight.count }

    init(_ w: WeightLoader, _ name: String, dim: Int, eps: Double) throws {
        let s = w.scoped(name)
        weight = try s.tensor("weight", shape: [dim])
        bias = try s.tensor("bias", shape: [dim])
        self.eps = Float(eps)
    }

    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        Kernels.layerNorm(x, rows: rows, dim: dim, gamma: weight.data, beta: bias.data, eps: eps, into: out)
    }
}

/// A scratch buffer allocated once per run state and reused across steps (no allocation in hot loops).
final class Scratch {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init(_ capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = .allocate(capacity: self.capacity)
        pointer.initialize(repeating: 0, count: self.capacity)
    }

    /// Grows (never shrinks) to hold `count` floats; contents are not preserved across growth.
    @discardableResult
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = .allocate(capacity: count)
            pointer.initialize(repeating: 0, count: count)
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}
