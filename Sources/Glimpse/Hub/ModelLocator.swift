import Foundation

/// The one place a `--model` value becomes a model directory: an existing directory is used as it is;
/// otherwise a Hub ID (`OWNER/NAME`, `OWNER/NAME@REVISION`) is looked up in the Hugging Face cache and,
/// when it is missing there and the network is allowed (`HF_HUB_OFFLINE` unset), pulled into it.
///
/// A model already in the cache is used without asking the Hub (as `HF_HUB_OFFLINE=1` would): captioning
/// stays offline-fast and reproducible; `glimpse pull` is how a branch is brought up to date.
public struct ModelLocator {
    public var environment: [String: String]
    public var cache: HubCache
    public var token: String?
    public weak var progress: HubProgress?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, token: String? = nil) {
        self.environment = environment
        cache = HubCache(root: HubCache.defaultRoot(environment: environment))
        self.token = HubClient.token(explicit: token, environment: environment)
    }

    /// What a model spec refers to.
    public enum Source: Equatable {
        case directory(URL)
        case hub(HubModelID)
    }

    /// Classifies `spec`: a path that exists is a directory, whatever it looks like; else a Hub ID when it
    /// parses as one; else a directory (loading then reports it missing). `revision` (from --revision)
    /// applies to Hub IDs only and is refused with a directory.
    public func source(of spec: String, revision: String?) throws -> Source {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: spec, isDirectory: &isDir) {
            if revision != nil { throw HubError.invalidModelID(spec, reason: "--revision applies to Hub IDs, and this is a local path") }
            return .directory(URL(fileURLWithPath: spec))
        }
        if HubModelID.looksLikeID(spec) || revision != nil { return .hub(try HubModelID(parsing: spec, revision: revision)) }
        return .directory(URL(fileURLWithPath: spec))
    }

    /// The directory to load for `spec`, pulling a Hub model into the cache when needed and allowed.
    public func directory(for spec: String, revision: String?) throws -> URL {
        switch try source(of: spec, revision: revision) {
        case .directory(let url): return url
        case .hub(let id):
            if let snapshot = cache.cachedSnapshot(id) { return snapshot }
            if HubCache.isOffline(environment: environment) {
                throw HubError.offlineNotCached(model: id.description, cache: cache.root.path)
            }
            progress?.note("\(id) is not in the cache (\(cache.root.path)); downloading it")
            return try pull(id).snapshot
        }
    }

    /// Downloads (or completes) `id` into the cache. Offline, the cached snapshot is the answer (as
    /// huggingface_hub's `snapshot_download` gives it), and a model not cached is an error.
    public func pull(_ id: HubModelID) throws -> HubClient.PullResult {
        if HubCache.isOffline(environment: environment) {
            guard let snapshot = cache.cachedSnapshot(id), let commit = cache.cachedCommit(id) else {
                throw HubError.offlineNotCached(model: id.description, cache: cache.root.path)
            }
            let files = (try? FileManager.default.contentsOfDirectory(atPath: snapshot.path))?.sorted() ?? []
            return HubClient.PullResult(snapshot: snapshot, commit: commit, files: files, downloadedBytes: 0)
        }
        let client = HubClient(endpoint: try HubClient.defaultEndpoint(environment: environment), cache: cache, token: token)
        client.progress = progress
        return try client.pull(id)
    }
}
