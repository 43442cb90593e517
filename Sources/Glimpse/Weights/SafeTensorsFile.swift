import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file, unmapped when the last user lets go.
/// Tensors that borrow the mapping hold this object, so they stay valid after the
/// `SafeTensorsFile` itself is released.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer
    let size: Int

    /// - Throws: `WeightError.unreadable`, or `.truncated` when the file is shorter than 8 bytes
    ///   (checked here because mmap refuses an empty file with a less helpful message).
    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw WeightError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }  // the mapping outlives the descriptor
        var status = stat()
        // fstat on the open descriptor, not stat on the path, so size and mapping describe the same file.
        guard fstat(fd, &status) == 0 else {
            throw WeightError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw WeightError.unreadable(file: path, reason: "not a regular file")
        }
        let size = Int(status.st_size)
        guard size >= 8 else { throw WeightError.truncated(file: path, size: size) }
        // PROT_READ: weights are never written through a mapping; a stray write faults loudly
        // instead of silently changing the weights every later tensor sees.
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw WeightError.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
        self.size = size
        MappedFileRegistry.register(base: UInt(bitPattern: mapped), size: size, path: path)
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// Maps every page now (loading is when reading the file belongs), not one fault at a time in
    /// the first encoder pass and decode steps. Called once the header has been validated, so a
    /// hostile file's size is never read. Best effort: kernels before 5.14 lack MADV_POPULATE_READ.
    func populate() {
        let populateRead: Int32 = 22   // MADV_POPULATE_READ
        _ = madvise(UnsafeMutableRawPointer(mutating: base), size, populateRead)
    }

    deinit {
        MappedFileRegistry.unregister(base: UInt(bitPattern: base))
        munmap(UnsafeMutableRawPointer(mutating: base), size)
    }
}

/// The address ranges of live mappings and their files, so a SIGBUS handler (a mapped file truncated
/// by another process) can name the file. A fixed table read without locks: `file(containing:)` is
/// async-signal-safe. Registration happens while loading, from one thread at a time.
public enum MappedFileRegistry {
    private static let capacity = 64
    nonisolated(unsafe) private static let bases = UnsafeMutablePointer<UInt>.allocate(capacity: capacity)
    nonisolated(unsafe) private static let ends = UnsafeMutablePointer<UInt>.allocate(capacity: capacity)
    nonisolated(unsafe) private static let paths = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: capacity)
    private static let lock = NSLock()
    nonisolated(unsafe) private static var initialized: Bool = {
        bases.initialize(repeating: 0, count: capacity)
        ends.initialize(repeating: 0, count: capacity)
        paths.initialize(repeating: nil, count: capacity)
        return true
    }()

    static func register(base: UInt, size: Int, path: String) {
        lock.lock(); defer { lock.unlock() }
        _ = initialized
        for i in 0..<capacity where bases[i] == 0 {
            paths[i] = strdup(path)
            ends[i] = base + UInt(size)
            bases[i] = base            // last: a reader sees a slot only once it is complete
            return
        }
    }

    static func unregister(base: UInt) {
        lock.lock(); defer { lock.unlock() }
        for i in 0..<capacity where bases[i] == base {
            bases[i] = 0
            free(paths[i]); paths[i] = nil
            return
        }
    }

    /// The file mapped at `address`, or nil. Call `prepare()` before installing a handler that uses this.
    public static func file(containing address: UInt) -> UnsafePointer<CChar>? {
        for i in 0..<capacity where bases[i] != 0 && address >= bases[i] && address < ends[i] {
            return paths[i].map { UnsafePointer($0) }
        }
        return nil
    }

    /// Drops the whole pages of `start..<start+count` from the resident set when the range lies in
    /// one live mapping (a read-only file mapping: the pages come back from the page cache when
    /// read again); does nothing for any other memory, whose contents `MADV_DONTNEED` would lose.
    static func releasePages(_ start: UnsafeRawPointer, count: Int) {
        let first = UInt(bitPattern: start), end = first + UInt(count)
        lock.lock(); defer { lock.unlock() }
        _ = initialized
        guard count > 0, (0..<capacity).contains(where: { bases[$0] != 0 && first >= bases[$0] && end <= ends[$0] }) else { return }
        let page = UInt(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (first + page - 1) / page * page, hi = end / page * page
        guard hi > lo, let pointer = UnsafeMutableRawPointer(bitPattern: lo) else { return }
        _ = madvise(pointer, Int(hi - lo), MADV_DONTNEED)
    }

    /// Sets the table up (a lazy global must not be first touched inside a signal handler).
    public static func prepare() { lock.lock(); _ = initialized; lock.unlock() }
}

/// A safetensors file (or a PyTorch checkpoint, see `init(pytorchCheckpoint:)`), memory-mapped and validated in full at `init`.
///
/// - F32 tensors are handed out in place (the `Tensor` borrows the mapping; no copy) when their
///   data is 4-byte aligned, which the reference writer guarantees by padding the header to 8 bytes.
///   A misaligned F32 tensor (a hand-made file) is copied instead.
/// - F16 and BF16 tensors are widened to F32 on first access and the result is cached; I8 tensors
///   are dequantized with their `<name>_scale` (or read as plain integers without one).
/// - BF16 and I8 weight matrices can also be used in place (`rawBytes`) by the reduced-precision kernels.
///
/// Tensors borrowing the mapping are read-only: the mapping is `PROT_READ`, so writing through
/// `Tensor.data` faults. If another process truncates the file while it is mapped, touching the
/// lost pages raises SIGBUS; that cannot be validated away and is the usual mmap contract (`glimpse batch`
/// turns it into a message naming the file, via `MappedFileRegistry`).
public final class SafeTensorsFile: @unchecked Sendable {
    /// The file's path, used in every error.
    public let path: String
    public let layout: SafeTensorsLayout
    let mapping: MappedFile
    // Guards `cache`: loading is single-threaded today, but the file is shared by reference.
    private let lock = NSLock()
    private var cache: [String: Tensor] = [:]

    /// Tensors present in the file in dtypes Glimpse does not compute with (PyTorch checkpoints carry
    /// int64 buffers such as `position_ids`), as "name (dtype)"; reported with the unused tensors.
    public let skippedTensors: [String]

    /// Maps and validates `url`. Throws a `WeightError` naming the file (and tensor) on any fault.
    public init(url: URL) throws {
        path = url.path
        mapping = try MappedFile(path: path)
        layout = try SafeTensorsLayout.parse(mapping.bytes, file: path)
        skippedTensors = []
        mapping.populate()
    }

    /// Maps and validates a PyTorch zip checkpoint (`pytorch_model.bin`) read natively by
    /// `PyTorchCheckpoint`: the same tensor table over the mapped file, so everything downstream (in-place
    /// F32, F16/BF16 widening, finiteness checks, the loader) is shared with safetensors.
    public init(pytorchCheckpoint url: URL) throws {
        path = url.path
        mapping = try MappedFile(path: path)
        let parsed = try PyTorchCheckpoint.parse(mapping.bytes, file: path)
        layout = parsed.layout
        skippedTensors = parsed.skipped.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }
        mapping.populate()
    }


    /// Tensor names, sorted.
    public var tensorNames: [String] { layout.tensors.keys.sorted() }

    /// `__metadata__` from the header (empty when absent).
    public var metadata: [String: String] { layout.metadata }

    /// The validated entry for `name`, or nil.
    public func info(_ name: String) -> TensorInfo? { layout.tensors[name] }

    /// The tensor `name` as Float32. Throws `WeightError.missingTensor` when absent.
    public func tensor(_ name: String) throws -> Tensor {
        guard let info = layout.tensors[name] else { throw WeightError.missingTensor(file: path, name: name) }
        lock.lock()
        defer { lock.unlock() }
        if let cached = cache[name] { return cached }
        var tensor = materialize(info)
        if info.dtype == .i8, let scaleInfo = layout.tensors[name + "_scale"] {
            tensor = try dequantize(tensor, name: name, scales: materialize(scaleInfo))
        }
        cache[name] = tensor
        return tensor
    }

    /// Per-output-channel scales of the I8 tensor `name` [R, C]: `<name>_scale` shaped [R, 1] (one per
    /// row) or [1, C] (one per column), as `weight ≈ q · scale` broadcasts (docs/quantization.md).
    /// Returns the scales and whether they run along rows (axis 0).
    public func int8Scales(_ name: String) throws -> (scales: Tensor, alongRows: Bool) {
        guard let info = layout.tensors[name] else { throw WeightError.missingTensor(file: path, name: name) }
        guard let scaleInfo = layout.tensors[name + "_scale"] else {
            throw WeightError.invalidScale(file: path, tensor: name, reason: "no '\(name)_scale' tensor")
        }
        guard info.shape.count == 2, scaleInfo.dtype == .f32 || scaleInfo.dtype == .bf16 || scaleInfo.dtype == .f16 else {
            throw WeightError.invalidScale(file: path, tensor: name, reason: "a quantized matrix is 2-D with a float scale (got shape \(info.shape), scale \(scaleInfo.dtype.rawValue))")
        }
        let scales = try tensor(name + "_scale")
        if scaleInfo.shape == [info.shape[0], 1] { return (scales, true) }
        if scaleInfo.shape == [1, info.shape[1]] { return (scales, false) }
        throw WeightError.invalidScale(file: path, tensor: name,
                                       reason: "scale shape \(scaleInfo.shape) is neither [\(info.shape[0]), 1] nor [1, \(info.shape[1])]")
    }

    private func dequantize(_ values: Tensor, name: String, scales: Tensor) throws -> Tensor {
        guard let info = layout.tensors[name], let scaleInfo = layout.tensors[name + "_scale"], info.shape.count == 2 else {
            throw WeightError.invalidScale(file: path, tensor: name, reason: "a quantized tensor must be 2-D")
        }
        let rows = info.shape[0], cols = info.shape[1]
        let alongRows: Bool
        if scaleInfo.shape == [rows, 1] { alongRows = true }
        else if scaleInfo.shape == [1, cols] { alongRows = false }
        else {
            throw WeightError.invalidScale(file: path, tensor: name,
                                           reason: "scale shape \(scaleInfo.shape) is neither [\(rows), 1] nor [1, \(cols)]")
        }
        let q = values.data, s = scales.data
        for r in 0..<rows {
            for c in 0..<cols { q[r * cols + c] *= s[alongRows ? r : c] }
        }
        return values
    }

    /// The stored bytes of `name`, in place in the mapping, when they are aligned for their element
    /// type (always, for files the reference writer or Glimpse wrote); nil otherwise.
    public func rawBytes(_ name: String) -> UnsafeRawBufferPointer? {
        guard let info = layout.tensors[name], Self.hostIsLittleEndian else { return nil }
        let bytes = rawBytes(info)
        guard let start = bytes.baseAddress, Int(bitPattern: start) % info.dtype.byteSize == 0 else { return nil }
        return bytes
    }

    /// Keeps the mapping alive for memory handed out by `rawBytes`.
    var mappingOwner: AnyObject { mapping }

    /// Whether `tensor` borrows this file's mapping rather than owning a copy (tests, diagnostics).
    func isInPlace(_ tensor: Tensor) -> Bool {
        let start = UnsafeRawPointer(tensor.storage.pointer)
        return start >= mapping.base && start < mapping.base + mapping.size
    }

    private func rawBytes(_ info: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mapping.base + layout.dataStart + info.byteRange.lowerBound,
                               count: info.byteRange.count)
    }

    private func materialize(_ info: TensorInfo) -> Tensor {
        let source = rawBytes(info)
        let count = info.count
        if info.dtype == .f32, count > 0, Self.hostIsLittleEndian,
           let start = source.baseAddress, Int(bitPattern: start) % MemoryLayout<Float>.alignment == 0 {
            let floats = UnsafeMutableRawPointer(mutating: start).bindMemory(to: Float.self, capacity: count)
            return Tensor(shape: info.shape, storage: TensorStorage(borrowing: floats, count: count, owner: mapping))
        }
        let storage = TensorStorage(count: count)
        let out = storage.pointer
        switch info.dtype {
        case .f32:
            for i in 0..<count {
                out[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f16:
            for i in 0..<count {
                out[i] = halfToFloat(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bf16:
            for i in 0..<count {
                // bfloat16 is the top half of a float32.
                out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
            }
        case .i8:
            for i in 0..<count { out[i] = Float(Int8(bitPattern: source[i])) }
        }
        return Tensor(shape: info.shape, storage: storage)
    }

    private static let hostIsLittleEndian = 1.littleEndian == 1

    // MARK: Finiteness (opt-in: it reads every byte of every tensor)

    /// Throws `WeightError.nonFinite` for the first tensor (in name order) holding NaN or infinity.
    public func checkFinite() throws {
        for name in tensorNames { try checkFinite(name) }
    }

    /// Throws `WeightError.nonFinite` if tensor `name` holds NaN or infinity, `.missingTensor` if absent.
    /// Reads the raw bytes, so nothing is converted or cached.
    public func checkFinite(_ name: String) throws {
        guard let info = layout.tensors[name] else { throw WeightError.missingTensor(file: path, name: name) }
        let bytes = rawBytes(info)
        var bad = 0, firstIndex = -1
        var firstValue: Float = 0
        func note(_ i: Int, _ value: @autoclosure () -> Float) {
            if bad == 0 { firstIndex = i; firstValue = value() }
            bad += 1
        }
        // A value is non-finite exactly when its exponent bits are all ones.
        switch info.dtype {
        case .f32:
            for i in 0..<info.count {
                let bits = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                if bits & 0x7F80_0000 == 0x7F80_0000 { note(i, Float(bitPattern: bits)) }
            }
        case .f16:
            for i in 0..<info.count {
                let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                if bits & 0x7C00 == 0x7C00 { note(i, halfToFloat(bits)) }
            }
        case .bf16:
            for i in 0..<info.count {
                let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                if bits & 0x7F80 == 0x7F80 { note(i, Float(bitPattern: UInt32(bits) << 16)) }
            }
        case .i8:
            break   // integers are always finite
        }
        if bad > 0 {
            throw WeightError.nonFinite(file: path, tensor: name, count: bad, firstIndex: firstIndex, firstValue: firstValue)
        }
    }
}

/// IEEE 754 binary16 to binary32, exact for every input (subnormals, infinities, NaN payloads).
/// Written out rather than using `Float16`, which is unavailable on some Swift targets (macOS x86_64).
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x03FF)
    switch exponent {
    case 0:
        // Zero or subnormal: mantissa x 2^-24, exact in Float.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    case 0x1F:
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    default:
        // Rebias the exponent from 15 to 127.
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}
