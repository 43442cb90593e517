import Foundation
import XCTest
@testable import Glimpse

/// The CLI with Hub model IDs, against the loopback fake Hub: implicit pull, offline use, `glimpse pull`,
/// `glimpse models`, and the default model's note. The environment is set per run through env(1), with
/// every Hugging Face variable of the test process removed first.
final class HubCLITests: XCTestCase {
    private var cleanup: [() -> Void] = []
    override func tearDown() {
        cleanup.reversed().forEach { $0() }
        cleanup = []
    }

    private func scratch() throws -> URL {
        let dir = try GlimpseCLI.temporaryDirectory()
        cleanup.append { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// env(1) prefix: a clean Hugging Face environment plus `settings`.
    private func env(_ settings: [String: String]) -> [String] {
        let cleared = ["HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE",
                       "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH", "GLIMPSE_MODEL"]
        return ["/usr/bin/env"] + cleared.flatMap { ["-u", $0] } + settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    private func captions(_ output: GlimpseCLI.Output) throws -> [[String: Any]] {
        try output.lines.map { line in
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return try XCTUnwrap(object["captions"] as? [[String: Any]])
        }.flatMap { $0 }
    }

    func testImplicitPullCaptionsLikeTheDirectoryThenRunsOffline() throws {
        _ = try GlimpseCLI.executable()
        let repo = try FakeHub.repoDirectory("vit_gpt2_b")
        cleanup.append { try? FileManager.default.removeItem(at: repo) }
        let hub = try FakeHub(repos: ["glimpse/vit-b": repo])
        cleanup.append { hub.stop() }
        let cache = try scratch()
        let image = try GlimpseCLI.fixtureImage("scene_64x64.png").path
        let online = ["HF_HUB_CACHE": cache.path, "HF_ENDPOINT": hub.hub.absoluteString]

        let direct = try GlimpseCLI.run(["caption", image, "--json", "--beams", "3", "--model", GlimpseCLI.fixtureModel("vit_gpt2_b").path])
        XCTAssertEqual(direct.status, 0, direct.stderr)
        let pulled = try GlimpseCLI.run(["caption", image, "--json", "--beams", "3", "--model", "glimpse/vit-b"], prefix: env(online))
        XCTAssertEqual(pulled.status, 0, pulled.stderr)
        XCTAssertTrue(pulled.stderr.contains("glimpse/vit-b is not in the cache"), pulled.stderr)
        XCTAssertTrue(pulled.stderr.contains("downloading model.safetensors"), pulled.stderr)
        let expected = try captions(direct)
        XCTAssertFalse(expected.isEmpty)
        XCTAssertEqual(try captions(pulled).map { $0["tokens"] as? [Int] }, expected.map { $0["tokens"] as? [Int] })

        // The Hub gone: offline mode, and plain mode (a cached model asks the Hub nothing), both caption.
        hub.stop()
        for settings in [online.merging(["HF_HUB_OFFLINE": "1"]) { $1 }, online] {
            let again = try GlimpseCLI.run(["caption", image, "--json", "--beams", "3", "--model", "glimpse/vit-b"], prefix: env(settings))
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertFalse(again.stderr.contains("downloading"), again.stderr)
            XCTAssertEqual(try captions(again).map { $0["tokens"] as? [Int] }, expected.map { $0["tokens"] as? [Int] })
        }

        // A model missing offline: exit 2 and how to get it.
        let missing = try GlimpseCLI.run(["caption", image, "--model", "glimpse/absent@v2"], prefix: env(online.merging(["HF_HUB_OFFLINE": "1"]) { $1 }))
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("glimpse/absent@v2 is not in the Hugging Face cache"), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("run `glimpse pull glimpse/absent@v2`"), missing.stderr)
    }

    func testPullPrintsTheSnapshotAndModelsListsIt() throws {
        _ = try GlimpseCLI.executable()
        let bin = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/pytorch/blip_tiny.bin", withExtension: nil))
        let repo = try FakeHub.repoDirectory("blip_tiny", dropping: ["model.safetensors"], adding: ["pytorch_model.bin": bin])
        cleanup.append { try? FileManager.default.removeItem(at: repo) }
        let hub = try FakeHub(repos: ["glimpse/blip": repo])
        cleanup.append { hub.stop() }
        let cache = try scratch()
        let settings = ["HF_HUB_CACHE": cache.path, "HF_ENDPOINT": hub.hub.absoluteString, "HF_TOKEN": "hf_secret_never_printed"]
        let pull = try GlimpseCLI.run(["pull", "glimpse/blip", "--revision", "v1.0"], prefix: env(settings))
        XCTAssertEqual(pull.status, 0, pull.stderr)
        let snapshot = pull.stdout.trimmingCharacters(in: .newlines)
        XCTAssertTrue(snapshot.hasPrefix(cache.appendingPathComponent("models--glimpse--blip/snapshots/").path), snapshot)
        XCTAssertTrue(FileManager.default.fileExists(atPath: snapshot + "/pytorch_model.bin"))
        XCTAssertFalse((pull.stdout + pull.stderr).contains("hf_secret_never_printed"))

        let models = try GlimpseCLI.run(["models", "--json"], prefix: env(settings))
        XCTAssertEqual(models.status, 0, models.stderr)
        let rows = try models.lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let hubRow = try XCTUnwrap(rows.first { $0["source"] as? String == "hub cache" })
        XCTAssertEqual(hubRow["name"] as? String, "glimpse/blip@v1.0")
        XCTAssertEqual(hubRow["family"] as? String, "blip")
        XCTAssertEqual(hubRow["path"] as? String, snapshot)
        let binSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: bin.path)[.size] as? NSNumber).intValue
        XCTAssertGreaterThan(hubRow["size"] as? Int ?? 0, binSize, "the snapshot's blobs: weights plus configs")
        XCTAssertEqual(rows.filter { $0["default"] as? Bool == true }.count, 1)

        // The pulled revision captions through its ID (pytorch_model.bin read natively).
        let caption = try GlimpseCLI.run(["caption", GlimpseCLI.fixtureImage("shapes_40x30.png").path, "--model", "glimpse/blip@v1.0"], prefix: env(settings))
        XCTAssertEqual(caption.status, 0, caption.stderr)
        XCTAssertFalse(caption.stdout.isEmpty)
        let wrong = try GlimpseCLI.run(["pull", "glimpse/blip@v1.0", "--revision", "main"], prefix: env(settings))
        XCTAssertEqual(wrong.status, 2)
        XCTAssertTrue(wrong.stderr.contains("contradicts"), wrong.stderr)
    }

    func testProgressIsABarOnATerminalAndLinesOtherwise() throws {
        let exe = try GlimpseCLI.executable()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { throw XCTSkip("script(1) not installed: no pseudo-terminal") }
        let repo = try FakeHub.repoDirectory("vit_gpt2_a")
        cleanup.append { try? FileManager.default.removeItem(at: repo) }
        let hub = try FakeHub(repos: ["glimpse/vit-a": repo])
        cleanup.append { hub.stop() }
        let settings = env(["HF_HUB_CACHE": try scratch().path, "HF_ENDPOINT": hub.hub.absoluteString])
        // script(1) runs the pull on a pseudo-terminal, so stderr is a terminal.
        let command = (settings + [exe.path, "pull", "glimpse/vit-a"]).map { "'\($0)'" }.joined(separator: " ")
        let dir = try scratch()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", command, "/dev/null"]
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let terminal = GlimpseCLI.collect(process, out, err)
        XCTAssertEqual(terminal.status, 0, terminal.stderr)
        XCTAssertTrue(terminal.stdout.contains("\r  model.safetensors  ["), terminal.stdout)
        XCTAssertTrue(terminal.stdout.contains("351.7 kB / 351.7 kB"), terminal.stdout)
        XCTAssertTrue(terminal.stdout.contains("B/s"), terminal.stdout)
        XCTAssertFalse(terminal.stdout.contains("glimpse: downloading"), terminal.stdout)

        let plain = try GlimpseCLI.run(["pull", "glimpse/vit-a@v1.0"], prefix: env(["HF_HUB_CACHE": try scratch().path, "HF_ENDPOINT": hub.hub.absoluteString]))
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertTrue(plain.stderr.contains("glimpse: downloading model.safetensors (351.7 kB)\nglimpse: downloaded model.safetensors\n"), plain.stderr)
        XCTAssertFalse(plain.stderr.contains("\r"))
    }

    func testDefaultModelNotesOnceWhenACaptionLeavesTheSceneWorld() throws {
        _ = try GlimpseCLI.executable()
        let root = FakeHub.repositoryRoot
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent("models/default/config.json").path) else {
            throw XCTSkip("models/default not present")
        }
        let dir = try scratch()
        // Two noise images: nothing of the scene world in them.
        var generator = SystemRandomNumberGenerator()
        var noise: [String] = []
        for i in 0..<2 {
            let pixels = (0..<(96 * 96 * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let url = dir.appendingPathComponent("noise \(i).png")
            try PNGWriter.write(pixels: pixels, width: 96, height: 96, channels: 3, to: url)
            noise.append(url.path)
        }
        let scene = root.appendingPathComponent("samples/two-shapes-left-of.png").path
        let clean = env([:])
        let onScene = try GlimpseCLI.run(["caption", scene], prefix: clean)
        XCTAssertEqual(onScene.status, 0, onScene.stderr)
        XCTAssertTrue(SceneGrammar.matches(onScene.stdout.trimmingCharacters(in: .newlines)), onScene.stdout)
        XCTAssertFalse(onScene.stderr.contains("only knows the synthetic shape world"), onScene.stderr)

        let onNoise = try GlimpseCLI.run(["caption"] + noise, prefix: clean)
        let captions = onNoise.lines.map { String($0.split(separator: "\t").last ?? "") }
        if captions.allSatisfy(SceneGrammar.matches) { throw XCTSkip("the default model captioned noise within its grammar") }
        XCTAssertEqual(onNoise.stderr.components(separatedBy: "only knows the synthetic shape world").count - 1, 1, onNoise.stderr)
        XCTAssertTrue(onNoise.stderr.contains("glimpse caption '\(noise[0])' --model Salesforce/blip-image-captioning-large") ||
                      onNoise.stderr.contains("glimpse caption '\(noise[1])' --model Salesforce/blip-image-captioning-large"), onNoise.stderr)

        // Any other model: no note, whatever it says.
        let other = try GlimpseCLI.run(["caption", noise[0], "--model", GlimpseCLI.fixtureModel("vit_gpt2_a").path], prefix: clean)
        XCTAssertFalse(other.stderr.contains("only knows the synthetic shape world"), other.stderr)
    }
}
