import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// What a download reports as it goes (the CLI draws a progress bar on a terminal, lines otherwise).
public protocol HubProgress: AnyObject {
    /// A file starts (or resumes at `resumedAt` bytes); `total` is its size when known.
    func began(file: String, total: Int64?, resumedAt: Int64)
    func advanced(file: String, bytes: Int64)
    func finished(file: String, downloaded: Bool)
    func note(_ message: String)
}

/// Downloads model repos from the Hub into the shared cache through the HTTP API, as
/// huggingface_hub 2.x does (its `snapshot_download` / `hf_hub_download`):
///
/// 1. `GET /api/models/{repo}/revision/{rev}`: the revision's commit (skipped for a commit hash).
/// 2. `GET /api/models/{repo}/tree/{commit}?recursive=True&expand=False`, following `Link: <...>; rel="next"`.
/// 3. For each file Glimpse reads: `HEAD /{repo}/resolve/{commit}/{file}` with `Accept-Encoding: identity`,
///    following redirects that stay on the endpoint's origin; the response (the CDN redirect itself for an
///    LFS file) carries `X-Repo-Commit`, `X-Linked-Etag`/`ETag` and `X-Linked-Size`/`Content-Length`.
/// 4. `GET` of the file (the CDN location; the token is sent only to the endpoint's origin) into
///    `blobs/<etag>.glimpse.incomplete`, resumed with `Range` after a dropped connection (here or in an
///    earlier run), verified (sha256 for LFS, git blob sha1 otherwise) and only then renamed to
///    `blobs/<etag>` and linked from `snapshots/<commit>/`, under huggingface_hub's lock file.
public final class HubClient {
    public let endpoint: URL
    public let cache: HubCache
    /// Sent as `Authorization: Bearer` to the endpoint's origin only; never printed.
    private let token: String?
    public weak var progress: HubProgress?
    var http = HubHTTP()
    /// Attempts per file without any new byte arriving before a dropped download is given up.
    var maxAttempts = 5
    var retryDelay: TimeInterval = 0.5

    public init(endpoint: URL, cache: HubCache, token: String?) {
        self.endpoint = endpoint
        self.cache = cache
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `$HF_ENDPOINT` (trailing `/` removed), else https://huggingface.co.
    public static func defaultEndpoint(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        let text = (environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co")
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
            throw HubError.invalidModelID(text, reason: "HF_ENDPOINT must be an http(s) URL")
        }
        return url
    }

    /// `--token`, else `$HF_TOKEN`, else the token file huggingface_hub's login writes
    /// (`$HF_TOKEN_PATH`, else `$HF_HOME/token`, else `~/.cache/huggingface/token`).
    public static func token(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let explicit, !explicit.isEmpty { return explicit }
        if let env = environment["HF_TOKEN"], !env.isEmpty { return env }
        let path = environment["HF_TOKEN_PATH"].flatMap { $0.isEmpty ? nil : $0 }
            ?? HubCache.home(environment: environment).appendingPathComponent("token").path
        guard let data = FileManager.default.contents(atPath: path), data.count < 4096,
              let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty else { return nil }
        return text
    }

    /// The outcome of a pull.
    public struct PullResult: Sendable {
        public let snapshot: URL
        public let commit: String
        public let files: [String]
        /// Bytes fetched over the network in this call (0 when everything was cached).
        public let downloadedBytes: Int64
    }

    // MARK: Pull

    /// Resolves `id.revision`, downloads every file Glimpse needs that the cache lacks, and returns the snapshot.
    public func pull(_ id: HubModelID) throws -> PullResult {
        let commit = try id.revisionIsCommit ? id.revision : resolveCommit(id)
        let entries = try listFiles(id, commit: commit)
        let topLevel = entries.filter { !$0.path.contains("/") }
        let wanted = try HubFiles.selection(from: topLevel.map(\.path), repo: id.repo, revision: id.revision)
        var downloaded: Int64 = 0
        for file in wanted {
            downloaded += try fetch(id, commit: commit, file: file, entry: topLevel.first { $0.path == file })
        }
        try cacheIO(id, nil, cache.refFile(id)) { try cache.writeRef(id, commit: commit) }
        return PullResult(snapshot: cache.snapshotFolder(id, commit: commit), commit: commit, files: wanted, downloadedBytes: downloaded)
    }

    /// One file of the repo tree listing.
    struct TreeEntry {
        let path: String
        let size: Int64
        /// Git blob sha1.
        let oid: String
        /// sha256 of the content for LFS files.
        let lfsSHA256: String?
    }

    func resolveCommit(_ id: HubModelID) throws -> String {
        let url = apiURL(id, ["revision", id.revision])
        let response = try sendFollowingHubRedirects(request(url, method: "GET"), id: id, file: nil)
        try check(response, id: id, file: nil)
        guard let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any],
              let sha = object["sha"] as? String, HubModelID.isCommitHash(sha) else {
            throw HubError.badResponse(repo: id.repo, file: nil, reason: "\(url.path) has no 40-hex \"sha\"")
        }
        return sha
    }

    func listFiles(_ id: HubModelID, commit: String) throws -> [TreeEntry] {
        var next: URL? = apiURL(id, ["tree", commit], query: "recursive=True&expand=False")
        var entries: [TreeEntry] = []
        var pages = 0
        while let url = next {
            pages += 1
            guard pages <= 10_000 else { throw HubError.badResponse(repo: id.repo, file: nil, reason: "tree listing over 10000 pages") }
            let response = try sendFollowingHubRedirects(request(url, method: "GET"), id: id, file: nil)
            try check(response, id: id, file: nil)
            guard let items = try? JSONSerialization.jsonObject(with: response.body) as? [[String: Any]] else {
                throw HubError.badResponse(repo: id.repo, file: nil, reason: "tree listing of \(commit) is not a JSON array")
            }
            for item in items where item["type"] as? String == "file" {
                guard let path = item["path"] as? String, let size = (item["size"] as? NSNumber)?.int64Value,
                      let oid = item["oid"] as? String else {
                    throw HubError.badResponse(repo: id.repo, file: nil, reason: "tree entry without path, size or oid")
                }
                let lfs = (item["lfs"] as? [String: Any])?["oid"] as? String
                entries.append(TreeEntry(path: path, size: size, oid: oid, lfsSHA256: lfs))
            }
            next = Self.nextLink(response.header("link"), relativeTo: url)
        }
        return entries
    }

    /// The `rel="next"` target of a `Link` header (GitHub style pagination, as the Hub paginates).
    static func nextLink(_ header: String?, relativeTo base: URL) -> URL? {
        guard let header else { return nil }
        for part in header.split(separator: ",") {
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let target = pieces.first, target.hasPrefix("<"), target.hasSuffix(">"),
                  pieces.dropFirst().contains(where: { $0.replacingOccurrences(of: " ", with: "") == "rel=\"next\"" || $0 == "rel=next" }) else { continue }
            return URL(string: String(target.dropFirst().dropLast()), relativeTo: base)?.absoluteURL
        }
        return nil
    }

    /// Makes sure `snapshots/<commit>/<file>` exists; returns the bytes downloaded.
    func fetch(_ id: HubModelID, commit: String, file: String, entry: TreeEntry?) throws -> Int64 {
        let pointer = cache.snapshotFolder(id, commit: commit).appendingPathComponent(file)
        if FileManager.default.isReadableFile(atPath: pointer.path) {
            progress?.finished(file: file, downloaded: false)
            return 0
        }
        // HEAD: metadata, from the redirect response itself for LFS files.
        var head = request(resolveURL(id, commit: commit, file: file), method: "HEAD")
        head.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        let meta = try sendFollowingHubRedirects(head, id: id, file: file)
        try check(meta, id: id, file: file, revision: commit)
        guard let served = meta.header("x-repo-commit") else {
            throw HubError.badResponse(repo: id.repo, file: file, reason: "no X-Repo-Commit header: HF_ENDPOINT (\(endpoint.absoluteString)) does not look like a Hub")
        }
        guard served == commit else {
            throw HubError.badResponse(repo: id.repo, file: file, reason: "served commit \(served), asked for \(commit)")
        }
        guard let etag = Self.normalizeETag(meta.header("x-linked-etag") ?? meta.header("etag")), Self.isSafeBlobName(etag) else {
            throw HubError.badResponse(repo: id.repo, file: file, reason: "no usable ETag")
        }
        let size = Int64(meta.header("x-linked-size") ?? (meta.isRedirect ? nil : meta.header("content-length")) ?? "") ?? entry?.size
        let location: URL
        if meta.isRedirect, let target = meta.header("location").flatMap({ URL(string: $0, relativeTo: meta.url)?.absoluteURL }) {
            location = target
        } else {
            location = meta.url
        }

        let blob = cache.blobsFolder(id).appendingPathComponent(etag)
        try cacheIO(id, file, cache.blobsFolder(id)) {
            try FileManager.default.createDirectory(at: cache.blobsFolder(id), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: pointer.deletingLastPathComponent(), withIntermediateDirectories: true)
        }
        let lock = try FileLock(cache.lockFile(id, etag: etag), repo: id.repo, file: file)
        defer { lock.release() }
        var downloaded: Int64 = 0
        if !FileManager.default.fileExists(atPath: blob.path) {
            downloaded = try download(id, file: file, from: location, to: blob, etag: etag, size: size)
        }
        try cache.linkSnapshot(id, commit: commit, file: file, etag: etag)
        progress?.finished(file: file, downloaded: downloaded > 0)
        return downloaded
    }

    private func download(_ id: HubModelID, file: String, from url: URL, to blob: URL, etag: String, size: Int64?) throws -> Int64 {
        let partial = blob.deletingLastPathComponent().appendingPathComponent("\(etag).glimpse.incomplete")
        let fm = FileManager.default
        var have = Int64((try? fm.attributesOfItem(atPath: partial.path)[.size] as? NSNumber)??.int64Value ?? 0)
        if let size { try checkSpace(needed: size - min(have, size), in: blob.deletingLastPathComponent(), id: id, file: file) }
        if !fm.fileExists(atPath: partial.path) {
            guard fm.createFile(atPath: partial.path, contents: nil) else {
                throw HubError.io(repo: id.repo, file: file, path: partial.path, reason: "cannot create file")
            }
        }
        if let size, have > size { try truncate(partial, to: 0, id: id, file: file); have = 0 }
        progress?.began(file: file, total: size, resumedAt: have)

        let handle: FileHandle
        do { handle = try FileHandle(forUpdating: partial) } catch {
            throw HubError.io(repo: id.repo, file: file, path: partial.path, reason: "\(error.localizedDescription)")
        }
        defer { try? handle.close() }
        var fetched: Int64 = 0
        var attemptsLeft = maxAttempts
        var url = url
        var redirects = 0
        while size.map({ have < $0 }) ?? true {
            var get = request(url, method: "GET")
            if !Self.sameOrigin(url, endpoint) { get.setValue(nil, forHTTPHeaderField: "Authorization") }
            if have > 0 { get.setValue("bytes=\(have)-", forHTTPHeaderField: "Range") }
            let start = have
            var progressed = false
            do {
                _ = try http.stream(get, onResponse: { response in
                    try self.check(response, id: id, file: file)
                    if response.isRedirect, let target = response.header("location").flatMap({ URL(string: $0, relativeTo: response.url)?.absoluteURL }) {
                        throw Redirect(target: target)
                    }
                    if start > 0 && response.status == 200 {
                        // The server ignored Range: start over rather than append a second copy.
                        try self.truncate(partial, to: 0, id: id, file: file, handle: handle)
                        have = 0
                    } else if start > 0 {
                        guard response.status == 206, let range = response.header("content-range"), range.hasPrefix("bytes \(start)-") else {
                            throw HubError.badResponse(repo: id.repo, file: file, reason: "asked for bytes \(start)-, got HTTP \(response.status) \(response.header("content-range") ?? "")")
                        }
                    } else if response.status != 200 {
                        throw HubError.httpStatus(repo: id.repo, file: file, status: response.status, url: Self.redacted(url), message: nil)
                    }
                    try handle.seek(toOffset: UInt64(have))
                }, onData: { chunk in
                    do { try handle.write(contentsOf: chunk) } catch {
                        throw self.writeError(error, id: id, file: file, path: partial)
                    }
                    have += Int64(chunk.count)
                    fetched += Int64(chunk.count)
                    progressed = true
                    if let size, have > size {
                        throw HubError.sizeMismatch(repo: id.repo, file: file, expected: Int(size), actual: Int(have))
                    }
                    self.progress?.advanced(file: file, bytes: have)
                })
                if size == nil { break }  // no size advertised: the completed response is the file
                if let size, have < size {
                    throw HubHTTP.TransportError(reason: "connection closed after \(have) of \(size) bytes", transient: true)
                }
            } catch let redirect as Redirect {
                // A further hop (a mirror, a storage redirect): followed, the token kept to the endpoint's origin.
                redirects += 1
                guard redirects <= 10 else { throw HubError.badResponse(repo: id.repo, file: file, reason: "more than 10 redirects") }
                url = redirect.target
            } catch let error as HubHTTP.TransportError where error.transient {
                if progressed { attemptsLeft = maxAttempts }
                attemptsLeft -= 1
                guard attemptsLeft > 0 else {
                    throw HubError.network(repo: id.repo, file: file, endpoint: Self.origin(url), reason: "\(error.reason); \(maxAttempts) attempts; the partial download is kept and resumes next time")
                }
                progress?.note("\(id.repo)/\(file): \(error.reason); resuming at \(ByteCount.format(have))")
                Thread.sleep(forTimeInterval: retryDelay)
            } catch let error as HubHTTP.TransportError {
                throw HubError.network(repo: id.repo, file: file, endpoint: Self.origin(url), reason: error.reason)
            } catch let error as HubError {
                if case .sizeMismatch = error { try? fm.removeItem(at: partial) }
                throw error
            }
        }
        try? handle.close()
        try verify(partial, id: id, file: file, etag: etag, size: size)
        guard rename(partial.path, blob.path) == 0 else {
            throw HubError.io(repo: id.repo, file: file, path: blob.path, reason: String(cString: strerror(errno)))
        }
        chmod(blob.path, 0o644 & ~Self.umask)
        return fetched
    }

    /// The whole temporary file against the advertised size and digest; on a mismatch it is deleted.
    private func verify(_ partial: URL, id: HubModelID, file: String, etag: String, size: Int64?) throws {
        let attributes = try? FileManager.default.attributesOfItem(atPath: partial.path)
        let actual = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
        if let size, actual != size {
            try? FileManager.default.removeItem(at: partial)
            throw HubError.sizeMismatch(repo: id.repo, file: file, expected: Int(size), actual: Int(actual))
        }
        var digest: Digest
        switch etag.utf8.count {
        case 64: digest = Digest(.sha256)
        case 40: digest = Digest.gitBlob(size: Int(actual))
        default: return  // an ETag that is no content hash: the size check is all there is
        }
        guard let reader = FileHandle(forReadingAtPath: partial.path) else {
            throw HubError.io(repo: id.repo, file: file, path: partial.path, reason: "cannot read back the download")
        }
        defer { try? reader.close() }
        while let chunk = try? reader.read(upToCount: 1 << 22), !chunk.isEmpty { digest.update(chunk) }
        let hex = digest.finalize()
        guard hex == etag.lowercased() else {
            try? FileManager.default.removeItem(at: partial)
            throw HubError.integrity(repo: id.repo, file: file, algorithm: digest.algorithm == .sha256 ? "sha256" : "git blob sha1",
                                     expected: etag, actual: hex)
        }
    }

    // MARK: Requests

    private func request(_ url: URL, method: String) -> URLRequest {
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue("glimpse/\(Glimpse.version)", forHTTPHeaderField: "User-Agent")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return request
    }

    private func apiURL(_ id: HubModelID, _ components: [String], query: String? = nil) -> URL {
        let path = "/api/models/\(id.repo)/" + components.map(Self.quoteComponent).joined(separator: "/")
        return URL(string: endpoint.absoluteString + path + (query.map { "?" + $0 } ?? ""))!
    }

    private func resolveURL(_ id: HubModelID, commit: String, file: String) -> URL {
        let path = file.split(separator: "/").map { Self.quoteComponent(String($0)) }.joined(separator: "/")
        return URL(string: endpoint.absoluteString + "/\(id.repo)/resolve/\(commit)/\(path)")!
    }

    /// Percent-encodes everything but unreserved characters (Python's `quote(s, safe="")`).
    static func quoteComponent(_ s: String) -> String {
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        allowed.remove(charactersIn: "")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    /// Sends `request`, following redirects whose target has the same origin (a renamed repo); stops at
    /// one leaving it (the CDN), whose response carries the file's metadata.
    private func sendFollowingHubRedirects(_ request: URLRequest, id: HubModelID, file: String?) throws -> HubHTTP.Response {
        var request = request
        for _ in 0..<10 {
            let response: HubHTTP.Response
            do { response = try http.send(request) } catch let error as HubHTTP.TransportError {
                throw HubError.network(repo: id.repo, file: file, endpoint: Self.origin(request.url ?? endpoint), reason: error.reason)
            }
            guard response.isRedirect, let location = response.header("location"),
                  let target = URL(string: location, relativeTo: response.url)?.absoluteURL,
                  let current = request.url, Self.sameOrigin(current, target) else { return response }
            request.url = target
        }
        throw HubError.badResponse(repo: id.repo, file: file, reason: "more than 10 redirects")
    }

    /// Maps an error status to the Hub's errors, by `X-Error-Code` first, as huggingface_hub's `hf_raise_for_status`.
    private func check(_ response: HubHTTP.Response, id: HubModelID, file: String?, revision: String? = nil) throws {
        guard response.status >= 400 else { return }
        let code = response.header("x-error-code")
        let message = response.header("x-error-message")
        switch code {
        case "RevisionNotFound": throw HubError.revisionNotFound(repo: id.repo, revision: id.revision)
        case "EntryNotFound": throw HubError.entryNotFound(repo: id.repo, file: file ?? "?", revision: revision ?? id.revision)
        case "GatedRepo": throw HubError.accessDenied(repo: id.repo, file: file, status: response.status, gated: true, message: message)
        case "RepoNotFound": throw HubError.repositoryNotFound(repo: id.repo, status: response.status, authenticated: token != nil)
        default: break
        }
        switch response.status {
        case 401 where message != "Invalid credentials in Authorization header" && Self.sameOrigin(response.url, endpoint):
            throw HubError.repositoryNotFound(repo: id.repo, status: 401, authenticated: token != nil)
        case 401, 403:
            throw HubError.accessDenied(repo: id.repo, file: file, status: response.status, gated: false, message: message)
        case 404 where file != nil:
            throw HubError.entryNotFound(repo: id.repo, file: file ?? "?", revision: revision ?? id.revision)
        default:
            throw HubError.httpStatus(repo: id.repo, file: file, status: response.status, url: Self.redacted(response.url), message: message)
        }
    }

    // MARK: Helpers

    static func normalizeETag(_ etag: String?) -> String? {
        guard var e = etag?.trimmingCharacters(in: .whitespaces) else { return nil }
        if e.hasPrefix("W/") { e.removeFirst(2) }
        e = e.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        return e.isEmpty ? nil : e
    }

    /// A blob name must stay one path component inside `blobs/`.
    static func isSafeBlobName(_ s: String) -> Bool {
        s.utf8.count <= 128 && !s.hasPrefix(".") && s.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0))
        }
    }

    static func sameOrigin(_ a: URL, _ b: URL) -> Bool {
        func port(_ u: URL) -> Int { u.port ?? (u.scheme?.lowercased() == "https" ? 443 : 80) }
        return a.scheme?.lowercased() == b.scheme?.lowercased() && a.host?.lowercased() == b.host?.lowercased() && port(a) == port(b)
    }

    static func origin(_ url: URL) -> String {
        "\(url.scheme ?? "http")://\(url.host ?? "?")" + (url.port.map { ":\($0)" } ?? "")
    }

    /// A URL for messages: no query (CDN URLs carry signatures there).
    static func redacted(_ url: URL) -> String {
        origin(url) + url.path
    }

    private static let umask: mode_t = {
        let mask = Glibc.umask(0o022)
        _ = Glibc.umask(mask)
        return mask
    }()

    private func cacheIO(_ id: HubModelID, _ file: String?, _ path: URL, _ body: () throws -> Void) throws {
        do { try body() } catch let error as HubError { throw error } catch {
            throw writeError(error, id: id, file: file ?? "", path: path)
        }
    }

    private func writeError(_ error: Error, id: HubModelID, file: String, path: URL) -> HubError {
        let ns = error as NSError
        let posix = (ns.userInfo[NSUnderlyingErrorKey] as? NSError).map { $0.domain == NSPOSIXErrorDomain ? $0.code : 0 } ?? (ns.domain == NSPOSIXErrorDomain ? ns.code : 0)
        if posix == Int(ENOSPC) || ns.code == NSFileWriteOutOfSpaceError {
            return HubError.diskFull(repo: id.repo, file: file, directory: path.deletingLastPathComponent().path, needed: 0, available: Self.freeSpace(path.deletingLastPathComponent()))
        }
        return HubError.io(repo: id.repo, file: file.isEmpty ? nil : file, path: path.path, reason: ns.localizedDescription)
    }

    private func truncate(_ url: URL, to size: UInt64, id: HubModelID, file: String, handle: FileHandle? = nil) throws {
        do {
            if let handle { try handle.truncate(atOffset: size) } else {
                let h = try FileHandle(forUpdating: url)
                defer { try? h.close() }
                try h.truncate(atOffset: size)
            }
        } catch { throw writeError(error, id: id, file: file, path: url) }
    }

    static func freeSpace(_ dir: URL) -> Int64? {
        var info = statvfs()
        guard statvfs(dir.path, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    private func checkSpace(needed: Int64, in dir: URL, id: HubModelID, file: String) throws {
        guard needed > 0, let free = Self.freeSpace(dir), free < needed else { return }
        throw HubError.diskFull(repo: id.repo, file: file, directory: dir.path, needed: needed, available: free)
    }
}

/// A download's GET answered with a redirect to `target`.
private struct Redirect: Error { let target: URL }

/// An exclusive `flock(2)` on huggingface_hub's lock file for a blob (`.locks/models--O--N/<etag>.lock`),
/// so Glimpse and huggingface_hub never download the same blob at once.
final class FileLock {
    private var fd: Int32

    init(_ url: URL, repo: String, file: String) throws {
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HubError.io(repo: repo, file: file, path: url.path, reason: "cannot open lock file: \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw HubError.io(repo: repo, file: file, path: url.path, reason: "cannot lock: \(reason)")
            }
        }
    }

    func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
