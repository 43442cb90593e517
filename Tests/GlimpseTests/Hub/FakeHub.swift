import Foundation
import XCTest
@testable import Glimpse

/// tools/fake_hub.py started by a test on 127.0.0.1 (a Hub origin and a CDN origin), stopped by `stop()`.
/// Python because the fake needs gzip and a full HTTP/1.1 server (see the script's docstring); it imports
/// only the standard library, so CI's python3 runs it. Tests skip when python3 is absent.
final class FakeHub {
    let hub: URL
    let cdn: URL
    let log: URL
    let token = "hf_fake_token"
    private let process: Process
    private let stdin: Pipe
    private let scratch: URL

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func python() throws -> URL {
        for path in ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"] where FileManager.default.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        throw XCTSkip("python3 not found: the loopback fake Hub (tools/fake_hub.py) cannot run")
    }

    /// `repos`: repo id -> directory served as its files. `options`: extra fake_hub.py flags.
    init(repos: [String: URL], options: [String] = []) throws {
        scratch = try GlimpseCLI.temporaryDirectory()
        log = scratch.appendingPathComponent("requests.jsonl")
        process = Process()
        process.executableURL = try Self.python()
        var arguments = [Self.repositoryRoot.appendingPathComponent("tools/fake_hub.py").path, "--log", log.path, "--token", token]
        for (id, dir) in repos.sorted(by: { $0.key < $1.key }) { arguments += ["--repo", "\(id)=\(dir.path)"] }
        process.arguments = arguments + options
        stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        // One line: READY <hub> <cdn>.
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let words = String(decoding: line, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        guard words.count == 3, words[0] == "READY", let hub = URL(string: String(words[1])), let cdn = URL(string: String(words[2])) else {
            process.terminate()
            throw XCTSkip("fake Hub did not start: \(String(decoding: line, as: UTF8.self))")
        }
        self.hub = hub
        self.cdn = cdn
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: scratch)
    }

    deinit { stop() }

    /// The requests served so far, one dictionary each.
    func requests() -> [[String: Any]] {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// A directory holding fixture model `name`'s files (all of them unless `dropping`), plus `adding`.
    static func repoDirectory(_ name: String, dropping: Set<String> = [], adding: [String: URL] = [:]) throws -> URL {
        let source = try GlimpseCLI.fixtureModel(name)
        let dir = try GlimpseCLI.temporaryDirectory()
        for file in try FileManager.default.contentsOfDirectory(atPath: source.path) where !dropping.contains(file) {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: dir.appendingPathComponent(file))
        }
        for (file, url) in adding { try FileManager.default.copyItem(at: url, to: dir.appendingPathComponent(file)) }
        return dir
    }
}

/// sha256 / git blob sha1 of a file, as the Hub names blobs.
func contentHash(_ url: URL, gitBlob: Bool) throws -> String {
    let data = try Data(contentsOf: url)
    var digest = gitBlob ? Digest.gitBlob(size: data.count) : Digest(.sha256)
    digest.update(data)
    return digest.finalize()
}
