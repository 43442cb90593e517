import Foundation

/// PyTorch's zip checkpoint (`torch.save` since 1.6, `pytorch_model.bin`): `<prefix>/data.pkl` is a pickle
/// of the state dict whose tensors refer by persistent id to storages stored uncompressed as
/// `<prefix>/data/<key>`. Parsed natively, with no code execution whatever the file says: the pickle is
/// read by `RestrictedUnpickler`, which knows only what state dicts use, and every tensor is validated
/// (storage present and stored, dtype known, contiguous, offset + size inside the storage) before its
/// bytes are touched. The result is a `SafeTensorsLayout` over the whole file (data start 0), so the one
/// weights loader maps F32 tensors in place exactly as for safetensors. Tensors may share storage
/// (tied embeddings), which safetensors forbids and PyTorch does by design.
enum PyTorchCheckpoint {
    struct Parsed {
        let layout: SafeTensorsLayout
        /// Tensors of dtypes Glimpse does not compute with (int64 `position_ids` buffers...), name -> dtype.
        let skipped: [String: String]
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> Parsed {
        func fail(_ reason: String) -> WeightError { .invalidCheckpoint(file: file, reason: reason) }
        guard bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4B else {
            if bytes.count >= 2, bytes[0] == 0x80 {
                throw fail("legacy (pre-1.6) PyTorch serialization is not supported; re-save it with torch.save from PyTorch 1.6 or later, or convert it with tools/convert_hf.py")
            }
            throw fail("not a PyTorch zip checkpoint (no zip signature)")
        }
        let archive = try ZipArchive(bytes, file: file)
        let pickles = archive.names.filter { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }
        guard pickles.count == 1, let pickleName = pickles.first else {
            throw fail(pickles.isEmpty ? "no data.pkl entry" : "several data.pkl entries: \(pickles.joined(separator: ", "))")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        if let order = archive.entries[prefix + "byteorder"] {
            guard order.isStored else { throw compressed(order, file: file) }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[order.dataRange]), as: UTF8.self)
            guard text == "little" else { throw fail("byte order '\(text)' (only little-endian checkpoints are read)") }
        }
        guard let pickleEntry = archive.entries[pickleName] else { throw fail("no data.pkl entry") }
        guard pickleEntry.isStored else { throw compressed(pickleEntry, file: file) }
        let pickleBytes = UnsafeRawBufferPointer(rebasing: bytes[pickleEntry.dataRange])
        guard ZipArchive.crc32(pickleBytes) == pickleEntry.crc32 else { throw fail("\(pickleName): CRC mismatch (corrupt file)") }

        var unpickler = RestrictedUnpickler(pickleBytes, file: file)
        let root = try unpickler.load()
        guard case .dict(let items) = root else { throw fail("data.pkl holds \(root.kind), not a state dict") }

        var tensors: [String: TensorInfo] = [:]
        var skipped: [String: String] = [:]
        for (key, value) in items {
            guard case .string(let name) = key else { throw fail("state dict key \(key.kind) is not a string") }
            guard case .tensor(let t) = value else { throw fail("'\(name)' is \(value.kind), not a tensor") }
            guard tensors[name] == nil, skipped[name] == nil else { throw fail("duplicate tensor '\(name)'") }
            let storageName = prefix + "data/" + t.storage.key
            guard let entry = archive.entries[storageName] else { throw fail("tensor '\(name)': storage \(storageName) missing") }
            guard entry.isStored else { throw compressed(entry, file: file) }
            let element = t.storage.dtype.byteSize
            let (storageBytes, o1) = t.storage.count.multipliedReportingOverflow(by: element)
            guard !o1, storageBytes <= entry.dataRange.count else {
                throw fail("tensor '\(name)': storage \(t.storage.key) claims \(t.storage.count) elements, its entry has \(entry.dataRange.count) bytes")
            }
            guard t.shape.count == t.stride.count else { throw fail("tensor '\(name)': shape \(t.shape) and stride \(t.stride) differ in rank") }
            var count = 1, expected = 1
            for (dim, stride) in zip(t.shape, t.stride).reversed() {
                guard dim >= 0, stride >= 0 else { throw fail("tensor '\(name)': negative size or stride") }
                if dim != 1 && stride != expected {
                    throw fail("tensor '\(name)': non-contiguous (shape \(t.shape), stride \(t.stride)); save it with .contiguous()")
                }
                let (e, o2) = expected.multipliedReportingOverflow(by: dim)
                let (c, o3) = count.multipliedReportingOverflow(by: dim)
                guard !o2, !o3 else { throw WeightError.shapeOverflow(file: file, tensor: name, shape: t.shape) }
                expected = e; count = c
            }
            guard t.offset >= 0, t.offset <= t.storage.count, count <= t.storage.count - t.offset else {
                throw fail("tensor '\(name)': elements \(t.offset)..<\(t.offset + count) lie past the end of storage \(t.storage.key) (\(t.storage.count) elements)")
            }
            guard let dtype = t.storage.dtype.safeTensors else {
                skipped[name] = t.storage.dtype.rawValue
                continue
            }
            let begin = entry.dataRange.lowerBound + t.offset * element
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: t.shape, byteRange: begin..<(begin + count * element))
        }
        return Parsed(layout: SafeTensorsLayout(dataStart: 0, dataSize: bytes.count, tensors: tensors, metadata: [:]), skipped: skipped)
    }

    private static func compressed(_ entry: ZipArchive.Entry, file: String) -> WeightError {
        .invalidCheckpoint(file: file, reason: "\(entry.name) is compressed (zip method \(entry.method)); torch.save stores entries uncompressed, re-save the checkpoint with torch.save")
    }
}

/// The element types of torch storages (`torch.<Name>Storage`); the first three are computed with.
enum TorchDType: String {
    case float32 = "FloatStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage"
    case float64 = "DoubleStorage", int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage"
    case int8 = "CharStorage", uint8 = "ByteStorage", bool = "BoolStorage"

    var byteSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    var safeTensors: SafeTensorsDType? {
        switch self {
        case .float32: return .f32
        case .float16: return .f16
        case .bfloat16: return .bf16
        default: return nil
        }
    }
}

/// A pickle value, as far as a state dict needs. Containers are values: the memo keeps a container as it
/// was when memoized (state dicts never read a container back after mutating it, and nothing here runs code).
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Int)
    case tuple([PickleValue])
    case list([PickleValue])
    case dict([(PickleValue, PickleValue)])
    case global(AllowedGlobal)
    case storage(TorchStorage)
    case tensor(TorchTensor)

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "a bool"
        case .int: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dict"
        case .global(let g): return "\(g.qualifiedName)"
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        }
    }
}

/// The only globals a checkpoint may name.
enum AllowedGlobal {
    case orderedDict
    case rebuildTensorV2
    case rebuildParameter
    case storageType(TorchDType)

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch", _):
            guard let dtype = TorchDType(rawValue: name) else { return nil }
            self = .storageType(dtype)
        default: return nil
        }
    }

    var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .storageType(let t): return "torch.\(t.rawValue)"
        }
    }
}

struct TorchStorage {
    let dtype: TorchDType
    let key: String
    /// Elements.
    let count: Int
}

struct TorchTensor {
    let storage: TorchStorage
    let offset: Int
    let shape: [Int]
    let stride: [Int]
}

/// A pickle virtual machine for protocols 2-5 that builds `PickleValue`s and nothing else: GLOBAL/STACK_GLOBAL
/// resolve only `AllowedGlobal`s, REDUCE calls only OrderedDict() and the tensor rebuilders, BUILD only sets
/// (and discards) an OrderedDict's attributes, BINPERSID accepts only torch's storage tuples. Any other
/// opcode or name is refused with its offset, before anything else happens.
struct RestrictedUnpickler {
    private let bytes: UnsafeRawBufferPointer
    private let file: String
    private var position = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    /// Bounds a hostile pickle's memory: the value stack and the memo.
    static let maxDepth = 10_000_000

    init(_ bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
    }

    private func fail(_ reason: String, at offset: Int? = nil) -> WeightError {
        .refusedPickle(file: file, reason: "\(reason) (data.pkl offset \(offset ?? position))")
    }

    private mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw fail("pickle ends before STOP") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - position else { throw fail("a \(n)-byte argument runs past the end") }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    private mutating func uint(_ n: Int) throws -> Int {
        let raw = try take(n)
        var value: UInt64 = 0
        for i in (0..<n).reversed() { value = value << 8 | UInt64(raw[i]) }
        guard value <= UInt64(Int.max) else { throw fail("length \(value) too large") }
        return Int(value)
    }

    private mutating func line() throws -> String {
        var end = position
        while end < bytes.count && bytes[end] != 0x0A { end += 1 }
        guard end < bytes.count else { throw fail("unterminated text argument") }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<end]), as: UTF8.self)
        position = end + 1
        return text
    }

    private mutating func pop() throws -> PickleValue {
        guard let top = stack.popLast() else { throw fail("stack underflow") }
        if let mark = marks.last, stack.count < mark { throw fail("stack underflow past a MARK") }
        return top
    }

    private mutating func popToMark() throws -> [PickleValue] {
        guard let mark = marks.popLast(), mark <= stack.count else { throw fail("no MARK") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    private mutating func push(_ value: PickleValue) throws {
        guard stack.count < Self.maxDepth else { throw fail("stack over \(Self.maxDepth) values") }
        stack.append(value)
    }

    private mutating func string(_ raw: UnsafeRawBufferPointer) throws -> String {
        guard let s = String(bytes: raw, encoding: .utf8) else { throw fail("string is not UTF-8") }
        return s
    }

    mutating func load() throws -> PickleValue {
        while true {
            let opOffset = position
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try take(8)                                  // FRAME
            case 0x2E:                                                  // STOP
                guard stack.count == 1, marks.isEmpty else { throw fail("STOP with \(stack.count) values on the stack") }
                return stack[0]
            case 0x28: marks.append(stack.count)                        // MARK
            case 0x30: _ = try pop()                                    // POP
            case 0x31: _ = try popToMark()                              // POP_MARK
            case 0x32: guard let top = stack.last else { throw fail("DUP of nothing") }; try push(top)
            case 0x4E: try push(.none)
            case 0x88: try push(.bool(true))
            case 0x89: try push(.bool(false))
            case 0x4A: try push(.int(Int(Int32(bitPattern: UInt32(try uint(4))))))   // BININT
            case 0x4B: try push(.int(try uint(1)))                                      // BININT1
            case 0x4D: try push(.int(try uint(2)))                                      // BININT2
            case 0x8A:                                                                  // LONG1
                let n = try uint(1)
                guard n <= 8 else { throw fail("integer of \(n) bytes") }
                let raw = try take(n)
                var value: UInt64 = 0
                for i in (0..<n).reversed() { value = value << 8 | UInt64(raw[i]) }
                if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 { value |= ~0 << (UInt64(n) * 8) }  // sign-extend
                try push(.int(Int(Int64(bitPattern: value))))
            case 0x47:                                                                  // BINFLOAT
                let raw = try take(8)
                var bits: UInt64 = 0
                for b in raw { bits = bits << 8 | UInt64(b) }
                try push(.float(Double(bitPattern: bits)))
            case 0x58: try push(.string(try string(try take(try uint(4)))))             // BINUNICODE
            case 0x8C: try push(.string(try string(try take(try uint(1)))))             // SHORT_BINUNICODE
            case 0x8D: try push(.string(try string(try take(try uint(8)))))             // BINUNICODE8
            case 0x54: try push(.string(try string(try take(try uint(4)))))             // BINSTRING
            case 0x55: try push(.string(try string(try take(try uint(1)))))             // SHORT_BINSTRING
            case 0x42: try push(.bytes(try take(try uint(4)).count))                    // BINBYTES
            case 0x43: try push(.bytes(try take(try uint(1)).count))                    // SHORT_BINBYTES
            case 0x29: try push(.tuple([]))                                             // EMPTY_TUPLE
            case 0x74: try push(.tuple(try popToMark()))                                // TUPLE
            case 0x85: let a = try pop(); try push(.tuple([a]))
            case 0x86: let b = try pop(), a = try pop(); try push(.tuple([a, b]))
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(.tuple([a, b, c]))
            case 0x5D: try push(.list([]))                                              // EMPTY_LIST
            case 0x6C: try push(.list(try popToMark()))                                 // LIST
            case 0x61:                                                                  // APPEND
                let item = try pop()
                try mutateTop { guard case .list(var l) = $0 else { return nil }; l.append(item); return .list(l) }
            case 0x65:                                                                  // APPENDS
                let items = try popToMark()
                try mutateTop { guard case .list(var l) = $0 else { return nil }; l += items; return .list(l) }
            case 0x7D: try push(.dict([]))                                              // EMPTY_DICT
            case 0x64: try push(.dict(try pairs(try popToMark())))                      // DICT
            case 0x73:                                                                  // SETITEM
                let value = try pop(), key = try pop()
                try mutateTop { guard case .dict(var d) = $0 else { return nil }; d.append((key, value)); return .dict(d) }
            case 0x75:                                                                  // SETITEMS
                let items = try pairs(try popToMark())
                try mutateTop { guard case .dict(var d) = $0 else { return nil }; d += items; return .dict(d) }
            case 0x71: try memoize(try uint(1))                                         // BINPUT
            case 0x72: try memoize(try uint(4))                                         // LONG_BINPUT
            case 0x94: try memoize(memo.count)                                          // MEMOIZE
            case 0x68, 0x6A:                                                            // BINGET, LONG_BINGET
                let index = try uint(op == 0x68 ? 1 : 4)
                guard let value = memo[index] else { throw fail("memo \(index) not set") }
                try push(value)
            case 0x63:                                                                  // GLOBAL
                let module = try line(), name = try line()
                try push(.global(try resolve(module, name, at: opOffset)))
            case 0x93:                                                                  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .string(let n) = name, case .string(let m) = module else { throw fail("STACK_GLOBAL of non-strings", at: opOffset) }
                try push(.global(try resolve(m, n, at: opOffset)))
            case 0x51:                                                                  // BINPERSID
                try push(try persistent(try pop(), at: opOffset))
            case 0x52:                                                                  // REDUCE
                let args = try pop(), callable = try pop()
                try push(try reduce(callable, args, at: opOffset))
            case 0x62:                                                                  // BUILD
                _ = try pop()
                guard case .dict = stack.last else {
                    throw fail("BUILD on \(stack.last?.kind ?? "nothing") (only an OrderedDict's attributes may be set)", at: opOffset)
                }
            default:
                throw fail(String(format: "opcode 0x%02x is not allowed in a state dict", op), at: opOffset)
            }
        }
    }

    private mutating func mutateTop(_ body: (PickleValue) -> PickleValue?) throws {
        guard let top = stack.popLast() else { throw fail("stack underflow") }
        guard let updated = body(top) else { throw fail("append or set item on \(top.kind)") }
        stack.append(updated)
    }

    private func pairs(_ flat: [PickleValue]) throws -> [(PickleValue, PickleValue)] {
        guard flat.count % 2 == 0 else { throw fail("odd number of dict items") }
        return stride(from: 0, to: flat.count, by: 2).map { (flat[$0], flat[$0 + 1]) }
    }

    private mutating func memoize(_ index: Int) throws {
        guard let top = stack.last else { throw fail("memoizing nothing") }
        guard memo.count < Self.maxDepth || memo[index] != nil else { throw fail("memo over \(Self.maxDepth) entries") }
        memo[index] = top
    }

    private func resolve(_ module: String, _ name: String, at offset: Int) throws -> AllowedGlobal {
        guard let global = AllowedGlobal(module: module, name: name) else {
            throw fail("global '\(module).\(name)' is not allowed (a state dict names only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch storage types; this file may try to run code)", at: offset)
        }
        return global
    }

    /// torch.save's persistent id: ('storage', <StorageType>, key, location, numel).
    private func persistent(_ pid: PickleValue, at offset: Int) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count == 5, case .string("storage") = t[0],
              case .global(.storageType(let dtype)) = t[1], case .string(let key) = t[2], case .string = t[3],
              case .int(let count) = t[4] else {
            throw fail("persistent id is not ('storage', type, key, location, size)", at: offset)
        }
        guard count >= 0, !key.isEmpty, !key.contains("/"), !key.contains("..") else { throw fail("bad storage key '\(key)' or size \(count)", at: offset) }
        return .storage(TorchStorage(dtype: dtype, key: key, count: count))
    }

    private func reduce(_ callable: PickleValue, _ args: PickleValue, at offset: Int) throws -> PickleValue {
        guard case .global(let global) = callable else { throw fail("REDUCE of \(callable.kind), not a callable", at: offset) }
        guard case .tuple(let a) = args else { throw fail("REDUCE arguments are \(args.kind)", at: offset) }
        func ints(_ v: PickleValue) throws -> [Int] {
            guard case .tuple(let items) = v else { throw fail("tensor size/stride is \(v.kind), not a tuple", at: offset) }
            guard items.count <= 64 else { throw fail("tensor of rank \(items.count)", at: offset) }
            return try items.map { guard case .int(let i) = $0 else { throw fail("tensor size/stride entry is \($0.kind)", at: offset) }; return i }
        }
        switch global {
        case .orderedDict:
            guard a.isEmpty else { throw fail("OrderedDict called with arguments", at: offset) }
            return .dict([])
        case .rebuildTensorV2:
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard a.count == 6 || a.count == 7, case .storage(let storage) = a[0], case .int(let storageOffset) = a[1] else {
                throw fail("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)", at: offset)
            }
            return .tensor(TorchTensor(storage: storage, offset: storageOffset, shape: try ints(a[2]), stride: try ints(a[3])))
        case .rebuildParameter:
            guard a.count == 3, case .tensor = a[0] else { throw fail("_rebuild_parameter arguments are not (tensor, requires_grad, hooks)", at: offset) }
            return a[0]
        case .storageType(let t):
            throw fail("REDUCE of torch.\(t.rawValue) is not allowed (a storage type is only valid inside a persistent id)", at: offset)
        }
    }
}
