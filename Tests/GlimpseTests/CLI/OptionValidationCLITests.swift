import Foundation
import XCTest

/// Numeric options at their extremes, invalid combinations, and inputs that are not files, through
/// the CLI as a user types them: a clear message and a non-zero exit, never a trap (exit 132/134).
final class OptionValidationCLITests: XCTestCase {
    private var dir: URL!
    private var image: String!

    override func setUpWithError() throws {
        _ = try GlimpseCLI.executable()
        dir = try GlimpseCLI.temporaryDirectory()
        image = dir.appendingPathComponent("image.png").path
        try Data(TestPNG.pattern(seed: 2)).write(to: URL(fileURLWithPath: image))
    }

    override func tearDownWithError() throws { try FileManager.default.removeItem(at: dir) }

    private func caption(_ arguments: [String]) throws -> GlimpseCLI.Output {
        try GlimpseCLI.run(["caption", "--model", try GlimpseCLI.fixtureModel().path] + arguments, scratch: dir)
    }

    /// Refused before any image: status neither 0 nor a signal, stderr says why, nothing on stdout.
    private func expectRefused(_ out: GlimpseCLI.Output, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(out.signaled, "killed by signal \(out.status): \(out.stderr)", file: file, line: line)
        XCTAssertNotEqual(out.status, 0, file: file, line: line)
        XCTAssertFalse([132, 133, 134, 139].contains(out.status), "trapped: \(out.stderr)", file: file, line: line)
        for f in fragments { XCTAssertTrue(out.stderr.contains(f), "stderr lacks \"\(f)\": \(out.stderr)", file: file, line: line) }
        XCTAssertEqual(out.stdout, "", file: file, line: line)
    }

    func testExtremeNumbersAreRefusedWithTheirName() throws {
        let max = "\(Int.max)"
        expectRefused(try caption([image, "--max-tokens", max]), ["max_new_tokens", "32768"])
        expectRefused(try caption([image, "--beams", max]), ["num_beams", "1024"])
        expectRefused(try caption([image, "--n-best", "1000000"]), ["num_return_sequences"])
        expectRefused(try caption([image, "--beams", "-3"]), ["num_beams", "-3"])
        expectRefused(try caption([image, "--no-repeat-ngram", max]), ["no_repeat_ngram_size"])
        expectRefused(try caption([image, "--max-pixels", "-1"]), ["--max-pixels"])
        let batch = try GlimpseCLI.run(["batch", dir.path, "--model", try GlimpseCLI.fixtureModel().path, "--quiet",
                                        "--out", dir.appendingPathComponent("o.jsonl").path, "--encoder-batch", max], scratch: dir)
        expectRefused(batch, ["--encoder-batch", "256"])
    }

    func testHugeShardCountsDoNotOverflow() throws {
        let out = dir.appendingPathComponent("shard.jsonl")
        let run = try GlimpseCLI.run(["batch", dir.path, "--model", try GlimpseCLI.fixtureModel().path, "--quiet", "--out", out.path,
                                      "--shard", "9223372036854775806/9223372036854775807"], scratch: dir)
        XCTAssertFalse(run.signaled, run.stderr)
        XCTAssertEqual(run.status, 0, run.stderr)
        // One image in the listing: the last of 2^63 - 1 shards holds it.
        XCTAssertEqual(try BatchRecords(out).files.count, 1, run.stderr)
    }

    /// transformers raises for these; Glimpse used to print 2 captions for --n-best 3, or an empty one.
    func testInvalidGenerationCombinationsAreErrors() throws {
        expectRefused(try caption([image, "--beams", "2", "--n-best", "3"]), ["num_return_sequences (3)", "num_beams (2)"])
        expectRefused(try caption([image, "--length-penalty", "nan"]), ["length_penalty", "finite"])
        expectRefused(try caption([image, "--repetition-penalty", "inf"]), ["repetition_penalty"])
        // --n-best alone still widens the beam to it.
        let widened = try caption([image, "--n-best", "3", "--json"])
        XCTAssertEqual(widened.status, 0, widened.stderr)
        let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(widened.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((record["captions"] as? [Any])?.count, 3)
    }

    /// Negative numbers as separate arguments, as users type them.
    func testNegativeNumbersCanBeSpaceSeparated() throws {
        let spaced = try caption([image, "--length-penalty", "-0.5", "--beams", "3"])
        XCTAssertEqual(spaced.status, 0, spaced.stderr)
        let joined = try caption([image, "--length-penalty=-0.5", "--beams", "3"])
        XCTAssertEqual(spaced.stdout, joined.stdout, "the same value either way")
        XCTAssertNotEqual(spaced.stdout, "\n")
        // transformers returns only -1e9 placeholders for this one (no hypothesis finished): an error
        // for the image, not an empty caption with exit 0.
        let none = try caption([image, "--length-penalty", "-10", "--beams", "3", "--json"])
        XCTAssertEqual(none.status, 1, none.stderr)
        XCTAssertTrue(none.stderr.contains("length_penalty -10"), none.stderr)
        XCTAssertFalse(none.stdout.contains("captions"), none.stdout)
        let overlay = try GlimpseCLI.run(["overlay", image, "--model", try GlimpseCLI.fixtureModel().path,
                                          "--out", dir.appendingPathComponent("maps").path, "--layer", "-1", "--no-detections"], scratch: dir)
        XCTAssertEqual(overlay.status, 0, overlay.stderr)
        let lastLayer = try GlimpseCLI.run(["overlay", image, "--model", try GlimpseCLI.fixtureModel().path,
                                            "--out", dir.appendingPathComponent("maps2").path, "--no-detections"], scratch: dir)
        XCTAssertEqual(overlay.stdout.split(separator: "\n").first, lastLayer.stdout.split(separator: "\n").first)
    }

    func testDirectoriesAndFIFOsGetTheRightMessage() throws {
        let photos = dir.appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        let out = try caption([photos.path])
        XCTAssertEqual(out.status, 1, out.stderr)
        XCTAssertTrue(out.stderr.contains("is a directory") && out.stderr.contains("glimpse batch \(photos.path)"), out.stderr)
        XCTAssertFalse(out.stderr.contains("NSCocoaErrorDomain"), out.stderr)
        let fifo = dir.appendingPathComponent("pipe.jpg")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let piped = try caption([fifo.path])
        XCTAssertEqual(piped.status, 1, piped.stderr)
        XCTAssertTrue(piped.stderr.contains("FIFO"), piped.stderr)
    }

    /// The shipped model loads without a note about its ViT pooler.
    func testShippedModelPrintsNoUnusedTensorNote() throws {
        let root = DefaultModelTests.root
        let out = try GlimpseCLI.run(["caption", "--model", root.appendingPathComponent("models/default").path,
                                      root.appendingPathComponent("samples/two-shapes-left-of.png").path], scratch: dir)
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertFalse(out.stderr.contains("not used"), out.stderr)
        XCTAssertEqual(out.stderr, "")
    }

    /// A NaN in heads.safetensors: `caption --detect` writes an error record (exit 1), never traps;
    /// `--check-weights` names the file at load.
    func testNaNHeadsThroughTheCLI() throws {
        let root = DefaultModelTests.root.appendingPathComponent("models/default")
        let model = dir.appendingPathComponent("nan-heads")
        try FileManager.default.copyItem(at: root, to: model)
        let url = model.appendingPathComponent("heads.safetensors")
        var data = try Data(contentsOf: url)
        let length = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: data[8..<(8 + length)]) as? [String: Any])
        let offsets = try XCTUnwrap((header["det.fc2.bias"] as? [String: Any])?["data_offsets"] as? [Int])
        data.replaceSubrange((8 + length + offsets[0])..<(8 + length + offsets[0] + 4), with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Array($0) })
        try data.write(to: url)
        let sample = DefaultModelTests.root.appendingPathComponent("samples/two-shapes-left-of.png").path
        let run = try GlimpseCLI.run(["caption", "--detect", "--json", "--model", model.path, sample], scratch: dir)
        XCTAssertFalse(run.signaled, run.stderr)
        XCTAssertEqual(run.status, 1, run.stderr)
        let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        XCTAssertTrue((record["error"] as? String)?.contains("heads.safetensors") == true, run.stdout)
        let checked = try GlimpseCLI.run(["caption", "--detect", "--check-weights", "--model", model.path, sample], scratch: dir)
        XCTAssertEqual(checked.status, 2, checked.stderr)
        XCTAssertTrue(checked.stderr.contains("heads.safetensors") && checked.stderr.contains("det.fc2.bias"), checked.stderr)
    }
}
