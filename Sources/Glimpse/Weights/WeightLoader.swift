import Foundation

/// Loads weights by checkpoint name through a prefix scope, in the manner of candle's `VarBuilder`:
/// `loader.scoped("decoder").scoped("transformer").scoped("h").scoped(3).tensor("ln_1.weight", shape: [768])`
/// reads `decoder.transformer.h.3.ln_1.weight`, so model code mirrors the checkpoint's names.
///
/// Every tensor handed out is recorded (by all scopes of one loader, which share one tracker), so
/// after building a model the caller can list `unusedTensorNames()` and report them as ignored.
public struct WeightLoader: Sendable {
    /// The files searched, in order. A name may live in only one of them.
    public let files: [SafeTensorsFile]
    /// The dotted prefix of this scope ("" at the root).
    public let prefix: String
    /// When set, every tensor handed out is first checked for NaN/infinity (reads all its bytes).
    public let checksFinite: Bool
    private let usage: UsageTracker
    /// Name -> index into `files`, shared by all scopes.
    private let index: [String: Int]

    /// A loader over `files` (e.g. the shards of one checkpoint).
    /// - Throws: `WeightError.duplicateTensor` when a name appears in more than one file.
    public init(files: [SafeTensorsFile], checkFinite: Bool = false) throws {
        var index: [String: Int] = [:]
        for (i, file) in files.enumerated() {
            for name in file.tensorNames {
                if let other = index[name] {
                    throw WeightError.duplicateTensor(name: name, files: [files[other].path, file.path])
                }
                index[name] = i
            }
        }
        self.files = files
        self.index = index
        prefix = ""
        checksFinite = checkFinite
        usage = UsageTracker()
    }

    /// A loader over one file (cannot fail: duplicates need two files).
    public init(file: SafeTensorsFile, checkFinite: Bool = false) {
        var index: [String: Int] = [:]
        for name in file.tensorNames { index[name] = 0 }
        files = [file]
        self.index = index
        prefix = ""
        checksFinite = checkFinite
        usage = UsageTracker()
    }

    private init(parent: WeightLoader, prefix: String) {
        files = parent.files
        index = parent.index
        checksFinite = parent.checksFinite
        usage = parent.usage
        self.prefix = prefix
    }

    /// The scope one level down: `scoped("h")` then `scoped(3)` reads `h.3.*`.
    public func scoped(_ component: String) -> WeightLoader {
        WeightLoader(parent: self, prefix: fullName(component))
    }

    /// The scope for a layer index, as in `h.3` or `encoder.layer.11`.
    public func scoped(_ index: Int) -> WeightLoader { scoped(String(index)) }

    /// The full checkpoint name of `name` in this scope.
    public func fullName(_ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }

    /// Whether `name` (in this scope) exists in any file.
    public func contains(_ name: String) -> Bool { index[fullName(name)] != nil }

    /// The tensor `name` in this scope, which must exist with exactly `shape`.
    /// - Throws: `WeightError.missingTensor` or `.shapeMismatch`, naming the full checkpoint name.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        guard let tensor = try optionalTensor(name, shape: shape) else {
            throw WeightError.missingTensor(file: filesDescription, name: fullName(name))
        }
        return tensor
    }

    /// The tensor `name` in this scope, or nil when absent (e.g. `lm_head.weight`, tied to `wte`).
    /// - Throws: `WeightError.shapeMismatch` when present with another shape than `shape`.
    public func optionalTensor(_ name: String, shape: [Int]) throws -> Tensor? {
        let full = fullName(name)
        guard let fileIndex = index[full] else { return nil }
        let file = files[fileIndex]
        // Index and layout come from the same validated header, so the entry exists.
        guard let info = file.info(full) else { return nil }
        // Check the shape before touching the data, so a mismatch costs no conversion.
        guard info.shape == shape else {
            throw WeightError.shapeMismatch(file: file.path, name: full, expected: shape, actual: info.shape)
        }
        if checksFinite { try file.checkFinite(full) }
        let tensor = try file.tensor(full)
        usage.insert(full)
        if info.dtype == .i8, file.info(full + "_scale") != nil { usage.insert(full + "_scale") }
        return tensor
    }

    /// The weight matrix `name` of a layer with `out` × `in` features, stored as [out, in]
    /// (`.outputMajor`) or [in, out] (`.inputMajor`). F32 and F16 come as fp32; BF16 stays bf16 and
    /// I8 stays int8 with its per-output-channel `<name>_scale` (docs/quantization.md), both used in
    /// place when aligned. The name is recorded as a matrix (`matrixNames()`, what quantize converts).
    public func weightMatrix(_ name: String, out: Int, in inFeatures: Int, layout: WeightMatrix.Layout) throws -> WeightMatrix {
        guard let matrix = try optionalWeightMatrix(name, out: out, in: inFeatures, layout: layout) else {
            throw WeightError.missingTensor(file: filesDescription, name: fullName(name))
        }
        return matrix
    }

    /// `weightMatrix`, or nil when absent (e.g. an untied `lm_head.weight`).
    public func optionalWeightMatrix(_ name: String, out: Int, in inFeatures: Int, layout: WeightMatrix.Layout) throws -> WeightMatrix? {
        let full = fullName(name)
        guard let fileIndex = index[full], let info = files[fileIndex].info(full) else { return nil }
        let file = files[fileIndex]
        let shape = layout == .outputMajor ? [out, inFeatures] : [inFeatures, out]
        guard info.shape == shape else {
            throw WeightError.shapeMismatch(file: file.path, name: full, expected: shape, actual: info.shape)
        }
        if checksFinite { try file.checkFinite(full) }
        usage.insert(full, matrix: layout)
        switch info.dtype {
        case .bf16, .i8:
            let element: WeightMatrix.Element = info.dtype == .bf16 ? .bf16 : .int8
            var scales: Tensor?
            if element == .int8 {
                let (s, alongRows) = try file.int8Scales(full)
                guard alongRows == (layout == .outputMajor) else {
                    throw WeightError.invalidScale(file: file.path, tensor: full,
                                                   reason: "scales run along the input features, not the \(out) output channels")
                }
                usage.insert(full + "_scale")
                scales = s
            }
            if let bytes = file.rawBytes(full), let base = bytes.baseAddress {
                let matrix = WeightMatrix(element: element, layout: layout, outFeatures: out, inFeatures: inFeatures,
                                          base: base, owner: file.mappingOwner, scales: scales)
                return element == .int8 ? Self.outputMajor(matrix, releasing: bytes) : matrix
            }
            // Misaligned in a hand-made file: an fp32 copy computes the same products.
            return WeightMatrix(try file.tensor(full), layout: layout)
        case .f32, .f16:
            return WeightMatrix(try file.tensor(full), layout: layout)
        }
    }

    /// `matrix` as [out, in] rows: decode steps stream int8 [out, in] rows at memory speed and
    /// GPT-2's Conv1D [in, out] rows at up to 2.7x the time (`glimpse bench`, decode-step table), so
    /// int8 Conv1D matrices are turned once here and the file's pages they came from leave the
    /// resident set. fp32 ones stay: their [in, out] kernels are within 1.4x, and turning vit-gpt2's
    /// took 300 ms of load for ~1.5 ms a step.
    private static func outputMajor(_ matrix: WeightMatrix, releasing stored: UnsafeRawBufferPointer) -> WeightMatrix {
        guard matrix.layout == .inputMajor, let base = stored.baseAddress else { return matrix }
        let turned = matrix.outputMajorCopy()
        MappedFileRegistry.releasePages(base, count: stored.count)
        return turned
    }

    /// Names loaded as layer weight matrices (through `weightMatrix`), with their layout.
    public func matrixLayouts() -> [String: WeightMatrix.Layout] { usage.matrices }

    /// Names handed out so far by this loader and every scope derived from the same root, sorted.
    public func usedTensorNames() -> [String] { usage.names.sorted() }

    /// Names present in the files but never handed out, sorted: the caller reports them as ignored
    /// (published GPT-2 checkpoints carry buffers such as `attn.bias` that the model does not read).
    public func unusedTensorNames() -> [String] {
        let used = usage.names
        return index.keys.filter { !used.contains($0) }.sorted()
    }

    private var filesDescription: String { files.map(\.path).joined(separator: ", ") }
}

/// The set of names handed out, shared by reference between scopes of one loader.
private final class UsageTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var used: Set<String> = []
    private var matrixSet: [String: WeightMatrix.Layout] = [:]

    func insert(_ name: String, matrix layout: WeightMatrix.Layout? = nil) {
        lock.lock()
        used.insert(name)
        if let layout { matrixSet[name] = layout }
        lock.unlock()
    }

    var matrices: [String: WeightMatrix.Layout] {
        lock.lock()
        defer { lock.unlock() }
        return matrixSet
    }

    var names: Set<String> {
        lock.lock()
        defer { lock.unlock() }
        return used
    }
}
