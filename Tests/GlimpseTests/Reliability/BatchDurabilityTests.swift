import Foundation
import XCTest
@testable import Glimpse

/// `glimpse batch` under kills, bad files and a full disk, driving the built CLI (GLIMPSE_BIN).
/// The invariant everywhere: every listed image ends up in the output exactly once, with the result an
/// uninterrupted run gives it, and every failure is a record or a message that names the cause.
final class BatchDurabilityTests: XCTestCase {
    private var scratch: ScratchDirectory!
    private var model: URL!

    override func setUpWithError() throws {
        _ = try GlimpseCLI.executable()
        scratch = try ScratchDirectory()
        model = try reliabilityModelDirectory()
    }

    override func tearDown() { scratch = nil }

    private func batch(_ dir: URL, out: URL, _ extra: [String] = [], prefix: [String] = []) throws -> GlimpseCLI.Output {
        try GlimpseCLI.run(["batch", dir.path, "--model", model.path, "--out", out.path, "--quiet"] + extra,
                           scratch: scratch.url, prefix: prefix)
    }

    private func lineCount(_ url: URL) -> Int {
        guard let data = FileManager.default.contents(atPath: url.path) else { return -1 }
        return data.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    }

    /// Reference output of an uninterrupted run over `dir`.
    private func reference(_ dir: URL, _ extra: [String] = []) throws -> BatchRecords {
        try BatchRecords(referenceFile(dir, extra))
    }

    private func referenceFile(_ dir: URL, _ extra: [String] = []) throws -> URL {
        let out = scratch.url.appendingPathComponent("reference-\(UUID().uuidString).jsonl")
        let result = try batch(dir, out: out, extra)
        XCTAssertEqual(result.status, 0, result.stderr)
        return out
    }

    private func assertSame(_ actual: BatchRecords, _ expected: BatchRecords, _ label: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.files.count, Set(actual.files).count, "\(label): a file is recorded twice", file: file, line: line)
        XCTAssertEqual(Set(actual.files), Set(expected.files), "\(label): files lost or added", file: file, line: line)
        let a = actual.results, e = expected.results
        for (f, r) in e where a[f] != r {
            XCTFail("\(label): \(f) differs:\n  got      \(a[f] ?? "nil")\n  expected \(r)", file: file, line: line)
        }
    }

    // MARK: kills

    func testSIGKILLAtRandomPointsThenResumeEqualsAnUninterruptedRun() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 30)
        let expected = try reference(dir, ["--encoder-batch", "2"])
        XCTAssertEqual(expected.files.count, 30)

        var generator = SystemRandomNumberGenerator()
        var killedMidRun = 0
        // Five trials at random points; then, until a kill has landed between two records (a fast run
        // can write its records in bursts that random points miss), trials that kill at the first new
        // record without jitter.
        var trial = 0
        while trial < 5 || (killedMidRun == 0 && trial < 15) {
            defer { trial += 1 }
            let random = trial < 5
            let out = scratch.url.appendingPathComponent("killed-\(trial).jsonl")
            // Several kills on the same output, each run resuming the previous one, then a clean finish.
            for kill in 0..<3 {
                let (process, o, e) = try GlimpseCLI.process(
                    ["batch", dir.path, "--model", model.path, "--out", out.path, "--quiet", "--resume", "--encoder-batch", "2"],
                    scratch: scratch.url)
                let before = max(0, lineCount(out))
                // A random point: after a random number of new records (0 = during start-up), plus jitter.
                let target = before + (random ? Int.random(in: 0...12, using: &generator) : 1)
                try process.run()
                let deadline = Date().addingTimeInterval(20)
                while process.isRunning && lineCount(out) < target && Date() < deadline { usleep(random ? 200 : 50) }
                if random { usleep(UInt32.random(in: 0...3000, using: &generator)) }
                if process.isRunning {
                    Glibc.kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                    let n = lineCount(out)
                    if n > before && n < 30 { killedMidRun += 1 }
                } else {
                    process.waitUntilExit()
                    let r = GlimpseCLI.collect(process, o, e)
                    XCTAssertEqual(r.status, 0, "trial \(trial) kill \(kill) finished early: \(r.stderr)")
                }
            }
            let final = try batch(dir, out: out, ["--resume", "--encoder-batch", "2"])
            XCTAssertEqual(final.status, 0, final.stderr)
            assertSame(try BatchRecords(out), expected, "trial \(trial)")
        }
        XCTAssertGreaterThan(killedMidRun, 0, "no kill landed between two records; the test did not test anything")
    }

    func testResumeRepairsALineCutByAKill() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 8)
        let referenceURL = try referenceFile(dir)
        let expected = try BatchRecords(referenceURL)
        let out = scratch.url.appendingPathComponent("cut.jsonl")
        let full = try Data(contentsOf: referenceURL)
        // Cut inside the fourth line, as a kill in the middle of write(2) would leave it.
        let lineEnds = full.enumerated().filter { $0.element == UInt8(ascii: "\n") }.map(\.offset)
        try full.prefix(lineEnds[2] + 1 + (lineEnds[3] - lineEnds[2]) / 2).write(to: out)
        try FileManager.default.copyItem(atPath: referenceURL.path + ".meta.json", toPath: out.path + ".meta.json")
        let result = try batch(dir, out: out, ["--resume"])
        XCTAssertEqual(result.status, 0, result.stderr)
        assertSame(try BatchRecords(out), expected, "after repair")
        XCTAssertTrue(result.stderr.contains("3 already done"), result.stderr)
    }

    // MARK: bad inputs

    func testCorruptFileInTheMiddleIsOneErrorRecord() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 10)
        // A PNG signature and then garbage: listed (the walk sniffs the magic bytes), fails to decode.
        try Data(TestPNG.signature + Array(repeating: 0x41, count: 100)).write(to: dir.appendingPathComponent("img04b.png"))
        let out = scratch.url.appendingPathComponent("out.jsonl")
        let result = try batch(dir, out: out)
        XCTAssertEqual(result.status, 1, "a failed image makes the exit status 1")
        let records = try BatchRecords(out)
        XCTAssertEqual(records.files.count, 11)
        let errors = records.errors()
        XCTAssertEqual(Array(errors.keys), [dir.appendingPathComponent("img04b.png").path])
        XCTAssertEqual(records.files[5], dir.appendingPathComponent("img04b.png").path, "the error keeps its place in order")
        XCTAssertTrue(result.stderr.contains("img04b.png"), result.stderr)
        // The error record is the contract's {"file", "error"} and nothing else.
        XCTAssertEqual(records.lines[5].keys.sorted(), ["error", "file"])
    }

    func testUnreadableFileIsAnErrorRecordNamingTheCause() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 6)
        let locked = dir.appendingPathComponent("img02.png")
        XCTAssertEqual(chmod(locked.path, 0), 0)
        // Root reads a mode-000 file anyway (CAP_DAC_OVERRIDE): run glimpse without that capability.
        var prefix: [String] = []
        if getuid() == 0 {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
                throw XCTSkip("running as root without setpriv: cannot make a file unreadable")
            }
            prefix = ["/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
        }
        let out = scratch.url.appendingPathComponent("out.jsonl")
        let result = try batch(dir, out: out, prefix: prefix)
        XCTAssertEqual(result.status, 1, result.stderr)
        let records = try BatchRecords(out)
        XCTAssertEqual(records.files.count, 6, "the unreadable file is recorded once, the others captioned")
        let errors = records.errors()
        XCTAssertEqual(errors.count, 1)
        let message = try XCTUnwrap(errors[locked.path], "\(errors)")
        XCTAssertTrue(message.lowercased().contains("permission denied"), message)
        // Resume does not retry or duplicate it.
        let again = try batch(dir, out: out, ["--resume"], prefix: prefix)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try BatchRecords(out).files.count, 6)
    }

    /// A FIFO named like an image is never opened for reading (that would block the walk for good): it is
    /// an error record saying what it is, and every real image is captioned.
    func testFIFOIsAnErrorRecordWithoutBlocking() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 4)
        let fifo = dir.appendingPathComponent("img01b.png")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        let out = scratch.url.appendingPathComponent("out.jsonl")
        let (process, o, e) = try GlimpseCLI.process(["batch", dir.path, "--model", model.path, "--out", out.path, "--quiet"],
                                                      scratch: scratch.url)
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return XCTFail("glimpse batch blocked on a FIFO")
        }
        let result = GlimpseCLI.collect(process, o, e)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("4 captioned, 1 failed, 0 skipped"), result.stderr)
        let records = try BatchRecords(out)
        XCTAssertEqual(records.files.count, 5)
        XCTAssertEqual(records.errors(), [fifo.path: "cannot read file (a FIFO (named pipe), not a regular file)"])
    }

    func testFileVanishingMidRunIsOneErrorRecord() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 40)
        let victim = dir.appendingPathComponent("img39.png")
        let out = scratch.url.appendingPathComponent("out.jsonl")
        // Freeze the run as soon as its output exists (the listing is done by then), delete the last file,
        // let it go on. The prefetcher runs at most ~12 images ahead of the records written, so while fewer
        // than 20 records exist the last file has not been opened yet.
        var deleted = false
        for _ in 0..<10 where !deleted {
            try? FileManager.default.removeItem(at: out)
            let (process, o, e) = try GlimpseCLI.process(
                ["batch", dir.path, "--model", model.path, "--out", out.path, "--quiet", "--encoder-batch", "1"], scratch: scratch.url)
            try process.run()
            while process.isRunning && !FileManager.default.fileExists(atPath: out.path) { usleep(100) }
            Glibc.kill(process.processIdentifier, SIGSTOP)
            if process.isRunning && lineCount(out) < 20 {
                try FileManager.default.removeItem(at: victim)
                deleted = true
            }
            Glibc.kill(process.processIdentifier, SIGCONT)
            process.waitUntilExit()
            let result = GlimpseCLI.collect(process, o, e)
            if deleted {
                XCTAssertEqual(result.status, 1, result.stderr)
                XCTAssertTrue(result.stderr.contains("img39.png"), result.stderr)
            }
        }
        guard deleted else { throw XCTSkip("the run always finished before the file could be removed") }
        let records = try BatchRecords(out)
        XCTAssertEqual(records.files.count, 40)
        XCTAssertEqual(Set(records.files).count, 40)
        let message = try XCTUnwrap(records.errors()[victim.path])
        XCTAssertTrue(message.lowercased().contains("no such file"), message)
        XCTAssertEqual(records.errors().count, 1)
    }

    func testDirectorySymlinkLoopsAreWalkedOnce() throws {
        let dir = try scratch.directory("photos")
        let sub = try scratch.directory("photos/a/b")
        try scratch.images(in: dir, count: 3, prefix: "top")
        try scratch.images(in: sub, count: 3, prefix: "deep")
        // b/up -> .. (a loop), photos/0alias -> a/b (a second path that sorts first), self -> .
        try FileManager.default.createSymbolicLink(atPath: sub.appendingPathComponent("up").path, withDestinationPath: "..")
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("0alias").path, withDestinationPath: "a/b")
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("self").path, withDestinationPath: ".")
        let out = scratch.url.appendingPathComponent("out.jsonl")
        let result = try batch(dir, out: out)
        XCTAssertEqual(result.status, 0, result.stderr)
        let files = try BatchRecords(out).files
        XCTAssertEqual(files.count, 6, "\(files)")
        // Images are listed under their real path, never through the links.
        XCTAssertEqual(files.filter { $0.contains("/a/b/deep") }.count, 3, "\(files)")
        XCTAssertTrue(result.stderr.contains("symlink loop"), result.stderr)
        // The same listing on every run, so --resume recognises every file.
        let again = try batch(dir, out: out, ["--resume"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("6 already done"), again.stderr)
    }

    // MARK: full disk

    func testFullDiskStopsWithAClearErrorAndResumeCompletes() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 30)
        let expected = try reference(dir)
        let out = scratch.url.appendingPathComponent("out.jsonl")
        // RLIMIT_FSIZE of 4 KiB (ulimit -f counts 1024-byte blocks here): the output fills up mid-record.
        let shell = ["/bin/sh", "-c", "ulimit -f 4 && exec \"$0\" \"$@\""]
        let full = try batch(dir, out: out, prefix: shell)
        XCTAssertFalse(full.signaled, "killed by a signal (SIGXFSZ?) instead of reporting the error: \(full.stderr)")
        XCTAssertEqual(full.status, 3, full.stderr)
        XCTAssertTrue(full.stderr.contains("File too large") && full.stderr.contains("--resume"), full.stderr)
        let partial = lineCount(out)
        XCTAssertGreaterThan(partial, 0)
        XCTAssertLessThan(partial, 30)
        // With room again, --resume cuts the torn record and finishes: nothing lost, nothing twice.
        let resumed = try batch(dir, out: out, ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        assertSame(try BatchRecords(out), expected, "after a full disk")
    }

    func testDeviceFullOutputIsAClearError() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { throw XCTSkip("no /dev/full") }
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 3)
        let result = try batch(dir, out: URL(fileURLWithPath: "/dev/full"))
        XCTAssertEqual(result.status, 3, result.stderr)
        XCTAssertTrue(result.stderr.contains("/dev/full: write failed: No space left on device"), result.stderr)
    }

    // MARK: shards and names

    func testShardsConcatenatedEqualAnUnshardedRun() throws {
        let dir = try scratch.directory("photos")
        try scratch.images(in: dir, count: 31)
        let expected = try reference(dir)
        var files: [String] = []
        var results: [String: String] = [:]
        for i in 0..<3 {
            let out = scratch.url.appendingPathComponent("shard\(i).jsonl")
            let r = try batch(dir, out: out, ["--shard", "\(i)/3"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let records = try BatchRecords(out)
            files += records.files
            results.merge(records.results) { a, _ in a }
        }
        XCTAssertEqual(files, expected.files, "shard outputs in shard order are the unsharded output's order")
        XCTAssertEqual(results, expected.results)
    }

    func testAwkwardFileNamesSurviveResumeInJSONLAndCSV() throws {
        let dir = try scratch.directory("photos")
        let names = ["quote\"d.png", "back\\slash.png", "comma,name.png", "new\nline.png", "tab\there.png", "ünïcode ✓.png", "plain.png"]
        for (i, name) in names.enumerated() { try Data(TestPNG.pattern(seed: i)).write(to: dir.appendingPathComponent(name)) }
        for format in ["jsonl", "csv"] {
            let out = scratch.url.appendingPathComponent("out.\(format)")
            let first = try batch(dir, out: out, ["--format", format])
            XCTAssertEqual(first.status, 0, first.stderr)
            let size = try FileManager.default.attributesOfItem(atPath: out.path)[.size] as? Int
            let again = try batch(dir, out: out, ["--format", format, "--resume"])
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertTrue(again.stderr.contains("\(names.count) already done"), "\(format): \(again.stderr)")
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: out.path)[.size] as? Int, size, "\(format): records added on resume")
            let data = try Data(contentsOf: out)
            let index = format == "csv" ? ResumeIndex.csv(data) : ResumeIndex.jsonl(data)
            XCTAssertEqual(index.files, Set(names.map { dir.appendingPathComponent($0).path }), format)
        }
    }
}
