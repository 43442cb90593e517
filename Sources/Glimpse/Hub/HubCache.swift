import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The Hugging Face hub cache, in exactly huggingface_hub's layout, so models downloaded by
/// transformers are found and models Glimpse downloads are seen by `scan_cache_dir` and transformers:
///
/// ```
/// <root>/models--OWNER--NAME/
///     blobs/<etag>                 file contents, named by ETag (sha256 for LFS files, git blob sha1 otherwise)
///     refs/<revision>              the 40-hex commit of a branch or tag, no trailing newline
///     snapshots/<commit>/<file>    relative symlinks into ../../blobs/
/// <root>/.locks/models--OWNER--NAME/<etag>.lock   flock(2) locks shared with huggingface_hub
/// ```
public struct HubCache: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    /// `$HF_HUB_CACHE`, else `$HUGGINGFACE_HUB_CACHE` (legacy), else `$HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`: huggingface_hub's order.
    public static func defaultRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        func nonEmpty(_ key: String) -> String? { environment[key].flatMap { $0.isEmpty ? nil : expandTilde($0, environment) } }
        if let path = nonEmpty("HF_HUB_CACHE") ?? nonEmpty("HUGGINGFACE_HUB_CACHE") { return URL(fileURLWithPath: path) }
        return home(environment: environment).appendingPathComponent("hub")
    }

    /// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (the token file lives there).
    public static func home(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        func nonEmpty(_ key: String) -> String? { environment[key].flatMap { $0.isEmpty ? nil : expandTilde($0, environment) } }
        return URL(fileURLWithPath: nonEmpty("HF_HOME") ?? ((nonEmpty("XDG_CACHE_HOME") ?? expandTilde("~/.cache", environment)) + "/huggingface"))
    }

    /// Whether `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set to a true value, as huggingface_hub reads it.
    public static func isOffline(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        let value = environment["HF_HUB_OFFLINE"].flatMap { $0.isEmpty ? nil : $0 } ?? environment["TRANSFORMERS_OFFLINE"] ?? ""
        return ["1", "ON", "YES", "TRUE"].contains(value.uppercased())
    }

    private static func expandTilde(_ path: String, _ environment: [String: String]) -> String {
        guard path == "~" || path.hasPrefix("~/") else { return path }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + path.dropFirst()
    }

    public func repoFolder(_ id: HubModelID) -> URL { root.appendingPathComponent(id.cacheFolderName) }
    public func blobsFolder(_ id: HubModelID) -> URL { repoFolder(id).appendingPathComponent("blobs") }
    public func snapshotFolder(_ id: HubModelID, commit: String) -> URL {
        repoFolder(id).appendingPathComponent("snapshots").appendingPathComponent(commit)
    }
    public func refFile(_ id: HubModelID) -> URL { repoFolder(id).appendingPathComponent("refs").appendingPathComponent(id.revision) }
    func lockFile(_ id: HubModelID, etag: String) -> URL {
        root.appendingPathComponent(".locks").appendingPathComponent(id.cacheFolderName).appendingPathComponent("\(etag).lock")
    }

    /// The commit `id.revision` names in the cache: itself for a commit hash, else the content of
    /// `refs/<revision>` (nil when absent or not a commit hash).
    public func cachedCommit(_ id: HubModelID) -> String? {
        if id.revisionIsCommit { return id.revision }
        guard let data = FileManager.default.contents(atPath: refFile(id).path),
              let text = String(data: data, encoding: .utf8) else { return nil }
        let commit = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return HubModelID.isCommitHash(commit) ? commit : nil
    }

    /// The cached snapshot directory of `id` when it holds a loadable model (config.json and a weights
    /// file); nil otherwise. No network.
    public func cachedSnapshot(_ id: HubModelID) -> URL? {
        guard let commit = cachedCommit(id) else { return nil }
        let dir = snapshotFolder(id, commit: commit)
        return Self.isLoadable(dir) ? dir : nil
    }

    /// config.json and one of the weights files Glimpse reads, each resolving to a readable file.
    static func isLoadable(_ dir: URL) -> Bool {
        let fm = FileManager.default
        guard fm.isReadableFile(atPath: dir.appendingPathComponent("config.json").path) else { return false }
        return HubFiles.weightFiles.contains { fm.isReadableFile(atPath: dir.appendingPathComponent($0).path) }
    }

    /// Writes `refs/<revision>` = `commit` atomically (temporary file + rename), only for branch and tag
    /// revisions and only when it changes, as huggingface_hub does.
    func writeRef(_ id: HubModelID, commit: String) throws {
        guard id.revision != commit else { return }
        let ref = refFile(id)
        if cachedCommit(id) == commit { return }
        try FileManager.default.createDirectory(at: ref.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temp = ref.deletingLastPathComponent().appendingPathComponent("\(ref.lastPathComponent).\(UUID().uuidString.prefix(8).lowercased()).tmp")
        try Data(commit.utf8).write(to: temp)
        guard rename(temp.path, ref.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temp)
            throw HubError.io(repo: id.repo, file: nil, path: ref.path, reason: reason)
        }
    }

    /// Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative symlink
    /// (`../../blobs/<etag>`, one more `..` per folder in `file`).
    func linkSnapshot(_ id: HubModelID, commit: String, file: String, etag: String) throws {
        let link = snapshotFolder(id, commit: commit).appendingPathComponent(file)
        let depth = file.split(separator: "/").count - 1
        let target = String(repeating: "../", count: depth + 2) + "blobs/" + etag
        try FileManager.default.createDirectory(at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let existing = try? FileManager.default.destinationOfSymbolicLink(atPath: link.path) {
            if existing == target { return }
            try FileManager.default.removeItem(at: link)
        }
        guard symlink(target, link.path) == 0 else {
            throw HubError.io(repo: id.repo, file: file, path: link.path, reason: "cannot create symlink: \(String(cString: strerror(errno)))")
        }
    }

    // MARK: Listing

    /// One cached revision of a model repo.
    public struct CachedRevision: Sendable {
        public let id: HubModelID
        public let commit: String
        /// Branches and tags pointing at `commit` (empty for a snapshot reached only by its hash).
        public let refs: [String]
        public let snapshot: URL
        /// Bytes of the distinct blobs the snapshot's files point to.
        public let size: Int64
    }

    /// Every snapshot under `models--*--*`, sorted by repo then commit. Unreadable entries are skipped.
    public func cachedRevisions() -> [CachedRevision] {
        let fm = FileManager.default
        guard let folders = try? fm.contentsOfDirectory(atPath: root.path) else { return [] }
        var result: [CachedRevision] = []
        for folder in folders.sorted() where folder.hasPrefix("models--") {
            let parts = folder.dropFirst("models--".count).components(separatedBy: "--")
            guard parts.count == 2, let base = try? HubModelID(parsing: "\(parts[0])/\(parts[1])") else { continue }
            let repo = root.appendingPathComponent(folder)
            var refsByCommit: [String: [String]] = [:]
            let refsDir = repo.appendingPathComponent("refs")
            if let enumerator = fm.enumerator(atPath: refsDir.path) {
                for case let ref as String in enumerator {
                    guard let data = fm.contents(atPath: refsDir.appendingPathComponent(ref).path),
                          let commit = String(data: data, encoding: .utf8), HubModelID.isCommitHash(commit) else { continue }
                    refsByCommit[commit, default: []].append(ref)
                }
            }
            let snapshots = repo.appendingPathComponent("snapshots")
            for commit in ((try? fm.contentsOfDirectory(atPath: snapshots.path)) ?? []).sorted() where HubModelID.isCommitHash(commit) {
                let dir = snapshots.appendingPathComponent(commit)
                let refs = (refsByCommit[commit] ?? []).sorted()
                guard let id = try? HubModelID(parsing: base.repo, revision: refs.first ?? commit) else { continue }
                result.append(CachedRevision(id: id, commit: commit, refs: refs, snapshot: dir, size: Self.snapshotSize(dir)))
            }
        }
        return result
    }

    private static func snapshotSize(_ dir: URL) -> Int64 {
        var seen = Set<String>()
        var total: Int64 = 0
        guard let enumerator = FileManager.default.enumerator(atPath: dir.path) else { return 0 }
        for case let file as String in enumerator {
            let path = dir.appendingPathComponent(file).resolvingSymlinksInPath().path
            guard seen.insert(path).inserted,
                  let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                  attributes[.type] as? FileAttributeType == .typeRegular,
                  let size = attributes[.size] as? NSNumber else { continue }
            total += size.int64Value
        }
        return total
    }
}

/// Which files of a repo Glimpse downloads and reads.
public enum HubFiles {
    /// Weights in order of preference (safetensors first: no pickle, memory-mapped in place).
    public static let weightFiles = ["model.safetensors", "pytorch_model.bin"]
    /// Everything else a model directory can use (configs, tokenizers, Glimpse's heads, the card).
    public static let supportFiles: Set<String> = [
        "config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
        "vocab.json", "merges.txt", "vocab.txt",
        "heads.safetensors", "heads.json", "MODEL_CARD.md",
    ]

    /// The subset of a repo's top-level files to fetch: the support files present and the first
    /// weights file available. Throws when the repo has no weights Glimpse reads.
    static func selection(from paths: [String], repo: String, revision: String) throws -> [String] {
        let present = Set(paths)
        guard let weights = weightFiles.first(where: present.contains) else {
            throw HubError.noUsableWeights(repo: repo, revision: revision, files: paths.sorted())
        }
        return paths.filter(supportFiles.contains).sorted() + [weights]
    }
}
