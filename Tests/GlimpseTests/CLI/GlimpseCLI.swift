import Foundation
import XCTest

/// Runs the built `glimpse` executable: $GLIMPSE_BIN (set by `make test` to the release build),
/// else the one next to the test bundle. Tests skip when neither exists.
enum GlimpseCLI {
    static var executable: URL? {
        if let path = ProcessInfo.processInfo.environment["GLIMPSE_BIN"], FileManager.default.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        let url = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("glimpse")
        return FileManager.default.isExecutableFile(atPath: url.path) ? url : nil
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
        var lines: [Substring] { stdout.split(separator: "\n") }
    }

    static func run(_ arguments: [String], in directory: URL? = nil) throws -> Output {
        guard let executable else { throw XCTSkip("glimpse executable not built (set GLIMPSE_BIN)") }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain stderr on another thread so a chatty child cannot block on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let done = DispatchSemaphore(value: 0)
        Thread { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); done.signal() }.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        done.wait()
        let errData = errBox.data
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
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
