import Foundation

/// Finds image files under a directory: recursive, following directory symlinks without looping
/// (each directory is visited once by device+inode), image type decided by magic bytes.
///
/// Names are read as bytes (`readdir`), so a name that is not valid UTF-8 is listed like any other
/// (as a `RawPath` string) and NFC/NFD spellings of one name are two files. Nothing that could be an
/// image is dropped silently: a file with JPEG/PNG bytes is listed whatever its name; a file named like
/// an image (.jpg, .jpeg, .jpe, .jfif, .png) is listed whatever its bytes or type (an empty file, text,
/// a FIFO or a device then becomes an error record saying so); everything else is counted as skipped.
public enum FileWalker {
    public struct Listing: Sendable {
        /// Candidate images, sorted bytewise by path (deterministic across machines and runs).
        public var images: [String]
        /// Files that are neither JPEG/PNG by their bytes nor named like an image.
        public var skipped: Int
        /// Problems met while walking (unreadable directories, dangling links), one line each.
        public var warnings: [String]
        /// Device and inode of every listed file, to refuse an output that is one of the inputs.
        public var identities: Set<FileIdentity>
    }

    public enum Kind { case jpeg, png, other, unreadable }

    /// Extensions that make a file an intended image even when its bytes are not one.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "jpe", "jfif", "png"]

    public static func hasImageExtension(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
        return imageExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// JPEG starts FF D8 FF; PNG with its 8-byte signature.
    public static func sniff(_ path: String) -> Kind {
        let fd = RawPath.withCString(path) { open($0, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
        guard fd >= 0 else { return .unreadable }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8)
        let n = read(fd, &bytes, 8)
        if n >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF { return .jpeg }
        if n >= 8 && bytes == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return n < 0 ? .unreadable : .other
    }

    /// The entries of directory `dir` as raw names (no "." or ".."), or the errno of opendir.
    static func entries(of dir: String) -> Result<[[UInt8]], POSIXError> {
        guard let handle = RawPath.withCString(dir, { opendir($0) }) else {
            return .failure(POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO))
        }
        defer { closedir(handle) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(handle) else {
                if errno != 0 { return .failure(POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)) }
                break
            }
            let name = withUnsafeBytes(of: &entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        return .success(names)
    }

    public static func list(_ root: String) throws -> Listing {
        var listing = Listing(images: [], skipped: 0, warnings: [], identities: [])
        // device+inode of every directory walked -> the path it was walked under.
        var visited: [FileIdentity: String] = [:]
        var st = stat()
        guard RawPath.withCString(root, { stat($0, &st) }) == 0 else {
            throw ModelError.invalidInput("\(root): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw ModelError.invalidInput("\(root): not a directory") }
        // Real directories are walked before directories reached through a symlink, and each directory's
        // entries in byte order, so a directory with several paths (a link to it, a loop) is always listed
        // under the same path: its files keep their names from run to run, which --resume relies on.
        var stack = [root]
        var linked: [String] = []
        while let dir = stack.popLast() ?? (linked.isEmpty ? nil : linked.removeFirst()) {
            var ds = stat()
            guard RawPath.withCString(dir, { stat($0, &ds) }) == 0 else {
                listing.warnings.append("\(dir): \(String(cString: strerror(errno)))"); continue
            }
            let key = FileIdentity(ds)
            if let first = visited[key] {
                listing.warnings.append("\(dir): skipped, the same directory as \(first) (symlink loop or second link)")
                continue
            }
            visited[key] = dir
            let names: [[UInt8]]
            switch entries(of: dir) {
            case .success(let n): names = n
            case .failure(let error):
                listing.warnings.append("\(dir): cannot list directory (\(String(cString: strerror(error.code.rawValue))))")
                continue
            }
            var subdirectories: [String] = []
            for nameBytes in names.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                let name = RawPath.string(nameBytes)
                let path = dir.hasSuffix("/") ? dir + name : dir + "/" + name
                var es = stat()
                guard RawPath.withCString(path, { stat($0, &es) }) == 0 else {
                    listing.warnings.append("\(path): \(String(cString: strerror(errno)))")
                    continue
                }
                let namedLikeImage = hasImageExtension(name)
                switch es.st_mode & S_IFMT {
                case S_IFDIR:
                    var ls = stat()
                    let isLink = RawPath.withCString(path, { lstat($0, &ls) }) == 0 && (ls.st_mode & S_IFMT) == S_IFLNK
                    if isLink { linked.append(path) } else { subdirectories.append(path) }
                case S_IFREG:
                    switch sniff(path) {
                    case .jpeg, .png, .unreadable: listing.add(path, es)   // unreadable: reported as an error record
                    case .other: if namedLikeImage { listing.add(path, es) } else { listing.skipped += 1 }
                    }
                default:
                    // FIFOs, sockets, devices: never opened for reading (a FIFO would block the walk). One named
                    // like an image becomes an error record saying what it is.
                    if namedLikeImage { listing.add(path, es) } else { listing.skipped += 1 }
                }
            }
            stack.append(contentsOf: subdirectories.reversed())
        }
        listing.images.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return listing
    }
}

extension FileWalker.Listing {
    mutating func add(_ path: String, _ st: stat) {
        images.append(path)
        identities.insert(FileIdentity(st))
    }
}

/// A file's device and inode: the same file whatever path reaches it.
public struct FileIdentity: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64

    public init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }

    /// The identity of the file at `path` (following symlinks), or nil when it does not exist.
    public init?(path: String) {
        var st = stat()
        guard RawPath.withCString(path, { stat($0, &st) }) == 0 else { return nil }
        self.init(st)
    }
}

/// `--shard I/N`: the I-th of N contiguous slices of the sorted file list, so shard outputs
/// concatenated in order 0..N-1 equal one unsharded run.
public struct Shard: Sendable, Equatable {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, index >= 0, index < count else {
            throw ModelError.invalidInput("shard \(index)/\(count): need 0 <= I < N")
        }
        self.index = index
        self.count = count
    }

    /// Parses "I/N".
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw ModelError.invalidInput("--shard expects I/N, e.g. 0/4 (got '\(text)')")
        }
        try self.init(index: i, count: n)
    }

    public func slice<T>(_ items: [T]) -> ArraySlice<T> { items[range(of: items.count)] }

    /// The indices of this shard in a list of `total` items.
    public func range(of total: Int) -> Range<Int> {
        // total · index can exceed Int for huge N (--shard 9223372036854775806/9223372036854775807):
        // a double-width product divides exactly, and the quotient is at most total.
        func bound(_ i: Int) -> Int {
            let product = total.multipliedFullWidth(by: i)
            return count.dividingFullWidth((high: product.high, low: product.low)).quotient
        }
        return bound(index)..<bound(index + 1)
    }
}
