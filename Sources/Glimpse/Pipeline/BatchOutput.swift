import Foundation

public enum BatchFormat: String, Sendable, CaseIterable {
    case jsonl, csv
}

/// What an existing output already holds, for `--resume`.
public struct ResumeIndex {
    public struct Entry {
        /// The record's `file` (a `RawPath` string: raw-byte escapes decoded).
        public var file: String
        public var isError: Bool
        /// The record's bytes in the output, newline included.
        public var range: Range<Int>
    }

    /// Complete records, in file order (a CSV header is not one).
    public var entries: [Entry] = []
    /// Byte length of the complete lines: a run killed mid-write leaves at most one incomplete last
    /// line, which resume cuts off.
    public var validLength = 0
    /// The CSV header line's range, when there is one.
    public var header: Range<Int>?

    /// The recorded files (a convenience for tests; resume compares bytes, not `String`s).
    public var files: Set<String> { Set(entries.map(\.file)) }

    private struct FileField: Decodable { let file: String; let error: String? }

    /// Records in JSONL `data`. Glimpse's own lines start `{"file":"...",` and are read by `RawPath`
    /// (lossless for raw-byte names; Foundation's readers reject the `\udcXX` escapes and, on Linux,
    /// JSONSerialization drops a U+FEFF that starts a string); other lines go through JSONDecoder.
    public static func jsonl(_ data: Data) -> ResumeIndex {
        var index = ResumeIndex()
        let bytes = [UInt8](data)
        let prefix = Array("{\"file\":".utf8), errorKey = Array(",\"error\":".utf8)
        bytes.withUnsafeBufferPointer { buffer in
            var lineStart = 0
            for i in 0..<buffer.count where buffer[i] == UInt8(ascii: "\n") {
                let line = UnsafeBufferPointer(rebasing: buffer[lineStart..<i])
                if line.starts(with: prefix), let (file, end) = RawPath.parseJSONString(line, from: prefix.count) {
                    index.entries.append(Entry(file: file, isError: line[end...].starts(with: errorKey), range: lineStart..<(i + 1)))
                } else if let record = try? JSONDecoder().decode(FileField.self, from: Data(line)) {
                    index.entries.append(Entry(file: record.file, isError: record.error != nil, range: lineStart..<(i + 1)))
                }
                lineStart = i + 1
                index.validLength = lineStart
            }
        }
        return index
    }

    /// Records in CSV `data` (columns file,caption,score,error; header skipped).
    public static func csv(_ data: Data) -> ResumeIndex {
        var index = ResumeIndex()
        let bytes = [UInt8](data)
        var field: [UInt8] = [], inQuotes = false, column = 0, row = 0
        var file: [UInt8] = [], hasError = false
        var lineStart = 0
        func endField() {
            if column == 0 { file = field } else if column == 3 { hasError = !field.isEmpty }
            column += 1
            field.removeAll(keepingCapacity: true)
        }
        for i in bytes.indices {
            let b = bytes[i]
            if inQuotes {
                if b == UInt8(ascii: "\"") { inQuotes = false } else { field.append(b) }
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                if i > lineStart && bytes[i - 1] == UInt8(ascii: "\"") { field.append(b) }
                inQuotes = true
            case UInt8(ascii: ","):
                endField()
            case UInt8(ascii: "\n"):
                endField()
                if row > 0 {
                    index.entries.append(Entry(file: RawPath.string(file), isError: hasError, range: lineStart..<(i + 1)))
                } else {
                    index.header = lineStart..<(i + 1)
                }
                row += 1; column = 0; hasError = false
                lineStart = i + 1
                index.validLength = lineStart
            default:
                field.append(b)
            }
        }
        return index
    }
}

/// Why a batch output cannot be used; each case names the file.
public enum BatchOutputError: Error, CustomStringConvertible, Equatable {
    case isInput(path: String)
    case notGlimpseOutput(path: String, reason: String)
    case exists(path: String, records: Int)
    case inUse(path: String, holder: String)
    case mismatch(path: String, differences: [String])
    case cannotResume(path: String, reason: String)
    case sidecarTaken(path: String, reason: String)
    case io(path: String, action: String, reason: String)

    public var description: String {
        switch self {
        case .isInput(let path):
            return "\(path): the output is one of the images being captioned; choose another --out"
        case .notGlimpseOutput(let path, let reason):
            return "\(path): exists and is not a glimpse batch output (\(reason)); it is left as it is: "
                + "choose another --out, or move the file away"
        case .exists(let path, let records):
            return "\(path): holds \(records) record(s) of an earlier run; pass --resume to continue it, "
                + "or --overwrite to replace it"
        case .inUse(let path, let holder):
            return "\(path): in use by another glimpse batch (\(holder)); wait for it to finish or choose another --out"
        case .mismatch(let path, let differences):
            return "\(path): cannot resume, it was made with " + differences.joined(separator: "; ")
                + " (--overwrite starts it again with these settings)"
        case .cannotResume(let path, let reason):
            return "\(path): cannot resume (\(reason))"
        case .sidecarTaken(let path, let reason):
            return "\(path): sidecar not written: \(reason); the file is left as it is"
        case .io(let path, let action, let reason):
            return "\(path): cannot \(action): \(reason)"
        }
    }
}

/// Appends one record per line to the batch output and flushes each as soon as it is ready
/// (one write(2) per record), so a killed run loses nothing already written.
///
/// Glimpse only ever writes a file it made: a regular file is a batch output when `OUT.meta.json`
/// next to it holds the run's `RunManifest`. Anything else that exists is refused, as is an output
/// that is one of the inputs. The output is locked (flock, held for the run) so two runs never write
/// it at once; the holder's pid is in the manifest. Setup (check, create, repair, rewrite) runs under a
/// short flock on the output's directory, so two runs starting together see each other's files whole.
/// A FIFO or device (`/dev/stdout`) is written as a stream: no manifest, no lock, no resume.
public final class BatchOutput {
    public enum Mode: Equatable {
        /// A new output; an earlier run's output is refused.
        case create
        /// Continue an earlier run made with the same manifest (`retryErrors`: error records are removed
        /// and their files captioned again).
        case resume(retryErrors: Bool)
        /// Replace an earlier run's output (never a file Glimpse did not write).
        case overwrite
    }

    public let path: String
    public let format: BatchFormat
    /// The manifest in force (the earlier run's, with this run's pid and root spelling, when resuming).
    public private(set) var manifest: RunManifest?
    /// Files already recorded, by `RunManifest.relativeKey` (non-empty only when resuming).
    public private(set) var completed = Set<[UInt8]>()
    /// Error records removed by `--retry-errors`.
    public private(set) var retried = 0
    private var fd: Int32 = -1

    public static func metaPath(for path: String) -> String { path + ".meta.json" }

    /// A stream or plain output with no manifest (benchmarks, /dev/stdout).
    public convenience init(path: String, format: BatchFormat) throws {
        try self.init(path: path, format: format, mode: .overwrite, manifest: nil, inputs: [])
    }

    public init(path: String, format: BatchFormat, mode: Mode, manifest: RunManifest?, inputs: Set<FileIdentity>) throws {
        self.path = path
        self.format = format
        var st = stat()
        let exists = RawPath.withCString(path) { stat($0, &st) } == 0
        if exists && (st.st_mode & S_IFMT) != S_IFREG {
            if inputs.contains(FileIdentity(st)) { throw BatchOutputError.isInput(path: path) }
            if case .resume = mode {
                throw BatchOutputError.cannotResume(path: path, reason: "\(ImageDecoder.nonRegularKind(st.st_mode) ?? "not a regular file"), written as a stream")
            }
            fd = RawPath.withCString(path) { open($0, O_WRONLY | O_CLOEXEC) }
            guard fd >= 0 else { throw BatchOutputError.io(path: path, action: "open for writing", reason: Self.reason()) }
            if format == .csv { try writeLine(Array("file,caption,score,error".utf8)) }
            return
        }
        guard let manifest else {
            // No manifest (benchmarks): a fresh file of the caller's own.
            fd = RawPath.withCString(path) { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644) }
            guard fd >= 0 else { throw BatchOutputError.io(path: path, action: "open for writing", reason: Self.reason()) }
            if format == .csv { try writeLine(Array("file,caption,score,error".utf8)) }
            return
        }
        let directory = Self.directoryLock(for: path)
        defer { if directory >= 0 { close(directory) } }   // closing releases the setup lock
        do {
            try setUp(exists: exists, status: st, mode: mode, manifest: manifest, inputs: inputs)
        } catch {
            if fd >= 0 { close(fd); fd = -1 }
            throw error
        }
    }

    private func setUp(exists: Bool, status st: stat, mode: Mode, manifest new: RunManifest, inputs: Set<FileIdentity>) throws {
        let metaPath = Self.metaPath(for: path)
        let metaData = try? ImageDecoder.readFile(metaPath)
        let stored = metaData.flatMap(RunManifest.parse)
        if !exists {
            // A manifest without its output (the output was deleted, or a run died between the two): Glimpse's own.
            if metaData != nil && stored == nil {
                throw BatchOutputError.notGlimpseOutput(path: metaPath, reason: "not a glimpse manifest")
            }
            try writeManifest(new)
            fd = RawPath.withCString(path) { open($0, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644) }
            guard fd >= 0 else { throw BatchOutputError.io(path: path, action: "create the output", reason: Self.reason()) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { throw BatchOutputError.inUse(path: path, holder: "pid unknown") }
            if format == .csv { try writeLine(Array("file,caption,score,error".utf8)) }
            manifest = new
            return
        }
        if inputs.contains(FileIdentity(st)) { throw BatchOutputError.isInput(path: path) }
        guard let stored else {
            throw BatchOutputError.notGlimpseOutput(path: path, reason: metaData == nil
                ? "no \((metaPath as NSString).lastPathComponent) next to it" : "\((metaPath as NSString).lastPathComponent) is not a glimpse manifest")
        }
        fd = RawPath.withCString(path) { open($0, O_RDWR | O_APPEND | O_CLOEXEC) }
        guard fd >= 0 else { throw BatchOutputError.io(path: path, action: "open for writing", reason: Self.reason()) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            throw BatchOutputError.inUse(path: path, holder: "pid \(stored.pid), started \(stored.started)")
        }
        let data = try ImageDecoder.readFile(path)
        var index = format == .jsonl ? ResumeIndex.jsonl(data) : ResumeIndex.csv(data)
        switch mode {
        case .create:
            throw BatchOutputError.exists(path: path, records: index.entries.count)
        case .overwrite:
            // Output first, manifest second: a kill in between leaves an empty output under the old manifest.
            guard ftruncate(fd, 0) == 0 else { throw BatchOutputError.io(path: path, action: "truncate", reason: Self.reason()) }
            try writeManifest(new)
            if format == .csv { try writeLine(Array("file,caption,score,error".utf8)) }
        case .resume(let retryErrors):
            let differences = stored.mismatches(resumingWith: new)
            guard differences.isEmpty else { throw BatchOutputError.mismatch(path: path, differences: differences) }
            var merged = stored
            merged.pid = new.pid
            merged.started = new.started
            for root in new.roots where !merged.roots.contains(where: { RawPath.key($0) == RawPath.key(root) }) { merged.roots.append(root) }
            if retryErrors && index.entries.contains(where: \.isError) {
                try rewrite(data, keeping: index)
                retried = index.entries.filter(\.isError).count
                index.entries.removeAll(where: \.isError)
            } else if index.validLength < data.count {
                // Repair: drop the incomplete last line left by a killed run.
                guard ftruncate(fd, off_t(index.validLength)) == 0 else {
                    throw BatchOutputError.io(path: path, action: "repair the incomplete last line", reason: Self.reason())
                }
            }
            try writeManifest(merged)
            completed = Set(index.entries.map { merged.relativeKey($0.file) })
            if format == .csv && index.header == nil { try writeLine(Array("file,caption,score,error".utf8)) }
            self.manifest = merged
            return
        }
        self.manifest = new
    }

    /// Replaces the output by its records minus the errors (and any torn last line), atomically: a new
    /// file, locked before it is renamed over the old one, which setup's directory lock makes safe.
    private func rewrite(_ data: Data, keeping index: ResumeIndex) throws {
        var kept = Data()
        if let header = index.header { kept += data[header] }
        for entry in index.entries where !entry.isError { kept += data[entry.range] }
        let (temp, t) = Self.createTemporary(path)
        guard t >= 0 else { throw BatchOutputError.io(path: temp, action: "create", reason: Self.reason()) }
        var ok = flock(t, LOCK_EX | LOCK_NB) == 0
        if ok { ok = Self.writeAll(t, [UInt8](kept)) && fsync(t) == 0 }
        if ok { ok = RawPath.withCString(temp, { a in RawPath.withCString(path, { b in rename(a, b) }) }) == 0 }
        guard ok else {
            let why = Self.reason()
            close(t)
            _ = RawPath.withCString(temp) { unlink($0) }
            throw BatchOutputError.io(path: path, action: "rewrite without its error records", reason: why)
        }
        close(fd)
        fd = t
    }

    /// The manifest, written to a temporary file and renamed into place.
    private func writeManifest(_ m: RunManifest) throws {
        let metaPath = Self.metaPath(for: path)
        let (temp, t) = Self.createTemporary(metaPath)
        guard t >= 0 else { throw BatchOutputError.io(path: metaPath, action: "write", reason: Self.reason()) }
        let ok = Self.writeAll(t, Array((m.json + "\n").utf8)) && fsync(t) == 0
        close(t)
        guard ok, RawPath.withCString(temp, { a in RawPath.withCString(metaPath, { b in rename(a, b) }) }) == 0 else {
            let why = Self.reason()
            _ = RawPath.withCString(temp) { unlink($0) }
            throw BatchOutputError.io(path: metaPath, action: "write", reason: why)
        }
    }

    /// An exclusive flock on the directory that holds `path` (blocking: setup takes milliseconds), or -1.
    static func directoryLock(for path: String) -> Int32 {
        let dir = (path as NSString).deletingLastPathComponent
        let d = RawPath.withCString(dir.isEmpty ? "." : dir) { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if d >= 0 { while flock(d, LOCK_EX) != 0 && errno == EINTR {} }
        return d
    }

    /// A new file `base.tmp-PID-N` (O_EXCL: an existing file of that name is someone else's and is never
    /// opened), read-write, appending; the descriptor is -1 with errno set on failure.
    static func createTemporary(_ base: String) -> (String, Int32) {
        for attempt in 0..<100 {
            let temp = base + ".tmp-\(getpid())-\(attempt)"
            let t = RawPath.withCString(temp) { open($0, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644) }
            if t >= 0 || errno != EEXIST { return (temp, t) }
        }
        return ("", -1)
    }

    static func reason() -> String { String(cString: strerror(errno)) }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { if errno == EINTR { continue }; return false }
            offset += n
        }
        return true
    }

    deinit { if fd >= 0 { close(fd) } }

    public func write(_ record: CaptionRecord) throws {
        switch format {
        case .jsonl: try writeLine(Array(RecordCoding.line(record).utf8))
        case .csv:
            // The file column holds the name's raw bytes (CSV has no escape for them).
            let caption = record.captions?.first
            let rest = [caption?.text ?? "", caption.map { String(format: "%.4f", $0.score) } ?? "", record.error ?? ""]
                .map(Self.csvField).joined(separator: ",")
            try writeLine(RawPath.bytes(Self.csvField(record.file)) + Array(("," + rest).utf8))
        }
    }

    /// One CSV field, quoted when needed. Works on Unicode scalars, not Characters: a quote, comma or
    /// CR followed by a combining mark is one Character ("\"\u{742}" != "\""), and "\r\n" is one too, so
    /// the Character tests missed them and wrote an unescaped quote or comma that --resume then misread
    /// (found by fuzz/ resume).
    static func csvField(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        var out = String.UnicodeScalarView()
        out.append("\"")
        for scalar in s.unicodeScalars {
            if scalar == "\"" { out.append("\"") }
            out.append(scalar)
        }
        out.append("\"")
        return String(out)
    }

    private func writeLine(_ line: [UInt8]) throws {
        guard Self.writeAll(fd, line + [UInt8(ascii: "\n")]) else {
            throw ModelError.invalidInput("\(path): write failed: \(Self.reason()) — results so far are kept; rerun with --resume")
        }
    }
}

/// `--sidecar`: the best caption written next to each image as `IMAGE.txt`, the image's whole name plus
/// `.txt` (`photo.jpg` -> `photo.jpg.txt`, so `photo.jpg` and `photo.png` never share one).
///
/// Glimpse replaces only sidecars it wrote itself. It knows which from a ledger at the walked root,
/// `DIR/.glimpse-sidecars.jsonl`: the run's manifest, then one line per sidecar written with the
/// file's device, inode, size and modification time right after writing it. A sidecar is Glimpse's
/// while those still match; a file that does not match (the user's own notes, an image, a sidecar
/// edited since) is never written over: that image fails with a message saying so. The ledger is
/// locked for the run (flock), like a batch output.
public final class SidecarOutput {
    public static let ledgerName = ".glimpse-sidecars.jsonl"

    public static func path(for image: String) -> String { image + ".txt" }

    public let ledgerPath: String
    public private(set) var manifest: RunManifest
    /// Sidecar (relative key) -> its stamp when Glimpse last wrote it.
    private var owned: [[UInt8]: String] = [:]
    /// Images (relative key) whose sidecar was written under settings that match this run's.
    private var done = Set<[UInt8]>()
    private let inputs: Set<FileIdentity>
    private let mode: BatchOutput.Mode
    private var fd: Int32 = -1

    public init(root: String, mode: BatchOutput.Mode, manifest new: RunManifest, inputs: Set<FileIdentity>) throws {
        ledgerPath = (root.hasSuffix("/") ? root : root + "/") + Self.ledgerName
        self.inputs = inputs
        self.mode = mode
        manifest = new
        fd = RawPath.withCString(ledgerPath) { open($0, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
        guard fd >= 0 else {
            throw BatchOutputError.io(path: ledgerPath, action: "create the sidecar ledger",
                                      reason: BatchOutput.reason() + " (--sidecar writes next to the images: their directories must be writable)")
        }
        do { try setUp(new) } catch { close(fd); fd = -1; throw error }
    }

    private func setUp(_ new: RunManifest) throws {
        let locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        let data = try ImageDecoder.readFile(ledgerPath)
        var current: RunManifest?
        var entries = 0
        let sidecarPrefix = Array("{\"sidecar\":".utf8), stampKey = Array(",\"stamp\":".utf8)
        var lineStart = 0
        let bytes = [UInt8](data)
        bytes.withUnsafeBufferPointer { buffer in
            for i in 0..<buffer.count where buffer[i] == UInt8(ascii: "\n") {
                let line = UnsafeBufferPointer(rebasing: buffer[lineStart..<i])
                lineStart = i + 1
                if line.starts(with: sidecarPrefix), let (sidecar, end) = RawPath.parseJSONString(line, from: sidecarPrefix.count),
                   line[end...].starts(with: stampKey), let (stamp, _) = RawPath.parseJSONString(line, from: end + stampKey.count),
                   let m = current {
                    owned[m.relativeKey(sidecar)] = stamp
                    done.insert(m.relativeKey(String(sidecar.dropLast(4))))
                    entries += 1
                } else if let m = RunManifest.parse(Data(line)) {
                    // Settings changed (an --overwrite run): what was captioned before must be again.
                    if let c = current, !c.mismatches(resumingWith: m).isEmpty { done.removeAll() }
                    var merged = m
                    if let c = current { for r in c.roots where !merged.roots.contains(r) { merged.roots.append(r) } }
                    current = merged
                }
            }
        }
        if !data.isEmpty && current == nil {
            throw BatchOutputError.notGlimpseOutput(path: ledgerPath, reason: "not a glimpse sidecar ledger")
        }
        guard locked else {
            throw BatchOutputError.inUse(path: ledgerPath, holder: current.map { "pid \($0.pid), started \($0.started)" } ?? "pid unknown")
        }
        var manifest = new
        if let c = current {
            switch mode {
            case .create:
                if entries > 0 { throw BatchOutputError.exists(path: ledgerPath, records: entries) }
            case .overwrite:
                done.removeAll()
            case .resume:
                let differences = c.mismatches(resumingWith: new)
                guard differences.isEmpty else { throw BatchOutputError.mismatch(path: ledgerPath, differences: differences) }
            }
            for r in c.roots.reversed() where !manifest.roots.contains(r) { manifest.roots.insert(r, at: 0) }
        }
        if case .resume = mode {} else { done.removeAll() }
        self.manifest = manifest
        try append(manifest.json)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Whether `image` already has its sidecar from a matching earlier run (resume skips it).
    public func isDone(_ image: String) -> Bool {
        let key = manifest.relativeKey(Self.path(for: image))
        return done.contains(manifest.relativeKey(image)) && owned[key] == Self.stamp(Self.path(for: image))
    }

    /// Writes the record's best caption to its sidecar (atomically: a temporary file, then link or
    /// rename), never over a file Glimpse did not write.
    public func write(_ record: CaptionRecord) throws {
        guard let caption = record.captions?.first?.text else { return }
        let target = Self.path(for: record.file)
        let key = manifest.relativeKey(target)
        var st = stat()
        let exists = RawPath.withCString(target) { lstat($0, &st) } == 0
        if exists {
            if inputs.contains(FileIdentity(st)) {
                throw BatchOutputError.sidecarTaken(path: target, reason: "the name is one of the images being captioned")
            }
            guard let stamp = owned[key], stamp == Self.stamp(target) else {
                throw BatchOutputError.sidecarTaken(path: target, reason: "the name is taken by a file glimpse did not write (or that changed since)")
            }
        }
        let dir = (target as NSString).deletingLastPathComponent
        let (temp, t) = BatchOutput.createTemporary((dir.isEmpty ? "" : dir + "/") + ".glimpse-sidecar")
        guard t >= 0 else { throw BatchOutputError.io(path: target, action: "write the sidecar", reason: BatchOutput.reason()) }
        let wrote = BatchOutput.writeAll(t, Array((caption + "\n").utf8))
        let why = BatchOutput.reason()
        close(t)
        var placed = false
        if wrote {
            placed = RawPath.withCString(temp) { a in RawPath.withCString(target) { b in
                // A new sidecar is linked into place, which fails if a file of that name appeared meanwhile.
                exists ? rename(a, b) == 0 : link(a, b) == 0
            } }
        }
        let placeWhy = BatchOutput.reason()
        _ = RawPath.withCString(temp) { unlink($0) }
        guard wrote, placed else {
            throw BatchOutputError.io(path: target, action: "write the sidecar", reason: wrote ? placeWhy : why)
        }
        let stamp = Self.stamp(target) ?? ""
        owned[key] = stamp
        try append("{\"sidecar\":" + RawPath.jsonQuoted(target) + ",\"stamp\":" + JSONText.quoted(stamp) + "}")
    }

    /// device:inode:size:mtime of `path` (not following a symlink), or nil when it does not exist.
    static func stamp(_ path: String) -> String? {
        var st = stat()
        guard RawPath.withCString(path, { lstat($0, &st) }) == 0 else { return nil }
        return "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    private func append(_ line: String) throws {
        guard BatchOutput.writeAll(fd, RawPath.bytes(line) + [UInt8(ascii: "\n")]) else {
            throw BatchOutputError.io(path: ledgerPath, action: "write the sidecar ledger", reason: BatchOutput.reason())
        }
    }
}
