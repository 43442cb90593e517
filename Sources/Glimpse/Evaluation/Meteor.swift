import Foundation

/// METEOR 1.5 the way pycocoevalcap runs it: `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm`
/// in the jar's directory, one `SCORE ||| ref ||| ... ||| hyp` line per image (each answered by a
/// statistics line), then `EVAL ||| stats ||| ...`, answered by one score per image and the corpus
/// score. The jar (with its `data/paraphrase-en.gz`) is not part of Glimpse: it ships with
/// pycocoevalcap, and `glimpse eval --meteor-jar` or `GLIMPSE_METEOR_JAR` names it.
public enum Meteor {
    public enum Failure: Error, CustomStringConvertible {
        case notRunnable(String)
        case protocolError(String)
        public var description: String {
            switch self {
            case .notRunnable(let s): return "METEOR could not start: \(s)"
            case .protocolError(let s): return "METEOR: \(s)"
            }
        }
    }

    /// `java` on PATH, or nil.
    public static func javaExecutable() -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent("java")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    /// Corpus and per-image METEOR of tokenized hypotheses against their tokenized references.
    public static func score(hypotheses: [String], references: [[String]], jar: URL, java: URL) throws -> (corpus: Double, perImage: [Double]) {
        precondition(hypotheses.count == references.count)
        guard FileManager.default.fileExists(atPath: jar.path) else { throw Failure.notRunnable("\(jar.path) does not exist") }
        let process = Process()
        process.executableURL = java
        process.arguments = ["-jar", "-Xmx2G", jar.lastPathComponent, "-", "-", "-stdio", "-l", "en", "-norm"]
        process.currentDirectoryURL = jar.deletingLastPathComponent()
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { throw Failure.notRunnable("\(java.path): \(error)") }
        defer {
            try? input.fileHandleForWriting.close()
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        var reader = LineReader(handle: output.fileHandleForReading)
        func send(_ line: String) throws {
            do { try input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8)) } catch {
                throw Failure.protocolError("the java process stopped reading (\(error))")
            }
        }
        var evalLine = "EVAL"
        for (hyp, refs) in zip(hypotheses, references) {
            let h = hyp.replacingOccurrences(of: "|||", with: "").replacingOccurrences(of: "  ", with: " ")
            try send((["SCORE"] + refs + [h]).joined(separator: " ||| "))
            guard let stats = reader.next() else { throw Failure.protocolError("no statistics line") }
            evalLine += " ||| " + stats.trimmingCharacters(in: .whitespaces)
        }
        try send(evalLine)
        var perImage: [Double] = []
        for _ in hypotheses.indices {
            guard let line = reader.next(), let v = Double(line.trimmingCharacters(in: .whitespaces)) else {
                throw Failure.protocolError("expected a score per image")
            }
            perImage.append(v)
        }
        guard let line = reader.next(), let corpus = Double(line.trimmingCharacters(in: .whitespaces)) else {
            throw Failure.protocolError("expected the corpus score")
        }
        return (corpus, perImage)
    }

    /// Lines from a pipe, blocking until each is complete.
    struct LineReader {
        let handle: FileHandle
        var buffer = Data()

        init(handle: FileHandle) { self.handle = handle }

        mutating func next() -> String? {
            while true {
                if let nl = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...nl)
                    return line
                }
                let chunk = handle.availableData
                if chunk.isEmpty { return nil }
                buffer.append(chunk)
            }
        }
    }
}
