import Foundation

/// Why an overlay or report file could not be written: the path and the problem in words
/// (strerror's, not a Foundation error dump).
public enum RenderError: Error, CustomStringConvertible, LocalizedError, Equatable {
    case cannotCreateDirectory(path: String, reason: String)
    case cannotWrite(file: String, reason: String)
    /// The target exists and Glimpse did not write it.
    case wouldOverwrite(file: String, detail: String)

    public var description: String {
        switch self {
        case .cannotCreateDirectory(let path, let reason): return "\(path): cannot create the output directory: \(reason)"
        case .cannotWrite(let file, let reason): return "\(file): cannot write: \(reason)"
        case .wouldOverwrite(let file, let detail): return "\(file): \(detail)"
        }
    }
    public var errorDescription: String? { description }
}

/// The one way overlays and reports reach the disk: folders made like `mkdir -p`, files written to a
/// temporary name in the same folder and renamed into place, so a failed write leaves no half file.
enum OutputFiles {
    /// Creates `url` and its missing parents.
    static func makeDirectory(_ url: URL) throws {
        let path = url.standardizedFileURL.path
        var prefix = ""
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + part
            var st = stat()
            if stat(prefix, &st) == 0 {
                guard (st.st_mode & S_IFMT) == S_IFDIR else {
                    throw RenderError.cannotCreateDirectory(path: path, reason: "\(prefix) exists and is not a directory")
                }
                continue
            }
            if mkdir(prefix, 0o777) != 0 && errno != EEXIST {
                let reason = String(cString: strerror(errno))
                throw RenderError.cannotCreateDirectory(path: path, reason: prefix == path ? reason : "\(prefix): \(reason)")
            }
        }
    }

    /// Writes `bytes` to `url`, replacing a file there (callers check first that it is theirs).
    static func write(_ bytes: [UInt8], to url: URL) throws {
        let path = url.path
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            throw RenderError.cannotWrite(file: path, reason: "it is a directory")
        }
        let dir = url.deletingLastPathComponent().path
        let temp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RenderError.cannotWrite(file: path, reason: String(cString: strerror(errno))) }
        var written = 0
        let failure: String? = bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return nil }
            while written < raw.count {
                let n = Foundation.write(fd, base + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                written += n
            }
            return nil
        }
        let closed = close(fd) == 0 ? nil : String(cString: strerror(errno))
        if let reason = failure ?? closed {
            unlink(temp)
            throw RenderError.cannotWrite(file: path, reason: reason)
        }
        if rename(temp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw RenderError.cannotWrite(file: path, reason: reason)
        }
    }

    /// The first `count` bytes of the regular file at `url`; nil when nothing is there.
    /// Throws when something that is not a readable regular file is in the way.
    static func head(of url: URL, count: Int) throws -> [UInt8]? {
        var st = stat()
        guard lstat(url.path, &st) == 0 else { return nil }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw RenderError.wouldOverwrite(file: url.path, detail: "exists and is not a regular file; choose another output directory")
        }
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RenderError.cannotWrite(file: url.path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { raw in raw.baseAddress.map { read(fd, $0, raw.count) } ?? 0 }
        return n < 0 ? [] : Array(buffer.prefix(n))
    }
}
