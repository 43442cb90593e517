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
        return tensor
    }

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

    func insert(_ name: String) {
        lock.lock()
        used.insert(name)
        lock.unlock()
    }

    var names: Set<String> {
        lock.lock()
        defer { lock.unlock() }
        return used
    }
}
