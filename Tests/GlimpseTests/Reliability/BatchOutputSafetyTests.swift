import Foundation
import XCTest
@testable import Glimpse

/// `glimpse batch` never loses or overwrites what it did not write (issue 14, items 1-7, 12, 18, 19),
/// end to end through the built CLI (GLIMPSE_BIN).
final class BatchOutputSafetyTests: XCTestCase {
    private var scratch: ScratchDirectory!
    private var model: URL!

    override func setUpWithError() throws {
        _ = try GlimpseCLI.executable()
        scratch = try ScratchDirectory()
        model = try reliabilityModelDirectory()
    }

    override func tearDown() { scratch = nil }

    private func batch(_ dir: String, out: String?, _ extra: [String] = [], model: URL? = nil, prefix: [String] = []) throws -> GlimpseCLI.Output {
        try GlimpseCLI.run(["batch", dir, "--model", (model ?? self.model).path, "--quiet"] + (out.map { ["--out", $0] } ?? []) + extra,
                           scratch: scratch.url, prefix: prefix)
    }

    private func bytes(_ url: URL) -> Data? { FileManager.default.contents(atPath: url.path) }

    private func lineCount(_ url: URL) -> Int {
        guard let data = bytes(url) else { return -1 }
        return data.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    }

    /// The output's records by raw file bytes (lossless for any name), in order.
    private func recordedFiles(_ url: URL) throws -> [[UInt8]] {
        ResumeIndex.jsonl(try Data(contentsOf: url)).entries.map { RawPath.bytes($0.file) }
    }

    /// Runs `arguments` until `lines` records exist in `out`, then stops it (SIGSTOP) and returns it.
    /// Images for a run that `startAndPause` must catch mid-way: records come in groups of the decode
    /// batch (8), and the reliability model captions thousands of images a second, so a short run
    /// could end between the first record and the SIGSTOP.
    private static let pausedRunImages = 160

    private func startAndPause(_ arguments: [String], out: URL, lines: Int) throws -> (Process, URL, URL) {
        let (process, o, e) = try GlimpseCLI.process(arguments, scratch: scratch.url)
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && lineCount(out) < lines && Date() < deadline { usleep(200) }
        kill(process.processIdentifier, SIGSTOP)
        XCTAssertTrue(process.isRunning, "the run ended before \(lines) record(s): " + GlimpseCLI.collect(process, o, e).stderr)
        return (process, o, e)
    }

    // MARK: 1. sidecars

    func testSidecarsNeverOverwriteAFileGlimpseDidNotWriteAndNeverCollide() throws {
        let dir = try scratch.directory("photos")
        try Data(TestPNG.pattern(seed: 1)).write(to: dir.appendingPathComponent("notes.png"))
        let notes = Data("my own notes\n".utf8)
        try notes.write(to: dir.appendingPathComponent("notes.txt"))
        try Data(TestPNG.pattern(seed: 2)).write(to: dir.appendingPathComponent("photo.jpg"))   // PNG bytes, .jpg name
        try Data(TestPNG.pattern(seed: 3)).write(to: dir.appendingPathComponent("photo.png"))
        // An image whose name is another image's sidecar name, and a user's file taking one.
        try Data(TestPNG.pattern(seed: 4)).write(to: dir.appendingPathComponent("scan.png"))
        let scanImage = Data(TestPNG.pattern(seed: 5))
        try scanImage.write(to: dir.appendingPathComponent("scan.png.txt"))
        try Data(TestPNG.pattern(seed: 6)).write(to: dir.appendingPathComponent("mine.png"))
        let mine = Data("written by hand\n".utf8)
        try mine.write(to: dir.appendingPathComponent("mine.png.txt"))

        let first = try batch(dir.path, out: nil, ["--sidecar"])
        XCTAssertEqual(first.status, 1, first.stderr)
        XCTAssertEqual(bytes(dir.appendingPathComponent("notes.txt")), notes, "a user's notes.txt was overwritten")
        XCTAssertEqual(bytes(dir.appendingPathComponent("scan.png.txt")), scanImage, "an input image was overwritten")
        XCTAssertEqual(bytes(dir.appendingPathComponent("mine.png.txt")), mine, "a user's file taking a sidecar name was overwritten")
        XCTAssertTrue(first.stderr.contains("scan.png.txt: sidecar not written: the name is one of the images being captioned; the file is left as it is"), first.stderr)
        XCTAssertTrue(first.stderr.contains("mine.png.txt: sidecar not written: the name is taken by a file glimpse did not write"), first.stderr)
        XCTAssertTrue(first.stderr.contains("4 captioned, 2 failed"), first.stderr)
        // photo.jpg and photo.png each have their own sidecar, with their own caption.
        let jpgCaption = try String(contentsOf: dir.appendingPathComponent("photo.jpg.txt"), encoding: .utf8)
        let pngCaption = try String(contentsOf: dir.appendingPathComponent("photo.png.txt"), encoding: .utf8)
        XCTAssertFalse(jpgCaption.isEmpty)
        XCTAssertFalse(pngCaption.isEmpty)
        let expectedJPG = try GlimpseCLI.run(["caption", dir.appendingPathComponent("photo.jpg").path, "--model", model.path],
                                             scratch: scratch.url)
        XCTAssertEqual(jpgCaption, expectedJPG.stdout, "photo.jpg.txt holds photo.jpg's caption")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("scan.png.txt.txt").path))

        // Again without --resume: refused, nothing touched.
        let stamp = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("photo.png.txt").path)[.modificationDate] as? Date
        let again = try batch(dir.path, out: nil, ["--sidecar"])
        XCTAssertEqual(again.status, 2, again.stderr)
        XCTAssertTrue(again.stderr.contains("--resume") && again.stderr.contains("--overwrite"), again.stderr)
        // --resume skips what is done and still refuses the taken names.
        let resumed = try batch(dir.path, out: nil, ["--sidecar", "--resume"])
        XCTAssertEqual(resumed.status, 1, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("0 captioned, 2 failed") && resumed.stderr.contains("4 already done"), resumed.stderr)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("photo.png.txt").path)[.modificationDate] as? Date, stamp)
        // --overwrite replaces glimpse's own sidecars, never the others.
        let replaced = try batch(dir.path, out: nil, ["--sidecar", "--overwrite"])
        XCTAssertEqual(replaced.status, 1, replaced.stderr)
        XCTAssertTrue(replaced.stderr.contains("4 captioned, 2 failed"), replaced.stderr)
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("photo.jpg.txt"), encoding: .utf8), jpgCaption)
        XCTAssertEqual(bytes(dir.appendingPathComponent("notes.txt")), notes)
        XCTAssertEqual(bytes(dir.appendingPathComponent("mine.png.txt")), mine)
        // A sidecar edited by the user since is theirs now.
        try Data("edited\n".utf8).write(to: dir.appendingPathComponent("photo.png.txt"))
        let edited = try batch(dir.path, out: nil, ["--sidecar", "--overwrite"])
        XCTAssertEqual(bytes(dir.appendingPathComponent("photo.png.txt")), Data("edited\n".utf8))
        XCTAssertTrue(edited.stderr.contains("photo.png.txt: sidecar not written: the name is taken"), edited.stderr)
    }

    /// 19: a read-only directory says why the sidecar cannot be written.
    func testSidecarInAReadOnlyDirectoryGivesTheReason() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 2)
        let sub = try scratch.directory("photos/locked")
        try scratch.images(in: sub, count: 1, prefix: "sub")
        var prefix: [String] = []
        if getuid() == 0 {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("root without setpriv") }
            prefix = ["/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
        }
        XCTAssertEqual(chmod(sub.path, 0o555), 0)
        defer { chmod(sub.path, 0o755) }
        let partly = try batch(dir.path, out: nil, ["--sidecar"], prefix: prefix)
        XCTAssertEqual(partly.status, 1, partly.stderr)
        XCTAssertTrue(partly.stderr.contains("sub00.png.txt: cannot write the sidecar: Permission denied"), partly.stderr)
        XCTAssertTrue(partly.stderr.contains("2 captioned, 1 failed"), partly.stderr)
        // A read-only walked directory: the ledger cannot be created, and the message says why.
        let readOnly = try scratch.directory("readonly")
        try scratch.images(in: readOnly, count: 2)
        XCTAssertEqual(chmod(readOnly.path, 0o555), 0)
        defer { chmod(readOnly.path, 0o755) }
        let locked = try batch(readOnly.path, out: nil, ["--sidecar"], prefix: prefix)
        XCTAssertEqual(locked.status, 2, locked.stderr)
        XCTAssertTrue(locked.stderr.contains(readOnly.path + "/" + SidecarOutput.ledgerName + ": cannot create the sidecar ledger: Permission denied"),
                      locked.stderr)
    }

    // MARK: 2, 3. outputs that are not glimpse's

    func testAnOutputThatIsAnInputOrAForeignFileIsNeverTouched() throws {
        let dir = try scratch.directory("photos")
        let images = try scratch.images(in: dir, count: 4)
        let original = try XCTUnwrap(bytes(images[2]))
        for extra in [[], ["--resume"], ["--overwrite"]] {
            let r = try batch(dir.path, out: images[2].path, extra)
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains("one of the images being captioned"), r.stderr)
            XCTAssertEqual(bytes(images[2]), original, "\(extra): the input image was changed")
        }
        // A file that is not a glimpse output: a JPEG-like file and a text file, with and without --resume.
        let foreign = scratch.url.appendingPathComponent("notes.jsonl")
        let text = Data("{\"mine\": 1}\nno newline at the end".utf8)
        try text.write(to: foreign)
        for extra in [[], ["--resume"], ["--overwrite"], ["--format", "csv", "--resume"]] {
            let r = try batch(dir.path, out: foreign.path, extra)
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains("exists and is not a glimpse batch output (no notes.jsonl.meta.json next to it)"), r.stderr)
            XCTAssertEqual(bytes(foreign), text, "\(extra): a foreign file was changed")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: foreign.path + ".meta.json"))
    }

    func testRerunningNeedsResumeOrOverwrite() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 5)
        let out = scratch.url.appendingPathComponent("out.jsonl")
        XCTAssertEqual(try batch(dir.path, out: out.path).status, 0)
        let first = try XCTUnwrap(bytes(out))
        let firstResults = try BatchRecords(out).results
        let again = try batch(dir.path, out: out.path)
        XCTAssertEqual(again.status, 2, again.stderr)
        XCTAssertTrue(again.stderr.contains("holds 5 record(s) of an earlier run; pass --resume to continue it, or --overwrite to replace it"), again.stderr)
        XCTAssertEqual(bytes(out), first, "the earlier results were changed")
        let replaced = try batch(dir.path, out: out.path, ["--overwrite"])
        XCTAssertEqual(replaced.status, 0, replaced.stderr)
        XCTAssertEqual(try BatchRecords(out).results, firstResults)
        XCTAssertEqual(try BatchRecords(out).files.count, 5)
        // The manifest records what the run was made with.
        let meta = try XCTUnwrap(RunManifest.parse(try Data(contentsOf: URL(fileURLWithPath: out.path + ".meta.json"))))
        XCTAssertEqual(meta.format, "jsonl")
        XCTAssertEqual(meta.roots, [dir.path])
        XCTAssertEqual(meta.options["parameters.beamWidth"], "1")
        XCTAssertTrue(meta.modelRevision.hasPrefix("fnv1a64:"), meta.modelRevision)
    }

    // MARK: 4. two runs, one output

    func testASecondRunOnTheSameOutputIsRefusedNamingTheHolder() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: Self.pausedRunImages)
        let out = scratch.url.appendingPathComponent("out.jsonl")
        let (process, o, e) = try startAndPause(["batch", dir.path, "--model", model.path, "--out", out.path, "--quiet"], out: out, lines: 1)
        for extra in [[], ["--resume"], ["--overwrite"]] {
            let second = try batch(dir.path, out: out.path, extra)
            XCTAssertEqual(second.status, 2, second.stderr)
            XCTAssertTrue(second.stderr.contains("in use by another glimpse batch (pid \(process.processIdentifier),"), second.stderr)
        }
        kill(process.processIdentifier, SIGCONT)
        process.waitUntilExit()
        XCTAssertEqual(GlimpseCLI.collect(process, o, e).status, 0)
        let files = try BatchRecords(out).files
        XCTAssertEqual(files.count, Self.pausedRunImages)
        XCTAssertEqual(Set(files).count, Self.pausedRunImages, "records written twice")
    }

    // MARK: 5. resume checks what the output was made with

    func testResumeRefusesAnotherModelOrOptionsAndKnowsTheRootUnderAnotherSpelling() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 8)
        let reference = scratch.url.appendingPathComponent("reference.jsonl")
        XCTAssertEqual(try batch(dir.path, out: reference.path).status, 0)
        let expected = try BatchRecords(reference)
        let out = scratch.url.appendingPathComponent("out.jsonl")
        XCTAssertEqual(try batch(dir.path, out: out.path).status, 0)
        let full = try Data(contentsOf: out)
        let cut = full.prefix(through: full.enumerated().filter { $0.element == UInt8(ascii: "\n") }.map(\.offset)[2])
        try cut.write(to: out)
        for (extra, model, expectedText) in [(["--beams", "2"], nil, "parameters.beamWidth 1, not 2"),
                                              ([], try reliabilityModelDirectory("vit_gpt2_b"), "(revision fnv1a64:"),
                                              (["--format", "csv"], nil, "format jsonl, not csv"),
                                              (["--encoder-batch", "2"], nil, "encoder_batch 1, not 2")] {
            let r = try batch(dir.path, out: out.path, ["--resume"] + extra, model: model)
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains("cannot resume, it was made with") && r.stderr.contains(expectedText), r.stderr)
            XCTAssertEqual(bytes(out), cut, "\(extra): a refused resume changed the output")
        }
        let other = try scratch.directory("other")
        try scratch.images(in: other, count: 2)
        let elsewhere = try batch(other.path, out: out.path, ["--resume"])
        XCTAssertEqual(elsewhere.status, 2, elsewhere.stderr)
        XCTAssertTrue(elsewhere.stderr.contains("directory \(dir.path), not \(other.path)"), elsewhere.stderr)
        // The same directory spelled differently: the 3 records are recognized, nothing twice.
        let resumed = try batch(dir.path + "/.", out: out.path, ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("5 captioned, 0 failed, 0 skipped (not images), 3 already done"), resumed.stderr)
        let again = try batch(dir.path + "//", out: out.path, ["--resume"])
        XCTAssertTrue(again.stderr.contains("0 captioned, 0 failed, 0 skipped (not images), 8 already done"), again.stderr)
        let records = try BatchRecords(out)
        XCTAssertEqual(records.files.count, 8)
        XCTAssertEqual(Set(records.files.map { ($0 as NSString).lastPathComponent }), Set(expected.files.map { ($0 as NSString).lastPathComponent }))
    }

    // MARK: 6. names are bytes

    func testCanonicallyEquivalentNamesAreTwoFilesAndNonUTF8NamesAreCaptioned() throws {
        let dir = try scratch.directory("photos")
        let nfc = "caf\u{E9}.png", nfd = "cafe\u{301}.png"
        try Data(TestPNG.pattern(seed: 1)).write(to: dir.appendingPathComponent(nfc))
        try Data(TestPNG.pattern(seed: 2)).write(to: dir.appendingPathComponent(nfd))
        // "bad\xFF.png": not valid UTF-8.
        let raw = Array(dir.path.utf8) + Array("/bad".utf8) + [0xFF] + Array(".png".utf8)
        let image = TestPNG.pattern(seed: 3)
        let fd = (raw.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { open($0.baseAddress!, O_WRONLY | O_CREAT | O_EXCL, 0o644) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(write(fd, image, image.count), image.count)
        close(fd)
        defer { _ = (raw.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { unlink($0.baseAddress!) } }

        let out = scratch.url.appendingPathComponent("out.jsonl")
        let first = try batch(dir.path, out: out.path)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("3 captioned, 0 failed"), first.stderr)
        let files = try recordedFiles(out)
        XCTAssertEqual(Set(files), Set([raw, Array((dir.path + "/" + nfc).utf8), Array((dir.path + "/" + nfd).utf8)]))
        let text = try XCTUnwrap(String(data: try Data(contentsOf: out), encoding: .utf8))
        XCTAssertTrue(text.contains("/bad\\udcff.png\""), "the raw byte is written as \\udcff: \(text)")
        // Drop the NFC file's record, as a kill before it would: resume must caption it, not take the NFD one for it.
        let nfcKey = Array((dir.path + "/" + nfc).utf8)
        let data = try Data(contentsOf: out)
        let kept = ResumeIndex.jsonl(data).entries.filter { RawPath.bytes($0.file) != nfcKey }
        XCTAssertEqual(kept.count, 2)
        try Data(kept.flatMap { data[$0.range] }).write(to: out)
        let resumed = try batch(dir.path, out: out.path, ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("1 captioned, 0 failed, 0 skipped (not images), 2 already done"), resumed.stderr)
        XCTAssertEqual(Set(try recordedFiles(out)), Set(files))
        XCTAssertEqual(try recordedFiles(out).count, 3)
    }

    // MARK: 7. --retry-errors

    func testRetryErrorsCaptionsFailedFilesAgain() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 4)
        let broken = dir.appendingPathComponent("img01b.png")
        try Data(TestPNG.signature + Array(repeating: 0x41, count: 50)).write(to: broken)   // a half-copied file
        let out = scratch.url.appendingPathComponent("out.jsonl")
        XCTAssertEqual(try batch(dir.path, out: out.path).status, 1)
        XCTAssertEqual(try BatchRecords(out).errors().count, 1)
        try Data(TestPNG.pattern(seed: 9)).write(to: broken)   // the copy finished
        let plain = try batch(dir.path, out: out.path, ["--resume"])
        XCTAssertTrue(plain.stderr.contains("5 already done"), plain.stderr)
        XCTAssertEqual(try BatchRecords(out).errors().count, 1, "--resume alone keeps error records")
        let retried = try batch(dir.path, out: out.path, ["--retry-errors"])
        XCTAssertEqual(retried.status, 0, retried.stderr)
        XCTAssertTrue(retried.stderr.contains("1 error record(s) removed"), retried.stderr)
        XCTAssertTrue(retried.stderr.contains("1 captioned, 0 failed, 0 skipped (not images), 4 already done"), retried.stderr)
        let records = try BatchRecords(out)
        XCTAssertEqual(records.files.count, 5)
        XCTAssertEqual(Set(records.files).count, 5)
        XCTAssertTrue(records.errors().isEmpty)
        // The retried record equals a fresh run's.
        let fresh = scratch.url.appendingPathComponent("fresh.jsonl")
        XCTAssertEqual(try batch(dir.path, out: fresh.path).status, 0)
        XCTAssertEqual(records.results[broken.path], try BatchRecords(fresh).results[broken.path])
    }

    // MARK: 12, 19. signals

    func testWeightsTruncatedMidRunStopWithAClearErrorAndResumeCompletes() throws {
        let copy = scratch.url.appendingPathComponent("model")
        try FileManager.default.copyItem(at: model, to: copy)
        let weights = copy.appendingPathComponent("model.safetensors")
        let original = try Data(contentsOf: weights)
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: Self.pausedRunImages)
        let reference = scratch.url.appendingPathComponent("reference.jsonl")
        XCTAssertEqual(try batch(dir.path, out: reference.path, model: copy).status, 0)
        let out = scratch.url.appendingPathComponent("out.jsonl")
        let (process, o, e) = try startAndPause(["batch", dir.path, "--model", copy.path, "--out", out.path, "--quiet"], out: out, lines: 2)
        XCTAssertEqual(truncate(weights.path, 8), 0)
        kill(process.processIdentifier, SIGCONT)
        process.waitUntilExit()
        let result = GlimpseCLI.collect(process, o, e)
        XCTAssertFalse(result.signaled, "killed by a signal: \(result.stderr)")
        XCTAssertEqual(result.status, 3, result.stderr)
        XCTAssertTrue(result.stderr.contains("\(weights.path) was truncated or changed") && result.stderr.contains("--resume"), result.stderr)
        let partial = try BatchRecords(out)   // every line whole
        XCTAssertGreaterThanOrEqual(partial.files.count, 2)
        XCTAssertLessThan(partial.files.count, Self.pausedRunImages)
        try original.write(to: weights)
        let resumed = try batch(dir.path, out: out.path, ["--resume"], model: copy)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try BatchRecords(out).results, try BatchRecords(reference).results)
    }

    func testInterruptSaysHowToResume() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: Self.pausedRunImages)
        let reference = scratch.url.appendingPathComponent("reference.jsonl")
        XCTAssertEqual(try batch(dir.path, out: reference.path).status, 0)
        let out = scratch.url.appendingPathComponent("out.jsonl")
        let (process, o, e) = try startAndPause(["batch", dir.path, "--model", model.path, "--out", out.path, "--quiet"], out: out, lines: 1)
        kill(process.processIdentifier, SIGINT)
        kill(process.processIdentifier, SIGCONT)
        process.waitUntilExit()
        let result = GlimpseCLI.collect(process, o, e)
        XCTAssertEqual(result.status, 130, result.stderr)
        XCTAssertTrue(result.stderr.contains("interrupted; the records written so far are kept in \(out.path): rerun the same command with --resume"), result.stderr)
        let resumed = try batch(dir.path, out: out.path, ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try BatchRecords(out).results, try BatchRecords(reference).results)
    }

    // MARK: 18, 19. files named like images

    func testFilesNamedLikeImagesThatAreNotImagesAreErrorRecords() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 2)
        try Data().write(to: dir.appendingPathComponent("empty.jpg"))
        try Data("hello".utf8).write(to: dir.appendingPathComponent("text.PNG"))
        try Data("notes".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        XCTAssertEqual(mkfifo(dir.appendingPathComponent("pipe.png").path, 0o644), 0)
        XCTAssertEqual(mkfifo(dir.appendingPathComponent("pipe").path, 0o644), 0)
        let out = scratch.url.appendingPathComponent("out.jsonl")
        let result = try batch(dir.path, out: out.path)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("2 captioned, 3 failed, 2 skipped (not images)"), result.stderr)
        let errors = try BatchRecords(out).errors()
        XCTAssertEqual(errors[dir.appendingPathComponent("empty.jpg").path], "not an image (no JPEG or PNG signature)")
        XCTAssertEqual(errors[dir.appendingPathComponent("text.PNG").path], "not an image (no JPEG or PNG signature)")
        XCTAssertEqual(errors[dir.appendingPathComponent("pipe.png").path], "cannot read file (a FIFO (named pipe), not a regular file)")
        // caption on a FIFO or a device names what it is.
        let fifo = try GlimpseCLI.run(["caption", dir.appendingPathComponent("pipe.png").path, "--model", model.path], scratch: scratch.url)
        XCTAssertNotEqual(fifo.status, 0)
        XCTAssertTrue(fifo.stderr.contains("a FIFO (named pipe), not a regular file"), fifo.stderr)
        let device = try GlimpseCLI.run(["caption", "/dev/null", "--model", model.path], scratch: scratch.url)
        XCTAssertTrue(device.stderr.contains("/dev/null: cannot read file (a character device, not a regular file)"), device.stderr)
    }

    // MARK: 13. memory

    /// Images waiting for the encoder (the prefetch queue and the encoder batch being filled) hold their
    /// model input, not their decode: peak RSS over 9 large images in batches of 8 is that of one image.
    func testQueuedImagesDoNotHoldTheirDecodedPixels() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/time") else { throw XCTSkip("no /usr/bin/time") }
        // Under AddressSanitizer (make test-asan) freed memory stays in ASan's quarantine, so RSS says nothing.
        if ProcessInfo.processInfo.environment["ASAN_OPTIONS"] != nil { throw XCTSkip("RSS is not meaningful under ASan") }
        let png = Data(TestPNG.encode(width: 2000, height: 1500, rgb: [UInt8](repeating: 0x70, count: 2000 * 1500 * 3)))
        func peakKiB(_ count: Int) throws -> Int {
            let dir = try scratch.directory("big\(count)")
            for i in 0..<count { try png.write(to: dir.appendingPathComponent("img\(i).png")) }
            let r = try batch(dir.path, out: scratch.url.appendingPathComponent("big\(count).jsonl").path, ["--encoder-batch", "8"],
                              prefix: ["/usr/bin/time", "-f", "maxrss %M"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let line = try XCTUnwrap(r.stderr.split(separator: "\n").last { $0.hasPrefix("maxrss ") }, r.stderr)
            return try XCTUnwrap(Int(line.dropFirst(7)))
        }
        let one = try peakKiB(1), nine = try peakKiB(9)
        // Each decode is 9 MB (2000 x 1500 x 3); holding 8 of them would add over 60 MB.
        XCTAssertLessThan(nine - one, 30_000, "peak RSS \(one) KiB for 1 image, \(nine) KiB for 9")
    }
}

/// The byte <-> path mapping behind issue 14 item 6, without the CLI.
final class RawPathTests: XCTestCase {
    func testEveryNameRoundTripsThroughThePathStringJSONAndCSV() throws {
        var generator = SystemRandomNumberGenerator()
        var names: [[UInt8]] = [Array("caf\u{E9}.png".utf8), Array("cafe\u{301}.png".utf8), [0x62, 0xFF, 0x2E],
                                [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], Array("\u{10FF80}x".utf8), [0xF4, 0x90, 0x80, 0x80],
                                [0xF8, 0x88, 0x80, 0x80], [0xFF, 0xBF, 0xBF, 0xBF], [0xF7, 0xBF, 0xBF, 0xBF]]
        for _ in 0..<2000 { names.append((0..<Int.random(in: 1...12, using: &generator)).map { _ in UInt8.random(in: 1...255, using: &generator) }) }
        for name in names {
            let path = RawPath.string(name)
            XCTAssertEqual(RawPath.bytes(path), name, "\(name)")
            let line = RecordCoding.line(CaptionRecord(file: path, error: "x")) + "\n"
            XCTAssertNotNil(String(data: Data(line.utf8), encoding: .utf8), "the JSON line is valid UTF-8")
            let entries = ResumeIndex.jsonl(Data(line.utf8)).entries
            XCTAssertEqual(entries.map { RawPath.bytes($0.file) }, [name], line)
            XCTAssertEqual(entries.first?.isError, true)
            XCTAssertEqual(RecordCoding.record(from: Substring(line.dropLast())).map { RawPath.bytes($0.file) }, name, line)
            let csv = Array("file,caption,score,error\n".utf8) + RawPath.bytes(BatchOutput.csvField(path)) + Array(",,,x\n".utf8)
            XCTAssertEqual(ResumeIndex.csv(Data(csv)).entries.map { RawPath.bytes($0.file) }, [name])
        }
        // Valid UTF-8 is kept as text, so ordinary names are written as before.
        XCTAssertEqual(RawPath.jsonQuoted(RawPath.string(Array("caf\u{E9}.png".utf8))), "\"caf\u{E9}.png\"")
        XCTAssertEqual(RawPath.jsonQuoted(RawPath.string([0x62, 0xFF])), "\"b\\udcff\"")
        // NFC and NFD are different keys.
        XCTAssertNotEqual(RawPath.key("caf\u{E9}"), RawPath.key("cafe\u{301}"))
    }
}
