import Foundation

/// Writes safetensors files (F32 values, or raw bytes of any dtype Glimpse reads) the way the
/// reference implementation does: tensors laid out by element width then name order, header JSON in compact form with `__metadata__` first, padded with spaces to a
/// multiple of 8 bytes so every tensor's data stays aligned when the file is mapped.
public enum SafeTensorsWriter {
    /// One tensor to write.
    public struct Entry {
        public let name: String
        public let shape: [Int]
        fileprivate let source: Source

        fileprivate enum Source {
            case tensor(Tensor)
            case values([Float])
            case raw(SafeTensorsDType, Data)
        }

        /// Stored bytes of `dtype` (little-endian), e.g. BF16 or I8 weights; their count must match
        /// `shape` (a programmer error otherwise).
        public init(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: Data) {
            precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) * dtype.byteSize == bytes.count,
                         "shape \(shape) of \(dtype.rawValue) does not fit \(bytes.count) bytes for '\(name)'")
            self.name = name
            self.shape = shape
            source = .raw(dtype, bytes)
        }

        fileprivate var dtype: SafeTensorsDType {
            if case let .raw(dtype, _) = source { return dtype }
            return .f32
        }

        fileprivate var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }

        /// A tensor, written with its own shape.
        public init(name: String, tensor: Tensor) {
            self.name = name
            shape = tensor.shape
            source = .tensor(tensor)
        }

        /// Values in row-major order; their count must match `shape` (a programmer error otherwise).
        public init(name: String, shape: [Int], values: [Float]) {
            precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == values.count,
                         "shape \(shape) does not hold \(values.count) values for '\(name)'")
            self.name = name
            self.shape = shape
            source = .values(values)
        }

        fileprivate func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R {
            switch source {
            case let .tensor(tensor):
                return body(UnsafeBufferPointer(start: tensor.data, count: tensor.count))
            case let .values(values):
                return values.withUnsafeBufferPointer(body)
            case .raw:
                preconditionFailure("raw entries are written as bytes")
            }
        }
    }

    /// The file's bytes. Throws `WeightError.writeFailed` on duplicate names (`file` names the target in that error).
    public static func encode(_ entries: [Entry], metadata: [String: String] = [:], file: String = "<memory>") throws -> Data {
        // As the reference orders the data: wider elements first (so every tensor stays aligned for
        // its type with no gaps), then byte order of the UTF-8 names (Swift's String `<` differs beyond ASCII).
        let sorted = entries.sorted {
            $0.dtype.byteSize != $1.dtype.byteSize ? $0.dtype.byteSize > $1.dtype.byteSize
                : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
        }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.name == b.name {
            throw WeightError.writeFailed(file: file, reason: "tensor '\(a.name)' given twice")
        }
        if sorted.contains(where: { $0.name == "__metadata__" }) {
            throw WeightError.writeFailed(file: file, reason: "'__metadata__' is reserved and cannot name a tensor")
        }

        var json = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { "\(JSONText.quoted($0)):\(JSONText.quoted(metadata[$0] ?? ""))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for entry in sorted {
            let size = entry.byteCount
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append("\(JSONText.quoted(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        json += fields.joined(separator: ",") + "}"
        var header = Array(json.utf8)
        // Pad so the data section (at 8 + header length) starts 8-byte aligned.
        header += Array(repeating: UInt8(ascii: " "), count: (8 - header.count % 8) % 8)

        var data = Data(capacity: 8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        for entry in sorted {
            if case let .raw(_, bytes) = entry.source {
                data.append(bytes)
                continue
            }
            entry.withFloats { floats in
                for value in floats {
                    withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
                }
            }
        }
        return data
    }

    /// Writes `entries` to `url` atomically (a reader never sees a half-written file).
    public static func write(_ entries: [Entry], metadata: [String: String] = [:], to url: URL) throws {
        let data = try encode(entries, metadata: metadata, file: url.path)
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw WeightError.writeFailed(file: url.path, reason: error.localizedDescription)
        }
    }

    /// Convenience: named tensors, each written with its own shape.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        try write(tensors.map { Entry(name: $0.key, tensor: $0.value) }, metadata: metadata, to: url)
    }

}
