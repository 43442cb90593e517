import Foundation
import XCTest

/// Runs the built `glimpse` executable: $GLIMPSE_BIN (`make test` sets it to the release build),
/// else the one next to the test bundle. Tests skip when neither exists.
enum GlimpseCLI {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
        /// True when the process ended by a signal (status is then the signal number).
        var signaled = false
        var lines: [Substring] { stdout.split(separator: "\n") }
    }

    static func executable() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["GLIMPSE_BIN"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else { throw XCTSkip("GLIMPSE_BIN \(path) is not an executable") }
            return URL(fileURLWithPath: path)
        }
        let url = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("glimpse")
        guard FileManager.default.isExecutableFile(atPath: url.path) else { throw XCTSkip("glimpse executable not built (set GLIMPSE_BIN)") }
        return url
    }

    /// A process ready to start: output goes to files in `scratch` (no pipe can fill up and block it).
    static func process(_ arguments: [String], scratch: URL, prefix: [String] = []) throws -> (Process, URL, URL) {
        let exe = try executable()
        let process = Process()
        if prefix.isEmpty {
            process.executableURL = exe
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + [exe.path] + arguments
        }
        let id = UUID().uuidString
        let out = scratch.appendingPathComponent("stdout-\(id)"), err = scratch.appendingPathComponent("stderr-\(id)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        return (process, out, err)
    }

    static func collect(_ process: Process, _ out: URL, _ err: URL) -> Output {
        Output(status: process.terminationStatus,
               stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
               stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "",
               signaled: process.terminationReason == .uncaughtSignal)
    }

    /// Runs to completion (`prefix`, e.g. a shell wrapper, is put before the executable); output is
    /// collected through files in `scratch` (a temporary directory when nil).
    @discardableResult
    static func run(_ arguments: [String], scratch: URL? = nil, prefix: [String] = []) throws -> Output {
        let dir = try scratch ?? temporaryDirectory()
        defer { if scratch == nil { try? FileManager.default.removeItem(at: dir) } }
        let (process, out, err) = try self.process(arguments, scratch: dir, prefix: prefix)
        try process.run()
        process.waitUntilExit()
        return collect(process, out, err)
    }

    /// A fixture model directory (Fixtures/models/NAME).
    static func fixtureModel(_ name: String = "vit_gpt2_a") throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/models/\(name)", withExtension: nil))
    }

    static func fixtureImage(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/models/images/\(name)", withExtension: nil))
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
