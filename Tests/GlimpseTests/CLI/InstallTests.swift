import Foundation
import XCTest

/// Issue 14, item 20: `make install` puts the binary and the default model where the binary finds
/// them; a `glimpse` symlinked onto the PATH and started by name finds the model from anywhere, and
/// without a model the message says how to choose one.
final class InstallTests: XCTestCase {
    static let root = DefaultModelTests.root

    /// Runs `executable` with `arguments` in `directory`, with exactly `environment`.
    func run(_ executable: String, _ arguments: [String], in directory: URL, environment: [String: String]) throws -> GlimpseCLI.Output {
        let scratch = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.currentDirectoryURL = directory
        // A sanitized build's runtime options travel with the pared-down environment (its leak check
        // would otherwise turn every exit status into 1).
        var env = environment
        if let asan = ProcessInfo.processInfo.environment["ASAN_OPTIONS"] { env["ASAN_OPTIONS"] = asan }
        p.environment = env
        let out = scratch.appendingPathComponent("out"), err = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        p.waitUntilExit()
        return GlimpseCLI.collect(p, out, err)
    }

    func testInstalledGlimpseOnThePathFindsTheDefaultModel() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/make") else { throw XCTSkip("make is not installed") }
        let exe = try GlimpseCLI.executable()
        let tmp = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let prefix = tmp.appendingPathComponent("prefix")
        // -o build: install the binary under test instead of building one (the tests run inside a build)
        let make = try run("/usr/bin/make", ["-C", Self.root.path, "-o", "build", "install", "PREFIX=\(prefix.path)", "GLIMPSE=\(exe.path)"],
                           in: tmp, environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(make.status, 0, make.stdout + make.stderr)
        let model = prefix.appendingPathComponent("share/glimpse/models/default")
        for name in ["config.json", "model.safetensors", "heads.json", "heads.safetensors", "vocab.json", "merges.txt"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: model.appendingPathComponent(name).path), name)
        }
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: prefix.appendingPathComponent("bin/glimpse").path))

        // a symlink on the PATH, started by name, in a directory with no models/ and no $GLIMPSE_MODEL
        let path = tmp.appendingPathComponent("path"), elsewhere = tmp.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: path.appendingPathComponent("glimpse"),
                                                   withDestinationURL: prefix.appendingPathComponent("bin/glimpse"))
        let sample = Self.root.appendingPathComponent("samples/two-shapes-left-of.png").path
        let out = try run("/usr/bin/env", ["glimpse", "caption", sample, "--json"], in: elsewhere,
                          environment: ["PATH": "\(path.path):/usr/bin:/bin"])
        XCTAssertEqual(out.status, 0, out.stderr)
        let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(record["model"] as? String, model.resolvingSymlinksInPath().path)
        let expected = try String(contentsOf: Self.root.appendingPathComponent("samples/expected.jsonl"), encoding: .utf8)
            .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .first { ($0["file"] as? String)?.hasSuffix("two-shapes-left-of.png") == true }
        let text = (record["captions"] as? [[String: Any]])?.first?["text"] as? String
        XCTAssertEqual(text, (expected?["captions"] as? [[String: Any]])?.first?["text"] as? String)
    }

    func testWithoutAModelTheMessageSaysHowToChooseOne() throws {
        let exe = try GlimpseCLI.executable()
        let tmp = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        // a copy of the binary with no model beside it, run where there is none either
        let lone = tmp.appendingPathComponent("bin/glimpse")
        try FileManager.default.createDirectory(at: lone.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: exe.resolvingSymlinksInPath(), to: lone)
        let sample = Self.root.appendingPathComponent("samples/two-shapes-left-of.png").path
        let none = try run(lone.path, ["caption", sample], in: tmp, environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(none.status, 2)
        XCTAssertTrue(none.stderr.contains("no model given and no default model found (looked in \(tmp.path)/share/glimpse/models/default"), none.stderr)
        XCTAssertTrue(none.stderr.contains("choose a model with --model DIR or --model OWNER/NAME (a Hugging Face Hub ID), or set GLIMPSE_MODEL"), none.stderr)

        let missing = try run(lone.path, ["caption", sample, "--model", "/nonexistent-model"], in: tmp, environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("cannot load model /nonexistent-model"), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("or set GLIMPSE_MODEL"), missing.stderr)
    }
}
