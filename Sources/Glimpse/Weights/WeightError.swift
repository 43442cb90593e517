import Foundation

/// Everything that can go wrong reading a safetensors file or loading weights by name.
///
/// Every case carries the file (its path, or the list of files searched) and, where one is
/// involved, the tensor's checkpoint name, so a user holding a broken or mismatched
/// checkpoint can see exactly which entry is at fault.
public enum WeightError: Error, CustomStringConvertible {
    /// The file could not be opened, inspected or mapped.
    case unreadable(file: String, reason: String)
    /// The file is shorter than the 8-byte header length that starts every safetensors file.
    case truncated(file: String, size: Int)
    /// The header length field exceeds the cap (a hostile or corrupt file; refused before allocating).
    case headerTooLarge(file: String, claimed: UInt64, limit: Int)
    /// The header length field points past the end of the file.
    case headerPastEnd(file: String, claimed: UInt64, fileSize: Int)
    /// The header is not a JSON object of tensor entries (plus optional string metadata).
    case invalidHeader(file: String, reason: String)
    /// One tensor entry is malformed (missing or mistyped field, negative value...).
    case invalidEntry(file: String, tensor: String, reason: String)
    /// The entry's dtype is valid safetensors but not one Glimpse reads.
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// The element count (or its byte size) does not fit in an Int.
    case shapeOverflow(file: String, tensor: String, shape: [Int])
    /// `data_offsets` has begin > end.
    case offsetsReversed(file: String, tensor: String, begin: Int, end: Int)
    /// `data_offsets` reaches past the end of the data section.
    case offsetsPastEnd(file: String, tensor: String, end: Int, dataSize: Int)
    /// shape x dtype size disagrees with the byte range.
    case byteLengthMismatch(file: String, tensor: String, shape: [Int], dtype: String, expected: Int, actual: Int)
    /// Two tensors' byte ranges overlap.
    case overlappingTensors(file: String, first: String, second: String)
    /// A tensor holds NaN or infinity (only reported by the opt-in finiteness checks).
    case nonFinite(file: String, tensor: String, count: Int, firstIndex: Int, firstValue: Float)
    /// A name the model needs is not in any of the files.
    case missingTensor(file: String, name: String)
    /// A tensor is present with another shape than the model needs.
    case shapeMismatch(file: String, name: String, expected: [Int], actual: [Int])
    /// The same name appears in two files of one loader, so which one wins would be arbitrary.
    case duplicateTensor(name: String, files: [String])
    /// An I8 tensor's `<name>_scale` is missing or does not have one scale per output channel.
    case invalidScale(file: String, tensor: String, reason: String)
    /// A tensor could not be written (duplicate name, I/O failure...).
    case writeFailed(file: String, reason: String)
    /// A PyTorch checkpoint (`pytorch_model.bin`) is malformed: zip structure, storages, tensor extents.
    case invalidCheckpoint(file: String, reason: String)
    /// A PyTorch checkpoint's pickle asks for something a state dict never needs (a global, an opcode...).
    case refusedPickle(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read safetensors file: \(reason)"
        case let .truncated(file, size):
            return "\(file): truncated safetensors file: \(size) bytes, too short for the 8-byte header length"
        case let .headerTooLarge(file, claimed, limit):
            return "\(file): safetensors header length \(claimed) bytes exceeds the limit of \(limit) bytes"
        case let .headerPastEnd(file, claimed, fileSize):
            return "\(file): safetensors header length \(claimed) bytes runs past the end of the file (\(fileSize) bytes)"
        case let .invalidHeader(file, reason):
            return "\(file): invalid safetensors header: \(reason)"
        case let .invalidEntry(file, tensor, reason):
            return "\(file): tensor '\(tensor)': \(reason)"
        case let .unsupportedDType(file, tensor, dtype):
            return "\(file): unsupported dtype \(dtype) for tensor '\(tensor)' (supported: F32, F16, BF16, I8)"
        case let .shapeOverflow(file, tensor, shape):
            return "\(file): tensor '\(tensor)': shape \(shape) overflows (element or byte count too large)"
        case let .offsetsReversed(file, tensor, begin, end):
            return "\(file): tensor '\(tensor)': data_offsets begin \(begin) is after end \(end)"
        case let .offsetsPastEnd(file, tensor, end, dataSize):
            return "\(file): tensor '\(tensor)': data_offsets end \(end) is past the end of the data section (\(dataSize) bytes)"
        case let .byteLengthMismatch(file, tensor, shape, dtype, expected, actual):
            return "\(file): tensor '\(tensor)': shape \(shape) of \(dtype) needs \(expected) bytes but data_offsets span \(actual)"
        case let .overlappingTensors(file, first, second):
            return "\(file): tensors '\(first)' and '\(second)' have overlapping data_offsets"
        case let .nonFinite(file, tensor, count, firstIndex, firstValue):
            return "\(file): tensor '\(tensor)' has \(count) non-finite value\(count == 1 ? "" : "s") (first: \(firstValue) at flat index \(firstIndex))"
        case let .missingTensor(file, name):
            return "\(file): missing tensor '\(name)'"
        case let .shapeMismatch(file, name, expected, actual):
            return "\(file): tensor '\(name)' has shape \(actual), expected \(expected)"
        case let .duplicateTensor(name, files):
            return "tensor '\(name)' appears in several files: \(files.joined(separator: ", "))"
        case let .invalidScale(file, tensor, reason):
            return "\(file): int8 tensor '\(tensor)': \(reason)"
        case let .writeFailed(file, reason):
            return "\(file): cannot write safetensors file: \(reason)"
        case let .invalidCheckpoint(file, reason):
            return "\(file): invalid PyTorch checkpoint: \(reason)"
        case let .refusedPickle(file, reason):
            return "\(file): refused PyTorch checkpoint: \(reason); nothing in it was run"
        }
    }
}
