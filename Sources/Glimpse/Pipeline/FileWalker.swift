import Foundation

/// Finds image files under a directory: recursive, following directory symlinks without looping
/// (each directory is visited once by device+inode), image type decided by magic bytes.
public enum FileWalker {
    public struct Listing: Sendable {
        /// Candidate images, sorted bytewise by path (deterministic across machines and runs).
        public var images: [String]
        /// Files that are not JPEG/PNG by their bytes.
        public var skipped: Int
        /// Problems met while walking (unreadable directories, dangling links), one line each.
        public var warnings: [String]
    }

    public enum Kind { case jpeg, png, other, unreadable }

    /// JPEG starts FF D8 FF; PNG with its 8-byte signature.
    public static func sniff(_ path: String) -> Kind {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return .unreadable }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8)
        let n = read(fd, &bytes, 8)
        if n >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF { return .jpeg }
        if n >= 8 && bytes == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return n < 0 ? .unreadable : .other
    }

    public static func list(_ root: String) throws -> Listing {
        var listing = Listing(images: [], skipped: 0, warnings: [])
        // device+inode of every directory walked -> the path it was walked under.
        var visited: [[UInt64]: String] = [:]
        var st = stat()
        guard stat(root, &st) == 0 else {
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
            guard stat(dir, &ds) == 0 else { listing.warnings.append("\(dir): \(String(cString: strerror(errno)))"); continue }
            let key = [UInt64(ds.st_dev), UInt64(ds.st_ino)]
            if let first = visited[key] {
                listing.warnings.append("\(dir): skipped, the same directory as \(first) (symlink loop or second link)")
                continue
            }
            visited[key] = dir
            let entries: [String]
            do { entries = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
                listing.warnings.append("\(dir): cannot list directory (\(error.localizedDescription))")
                continue
            }
            var subdirectories: [String] = []
            for name in entries.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                let path = dir.hasSuffix("/") ? dir + name : dir + "/" + name
                var es = stat()
                guard stat(path, &es) == 0 else {
                    listing.warnings.append("\(path): \(String(cString: strerror(errno)))")
                    continue
                }
                switch es.st_mode & S_IFMT {
                case S_IFDIR:
                    var ls = stat()
                    if lstat(path, &ls) == 0 && (ls.st_mode & S_IFMT) == S_IFLNK { linked.append(path) } else { subdirectories.append(path) }
                case S_IFREG:
                    switch sniff(path) {
                    case .jpeg, .png, .unreadable: listing.images.append(path)   // unreadable: reported as an error record
                    case .other: listing.skipped += 1
                    }
                default:
                    // FIFOs, sockets, devices: never opened (a FIFO would block the walk).
                    listing.skipped += 1
                }
            }
            stack.append(contentsOf: subdirectories.reversed())
        }
        listing.images.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return listing
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
