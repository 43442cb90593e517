import CGlimpseKernels
import Foundation

/// A layer's weight matrix as the checkpoint stores it: fp32, bf16, or int8 with one scale per
/// output channel (docs/quantization.md), in nn.Linear ([out, in]) or GPT-2 Conv1D ([in, out])
/// layout. Memory is borrowed from the model file's mapping or owned by `owner`; the matrix is
/// read-only and shareable across threads. Products go through `BLAS.product` (the one door).
public struct WeightMatrix: @unchecked Sendable {
    public enum Element: String, Sendable, CaseIterable {
        case f32 = "fp32", bf16, int8

        public var byteSize: Int {
            switch self {
            case .f32: return 4
            case .bf16: return 2
            case .int8: return 1
            }
        }
    }

    public enum Layout: Sendable {
        /// [out, in] rows, y = x·Wᵀ (torch nn.Linear, lm_head).
        case outputMajor
        /// [in, out] rows, y = x·W (GPT-2 Conv1D).
        case inputMajor
    }

    public let element: Element
    public let layout: Layout
    public let outFeatures: Int
    public let inFeatures: Int
    /// Element (0, 0) of the stored matrix.
    let base: UnsafeRawPointer
    /// Keeps `base` alive (a memory mapping or a tensor's storage).
    private let owner: AnyObject
    /// int8: scales [outFeatures] (y = scale[n] · Σ x·q).
    let scales: Tensor?
    /// The packed copy large products use where `OneDNNMatMul` runs them (made on first use).
    let packedForOneDNN = OneDNNWeights()

    /// Elements between consecutive stored rows.
    var rowStride: Int { layout == .outputMajor ? inFeatures : outFeatures }
    /// Bytes of weights one product reads.
    public var byteCount: Int { outFeatures * inFeatures * element.byteSize + (scales.map { 4 * $0.count } ?? 0) }

    /// An fp32 matrix over `tensor` (shape [out, in] or [in, out] by `layout`).
    public init(_ tensor: Tensor, layout: Layout) {
        precondition(tensor.rank == 2, "a weight matrix is 2-D, got \(tensor.shape)")
        element = .f32
        self.layout = layout
        outFeatures = layout == .outputMajor ? tensor.shape[0] : tensor.shape[1]
        inFeatures = layout == .outputMajor ? tensor.shape[1] : tensor.shape[0]
        base = UnsafeRawPointer(tensor.data)
        owner = tensor.storage
        scales = nil
    }

    /// A bf16 or int8 matrix over `base` (kept alive by `owner`); int8 needs `scales` [outFeatures].
    init(element: Element, layout: Layout, outFeatures: Int, inFeatures: Int,
         base: UnsafeRawPointer, owner: AnyObject, scales: Tensor?) {
        precondition(element != .int8 || scales?.count == outFeatures, "int8 weights need one scale per output channel")
        self.element = element
        self.layout = layout
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.base = base
        self.owner = owner
        self.scales = element == .int8 ? scales : nil
    }

    /// The same int8 matrix stored as [out, in] rows, in memory this matrix owns (an [out, in]
    /// matrix is returned as it is), transposed on the idle cores. The loader turns int8 matrices
    /// only: fp32 and bf16 ones are used as stored.
    func outputMajorCopy() -> WeightMatrix {
        guard layout == .inputMajor else { return self }
        precondition(element == .int8, "only int8 matrices are turned")
        let rows = inFeatures, columns = outFeatures
        let buffer = WeightBuffer(bytes: rows * columns)
        let source = base, target = buffer.pointer
        let parts = rows * columns >= 1 << 20 ? SmallMatMul.idleThreads : 1
        Parallel.forEach(iterations: parts) { t in
            gk_transpose_bytes(source, target, rows, columns, rows * t / parts, rows * (t + 1) / parts)
        }
        return WeightMatrix(element: element, layout: .outputMajor, outFeatures: outFeatures, inFeatures: inFeatures,
                            base: UnsafeRawPointer(target), owner: buffer, scales: scales)
    }

    /// The fp32 tensor of an fp32 matrix, in stored layout (nil for bf16/int8).
    var floats: UnsafePointer<Float>? { element == .f32 ? base.assumingMemoryBound(to: Float.self) : nil }

    /// Output channels n0..<n1 widened to fp32 into `out`: [n1-n0, in] rows for outputMajor,
    /// [in, n1-n0] rows for inputMajor (int8 multiplied by its scales: the dequantized weights).
    func widen(channels range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let width = range.count, k = inFeatures
        switch (element, layout) {
        case (.f32, .outputMajor):
            out.update(from: base.assumingMemoryBound(to: Float.self) + range.lowerBound * k, count: width * k)
        case (.f32, .inputMajor):
            let w = base.assumingMemoryBound(to: Float.self)
            for r in 0..<k { (out + r * width).update(from: w + r * outFeatures + range.lowerBound, count: width) }
        case (.bf16, .outputMajor):
            gk_bf16_to_f32(base.assumingMemoryBound(to: UInt16.self) + range.lowerBound * k, out, width * k)
        case (.bf16, .inputMajor):
            let w = base.assumingMemoryBound(to: UInt16.self)
            for r in 0..<k { gk_bf16_to_f32(w + r * outFeatures + range.lowerBound, out + r * width, width) }
        case (.int8, .outputMajor):
            let w = base.assumingMemoryBound(to: Int8.self), s = scales!.data
            for (j, n) in range.enumerated() {
                let row = w + n * k, dst = out + j * k, scale = s[n]
                for i in 0..<k { dst[i] = Float(row[i]) * scale }
            }
        case (.int8, .inputMajor):
            let w = base.assumingMemoryBound(to: Int8.self), s = scales!.data + range.lowerBound
            for r in 0..<k {
                let row = w + r * outFeatures + range.lowerBound, dst = out + r * width
                for j in 0..<width { dst[j] = Float(row[j]) * s[j] }
            }
        }
    }
}

/// Bytes a weight matrix owns (a transposed copy), 64-byte aligned for the kernels' loads.
final class WeightBuffer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer

    init(bytes: Int) {
        pointer = .allocate(byteCount: max(bytes, 1), alignment: 64)
    }

    deinit { pointer.deallocate() }
}
