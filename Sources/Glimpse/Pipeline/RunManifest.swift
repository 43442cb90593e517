import Foundation

/// What a batch output was made with, stored next to it as `OUT.meta.json` (and as the first line of a
/// sidecar ledger). `--resume` refuses an output whose manifest differs in anything that can change a
/// record: the model's revision, the generation and grounding options, the format, the walked root.
/// `pid` and `started` say which process holds the output now (for the "in use" message) and are not
/// compared, nor is `version` or the model's path (a model moved elsewhere is the same model).
public struct RunManifest: Sendable {
    public var version = Glimpse.version
    public var format: String
    /// The walked directory as each run spelled it (`d`, `./d`, `/abs/d`; first run first): records'
    /// `file` paths start with one of them, and resume compares the rest of the path, byte for byte.
    public var roots: [String]
    /// The walked directory's real path (symlinks resolved): a resume must walk the same directory.
    public var rootPath: String
    public var model: String
    public var modelRevision: String
    /// The options of a request, flattened to name -> value text (every stored property, so an option
    /// added later is compared too).
    public static func options(of request: CaptionRequest) -> [String: String] {
        var out: [String: String] = [:]
        func flatten(_ value: Any, _ prefix: String) {
            let mirror = Mirror(reflecting: value)
            guard mirror.displayStyle == .struct, !mirror.children.isEmpty else { out[prefix] = String(describing: value); return }
            for child in mirror.children {
                guard let label = child.label else { continue }
                flatten(child.value, prefix.isEmpty ? label : prefix + "." + label)
            }
        }
        flatten(request, "")
        return out
    }

    /// Everything else that shapes a record (generation parameters, prompt, grounding, encoder batch,
    /// shard, max pixels), as name -> value text.
    public var options: [String: String]
    public var pid: Int32 = getpid()
    public var started = RunManifest.now()

    public init(format: String, root: String, model: String, modelRevision: String, options: [String: String]) {
        self.format = format
        roots = [root]
        rootPath = RunManifest.realPath(root) ?? root
        self.model = model
        self.modelRevision = modelRevision
        self.options = options
    }

    /// One JSON object, keys in a fixed order (written with `JSONText`).
    public var json: String {
        var out = "{\"glimpse\":" + JSONText.quoted(version) + ",\"format\":" + JSONText.quoted(format)
        out += ",\"roots\":[" + roots.map(RawPath.jsonQuoted).joined(separator: ",") + "]"
        out += ",\"root_path\":" + RawPath.jsonQuoted(rootPath)
        out += ",\"model\":" + RawPath.jsonQuoted(model) + ",\"model_revision\":" + JSONText.quoted(modelRevision)
        out += ",\"options\":{" + options.keys.sorted().map { JSONText.quoted($0) + ":" + JSONText.quoted(options[$0]!) }.joined(separator: ",") + "}"
        out += ",\"pid\":\(pid),\"started\":" + JSONText.quoted(started) + "}"
        return out
    }

    private struct Stored: Decodable {
        var glimpse: String, format: String, roots: [String], root_path: String, model: String, model_revision: String
        var options: [String: String], pid: Int32, started: String
    }

    /// Reads a manifest written by `json`; nil when `data` is not one.
    public static func parse(_ data: Data) -> RunManifest? {
        // Paths may hold raw-byte escapes (\udcXX) that Foundation rejects: they are read by RawPath and
        // replaced by a placeholder before decoding the rest.
        let (cleaned, paths) = extractPaths(data)
        guard let s = try? JSONDecoder().decode(Stored.self, from: cleaned) else { return nil }
        func path(_ p: String) -> String {
            p.hasPrefix(placeholder) ? (paths[Int(p.dropFirst(placeholder.count)) ?? -1] ?? p) : p
        }
        var m = RunManifest(format: s.format, root: "", model: path(s.model), modelRevision: s.model_revision, options: s.options)
        m.version = s.glimpse
        m.roots = s.roots.map(path)
        m.rootPath = path(s.root_path)
        m.pid = s.pid
        m.started = s.started
        return m
    }

    /// What differs from `other` in what a resume must keep, one phrase each (empty: compatible).
    public func mismatches(resumingWith other: RunManifest) -> [String] {
        var out: [String] = []
        if format != other.format { out.append("format \(format), not \(other.format)") }
        if rootPath != other.rootPath { out.append("directory \(rootPath), not \(other.rootPath)") }
        if modelRevision != other.modelRevision {
            out.append("model \(model) (revision \(modelRevision)), not \(other.model) (revision \(other.modelRevision))")
        }
        for key in Set(options.keys).union(other.options.keys).sorted() where options[key] != other.options[key] {
            out.append("\(key) \(options[key] ?? "unset"), not \(other.options[key] ?? "unset")")
        }
        return out
    }

    /// `file` with the root it was walked under removed (the longest of `roots` that prefixes it), as
    /// bytes: how resume recognizes a file whichever way the directory was spelled.
    public func relativeKey(_ file: String) -> [UInt8] {
        let bytes = RawPath.key(file)
        var best: Int = 0
        for root in roots {
            let prefix = RawPath.key(root.hasSuffix("/") ? root : root + "/")
            if prefix.count > best && bytes.starts(with: prefix) { best = prefix.count }
        }
        return Array(bytes[best...])
    }

    public static func realPath(_ path: String) -> String? {
        RawPath.withCString(path) { p in
            guard let r = realpath(p, nil) else { return nil }
            defer { free(r) }
            return RawPath.string(UnsafeBufferPointer(start: UnsafeRawPointer(r).assumingMemoryBound(to: UInt8.self), count: strlen(r)))
        }
    }

    static func now() -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date())
    }

    /// A revision for a model directory without a hub commit: FNV-1a 64 over each top-level file's name
    /// and size, and its bytes (whole for files up to 4 MiB; the first and last MiB of larger ones, so a
    /// multi-gigabyte checkpoint is fingerprinted in milliseconds). Retraining, converting or editing a
    /// config changes it; copying the directory elsewhere does not.
    public static func revision(ofModelDirectory dir: URL) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes { hash = (hash ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
        for name in names where !name.hasPrefix(".") {
            let path = dir.appendingPathComponent(name).path
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            mix(Array(name.utf8)); mix([0])
            let size = Int(st.st_size)
            mix(withUnsafeBytes(of: UInt64(size).littleEndian, Array.init))
            let window = 1 << 20
            let ranges = size <= 4 * window ? [0..<size] : [0..<window, (size - window)..<size]
            var buffer = [UInt8](repeating: 0, count: window * 4)
            for range in ranges {
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, range.count, off_t(range.lowerBound)) }
                if n > 0 { mix(buffer[0..<n]) }
            }
        }
        return String(format: "fnv1a64:%016llx", hash)
    }

    private static let placeholder = "\u{1}glimpse-raw-path-"

    /// Replaces every JSON string holding a `\udc` escape by "\u0001N" and returns its RawPath value N.
    private static func extractPaths(_ data: Data) -> (Data, [Int: String]) {
        let bytes = [UInt8](data)
        let hasEscape = bytes.indices.contains { i in
            i + 4 <= bytes.count && bytes[i] == 0x5C && bytes[i + 1] == 0x75 && (bytes[i + 2] | 0x20) == 0x64 && (bytes[i + 3] | 0x20) == 0x63
        }
        guard hasEscape else { return (data, [:]) }
        var out: [UInt8] = []
        var paths: [Int: String] = [:]
        var i = 0
        bytes.withUnsafeBufferPointer { buffer in
            while i < buffer.count {
                if buffer[i] == UInt8(ascii: "\""), let (value, end) = RawPath.parseJSONString(buffer, from: i) {
                    let literal = Array(buffer[i..<end])
                    if RawPath.hasRawBytes(value) {
                        paths[paths.count] = value
                        out += Array("\"\\u0001glimpse-raw-path-\(paths.count - 1)\"".utf8)
                    } else {
                        out += literal
                    }
                    i = end
                } else {
                    out.append(buffer[i]); i += 1
                }
            }
        }
        return (Data(out), paths)
    }
}
