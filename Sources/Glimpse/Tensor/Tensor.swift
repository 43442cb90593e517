import Foundation

/// Contiguous Float32 storage, either owned (allocated here) or borrowed from a memory mapping
/// that `owner` keeps alive (F32 weights are used in place, without a copy).
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private let owner: AnyObject?
    private let owned: Bool

    /// Allocates `count` zero-initialized floats.
    public init(count: Int) {
        precondition(count >= 0)
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
        self.count = count
        owner = nil
        owned = true
    }

    /// Wraps memory that `owner` keeps alive (e.g. a memory-mapped safetensors file).
    public init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = pointer
        self.count = count
        self.owner = owner
        owned = false
    }

    deinit {
        if owned { pointer.deallocate() }
    }
}

/// A shaped view over Float32 storage (row-major, contiguous). Views share storage.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: TensorStorage
    public let offset: Int

    public init(zeros shape: [Int]) {
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
        offset = 0
    }

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { storage.pointer.update(from: base, count: values.count) }
        }
    }

    public init(shape: [Int], storage: TensorStorage, offset: Int = 0) {
        precondition(offset + shape.reduce(1, *) <= storage.count, "view \(shape)+\(offset) exceeds storage \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.offset = offset
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    /// Pointer to the first element of this view.
    public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// A view with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage, offset: offset)
    }

    /// A view of index `i` along the first dimension.
    public subscript(index i: Int) -> Tensor {
        precondition(rank >= 1 && i >= 0 && i < shape[0], "index \(i) out of range for \(shape)")
        let inner = Array(shape.dropFirst())
        return Tensor(shape: inner, storage: storage, offset: offset + i * inner.reduce(1, *))
    }

    /// The elements, copied out (tests, serialization).
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
}
