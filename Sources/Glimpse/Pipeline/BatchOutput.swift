import Foundation

public enum BatchFormat: String, Sendable, CaseIterable {
    case jsonl, csv
}

/// What an existing output already holds, for `--resume`.
public enum ResumeIndex {
    /// Files recorded in JSONL `data`, and the byte length of its complete lines: a run killed
    /// mid-write leaves at most one incomplete last line, which resume cuts off.
    private struct FileField: Decodable { let file: String }

    public static func jsonl(_ data: Data) -> (files: Set<String>, validLength: Int) {
        let decoder = JSONDecoder()
        var files = Set<String>()
        var validLength = 0
        var lineStart = data.startIndex
        for i in data.indices where data[i] == UInt8(ascii: "\n") {
            // JSONDecoder, not JSONSerialization: on Linux the latter drops a U+FEFF that starts a string
            // value, so a file named "\u{FEFF}a.png" came back as "a.png" and was captioned again on every
            // resume (found by fuzz/ resume).
            if let record = try? decoder.decode(FileField.self, from: data[lineStart..<i]) {
                files.insert(record.file)
            }
            lineStart = i + 1
            validLength = lineStart - data.startIndex
        }
        return (files, validLength)
    }

    /// Files recorded in CSV `data` (first column; header skipped), and the length of its complete lines.
    public static func csv(_ data: Data) -> (files: Set<String>, validLength: Int) {
        var files = Set<String>()
        var validLength = 0
        var field: [UInt8] = [], inQuotes = false, column = 0, row = 0
        var lineStart = data.startIndex
        for i in data.indices {
            let b = data[i]
            if inQuotes {
                if b == UInt8(ascii: "\"") { inQuotes = false } else { field.append(b) }
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                if i > lineStart && data[i - 1] == UInt8(ascii: "\"") { field.append(b) }
                inQuotes = true
            case UInt8(ascii: ","):
                if column == 0 && row > 0 { files.insert(String(decoding: field, as: UTF8.self)) }
                column += 1
                field.removeAll(keepingCapacity: true)
            case UInt8(ascii: "\n"):
                if column == 0 && row > 0 { files.insert(String(decoding: field, as: UTF8.self)) }
                row += 1; column = 0
                field.removeAll(keepingCapacity: true)
                lineStart = i + 1
                validLength = lineStart - data.startIndex
            default:
                field.append(b)
            }
        }
        return (files, validLength)
    }
}

/// Appends one record per line to the batch output and flushes each as soon as it is ready
/// (one write(2) per record), so a killed run loses nothing already written.
public final class BatchOutput {
    public let path: String
    public let format: BatchFormat
    /// Files already recorded (non-empty only when resuming).
    public private(set) var completed = Set<String>()
    private let fd: Int32

    public init(path: String, format: BatchFormat, resume: Bool) throws {
        self.path = path
        self.format = format
        let exists = FileManager.default.fileExists(atPath: path)
        if resume && exists {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ModelError.invalidInput("\(path): cannot read the output to resume")
            }
            let index = format == .jsonl ? ResumeIndex.jsonl(data) : ResumeIndex.csv(data)
            completed = index.files
            if index.validLength < data.count {
                // Repair: drop the incomplete last line left by a killed run.
                guard truncate(path, off_t(index.validLength)) == 0 else {
                    throw ModelError.invalidInput("\(path): cannot repair the incomplete last line: \(String(cString: strerror(errno)))")
                }
            }
        }
        let flags = O_WRONLY | O_CREAT | (resume ? O_APPEND : (O_TRUNC | O_APPEND))
        fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw ModelError.invalidInput("\(path): cannot open for writing: \(String(cString: strerror(errno)))") }
        if format == .csv && (!resume || !exists || (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) == 0) {
            try writeLine("file,caption,score,error")
        }
    }

    deinit { close(fd) }

    public func write(_ record: CaptionRecord) throws {
        switch format {
        case .jsonl: try writeLine(RecordCoding.line(record))
        case .csv:
            let caption = record.captions?.first
            try writeLine([record.file, caption?.text ?? "", caption.map { String(format: "%.4f", $0.score) } ?? "", record.error ?? ""]
                .map(Self.csvField).joined(separator: ","))
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

    private func writeLine(_ line: String) throws {
        var bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ModelError.invalidInput("\(path): write failed: \(String(cString: strerror(errno))) — results so far are kept; rerun with --resume")
            }
            offset += n
        }
        bytes.removeAll()
    }
}

/// `--sidecar`: the best caption written next to each image as IMAGE.txt (atomically, via rename).
public enum SidecarOutput {
    public static func path(for image: String) -> String {
        (image as NSString).deletingPathExtension + ".txt"
    }

    public static func write(_ record: CaptionRecord) throws {
        guard let caption = record.captions?.first?.text else { return }
        let target = path(for: record.file)
        let temp = target + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temp, contents: Data((caption + "\n").utf8)) else {
            throw ModelError.invalidInput("\(target): cannot write the sidecar file")
        }
        guard rename(temp, target) == 0 else {
            unlink(temp)
            throw ModelError.invalidInput("\(target): cannot write the sidecar file: \(String(cString: strerror(errno)))")
        }
    }
}
