import Foundation

/// Element types Glimpse reads from safetensors. Activations are computed in Float32; F16 is widened
/// once at load; BF16 and I8 weight matrices stay in place for the reduced-precision kernels (I8 with
/// a per-output-channel `<name>_scale`, docs/quantization.md) and are widened where a layer needs Float32.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i8 = "I8"

    public var byteSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .i8: return 1
        }
    }
}

/// One validated header entry. `byteRange` is relative to the start of the data section.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    public let byteRange: Range<Int>
    public var count: Int { shape.reduce(1, *) }
}

/// The validated layout of a safetensors file: where the data section starts, every tensor
/// entry, and the string metadata. Parsing works on raw bytes so the same code serves the
/// mapped file, in-memory buffers and the fuzz harness.
public struct SafeTensorsLayout: Sendable {
    /// Headers above this are refused before anything is allocated. The reference
    /// implementation uses the same 100 MB cap; real headers are a few hundred KB.
    public static let maxHeaderLength = 100_000_000

    /// Byte offset of the data section from the start of the file (8 + header length).
    public let dataStart: Int
    /// Size of the data section in bytes.
    public let dataSize: Int
    /// Entries by name.
    public let tensors: [String: TensorInfo]
    /// `__metadata__`, empty when absent.
    public let metadata: [String: String]

    /// Validates the whole header of `bytes` (an entire safetensors file) and returns its layout.
    /// Nothing about the data section is trusted until every rule has passed: header length within
    /// the file and under the cap, well-formed JSON, supported dtypes, non-negative shapes whose byte
    /// size fits in an Int, offsets ordered and inside the data section, byte length matching the
    /// shape, and no two tensors sharing bytes. `file` only names the source in errors.
    public static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> SafeTensorsLayout {
        guard bytes.count >= 8 else { throw WeightError.truncated(file: file, size: bytes.count) }
        // The length is a little-endian u64; compare it as UInt64 so a claim above Int.max cannot wrap.
        let claimed = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard claimed <= UInt64(maxHeaderLength) else {
            throw WeightError.headerTooLarge(file: file, claimed: claimed, limit: maxHeaderLength)
        }
        guard claimed <= UInt64(bytes.count - 8) else {
            throw WeightError.headerPastEnd(file: file, claimed: claimed, fileSize: bytes.count)
        }
        let headerLength = Int(claimed)
        let dataStart = 8 + headerLength
        let dataSize = bytes.count - dataStart
        let headerBytes = Data(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]))

        let raw: RawHeader
        do {
            raw = try JSONDecoder().decode(RawHeader.self, from: headerBytes)
        } catch let error as EntryProblem {
            throw WeightError.invalidEntry(file: file, tensor: error.tensor, reason: error.reason)
        } catch let error as HeaderProblem {
            throw WeightError.invalidHeader(file: file, reason: error.reason)
        } catch {
            throw WeightError.invalidHeader(file: file, reason: "not well-formed JSON (\(jsonReason(error)))")
        }

        var tensors: [String: TensorInfo] = [:]
        tensors.reserveCapacity(raw.entries.count)
        // Sorted so that, when a file has several faults, the one reported does not depend on hashing.
        for (name, entry) in raw.entries.sorted(by: { $0.0 < $1.0 }) {
            tensors[name] = try validate(entry, name: name, dataSize: dataSize, file: file)
        }
        try checkOverlaps(tensors.values, file: file)
        return SafeTensorsLayout(dataStart: dataStart, dataSize: dataSize, tensors: tensors, metadata: raw.metadata)
    }

    private static func validate(_ entry: RawEntry, name: String, dataSize: Int, file: String) throws -> TensorInfo {
        guard let dtype = SafeTensorsDType(rawValue: entry.dtype) else {
            throw WeightError.unsupportedDType(file: file, tensor: name, dtype: entry.dtype)
        }
        if let negative = entry.shape.first(where: { $0 < 0 }) {
            throw WeightError.invalidEntry(file: file, tensor: name, reason: "shape \(entry.shape) has negative dimension \(negative)")
        }
        var byteCount = dtype.byteSize
        for dim in entry.shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw WeightError.shapeOverflow(file: file, tensor: name, shape: entry.shape) }
            byteCount = product
        }
        guard entry.offsets.count == 2 else {
            throw WeightError.invalidEntry(file: file, tensor: name,
                                           reason: "data_offsets must be [begin, end], got \(entry.offsets.count) values")
        }
        let begin = entry.offsets[0], end = entry.offsets[1]
        guard begin >= 0, end >= 0 else {
            throw WeightError.invalidEntry(file: file, tensor: name, reason: "data_offsets \(entry.offsets) are negative")
        }
        guard begin <= end else { throw WeightError.offsetsReversed(file: file, tensor: name, begin: begin, end: end) }
        guard end <= dataSize else { throw WeightError.offsetsPastEnd(file: file, tensor: name, end: end, dataSize: dataSize) }
        guard end - begin == byteCount else {
            throw WeightError.byteLengthMismatch(file: file, tensor: name, shape: entry.shape, dtype: dtype.rawValue,
                                                 expected: byteCount, actual: end - begin)
        }
        return TensorInfo(name: name, dtype: dtype, shape: entry.shape, byteRange: begin..<end)
    }

    /// Sort by begin and compare each range with the furthest end seen so far (not just the previous
    /// range, which a long earlier tensor could extend past). Empty tensors own no bytes and are skipped.
    /// Gaps between tensors are allowed: they are harmless to a reader.
    private static func checkOverlaps<C: Collection>(_ infos: C, file: String) throws where C.Element == TensorInfo {
        let sorted = infos.filter { !$0.byteRange.isEmpty }
            .sorted { ($0.byteRange.lowerBound, $0.name) < ($1.byteRange.lowerBound, $1.name) }
        var furthest: TensorInfo?
        for info in sorted {
            if let previous = furthest, info.byteRange.lowerBound < previous.byteRange.upperBound {
                throw WeightError.overlappingTensors(file: file, first: previous.name, second: info.name)
            }
            if furthest.map({ info.byteRange.upperBound > $0.byteRange.upperBound }) ?? true { furthest = info }
        }
    }

    private static func jsonReason(_ error: Error) -> String {
        if case let DecodingError.dataCorrupted(context) = error {
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return underlying ?? context.debugDescription
        }
        return String(describing: error)
    }
}

// MARK: - Decoding the header JSON

/// A problem with one named entry, thrown from inside the decoder so the error can name the tensor.
private struct EntryProblem: Error { let tensor: String; let reason: String }
/// A problem with the header as a whole.
private struct HeaderProblem: Error { let reason: String }

private struct AnyKey: CodingKey {
    let stringValue: String
    init(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// The top level: an object whose keys are tensor names, plus the reserved `__metadata__`.
private struct RawHeader: Decodable {
    var entries: [(String, RawEntry)] = []
    var metadata: [String: String] = [:]

    init(from decoder: Decoder) throws {
        let container: KeyedDecodingContainer<AnyKey>
        do {
            container = try decoder.container(keyedBy: AnyKey.self)
        } catch {
            throw HeaderProblem(reason: "the header must be a JSON object")
        }
        for key in container.allKeys {
            if key.stringValue == "__metadata__" {
                do {
                    metadata = try container.decode([String: String].self, forKey: key)
                } catch {
                    throw HeaderProblem(reason: "__metadata__ must be an object of string values")
                }
                continue
            }
            let entries: KeyedDecodingContainer<RawEntry.Keys>
            do {
                entries = try container.nestedContainer(keyedBy: RawEntry.Keys.self, forKey: key)
            } catch {
                throw EntryProblem(tensor: key.stringValue, reason: "entry must be an object with dtype, shape and data_offsets")
            }
            self.entries.append((key.stringValue, try RawEntry(entries, name: key.stringValue)))
        }
    }
}

/// One tensor entry, decoded field by field so a type error names the field.
private struct RawEntry {
    enum Keys: String, CodingKey { case dtype, shape, dataOffsets = "data_offsets" }
    let dtype: String
    let shape: [Int]
    let offsets: [Int]

    init(_ container: KeyedDecodingContainer<Keys>, name: String) throws {
        func field<T: Decodable>(_ key: Keys, _ what: String) throws -> T {
            guard container.contains(key) else { throw EntryProblem(tensor: name, reason: "missing field \(key.rawValue)") }
            do {
                return try container.decode(T.self, forKey: key)
            } catch {
                throw EntryProblem(tensor: name, reason: "field \(key.rawValue) must be \(what)")
            }
        }
        dtype = try field(.dtype, "a string")
        shape = try field(.shape, "an array of integers")
        offsets = try field(.dataOffsets, "an array of two integers")
    }
}
