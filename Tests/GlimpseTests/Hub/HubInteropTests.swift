import Foundation
import XCTest
@testable import Glimpse

/// Cache interop with huggingface_hub itself (the tools venv, `.venv/bin/python`, where it exists; CI has
/// no venv and skips): huggingface_hub and transformers read what Glimpse downloaded, and Glimpse reads,
/// offline, what huggingface_hub downloaded from the same fake Hub.
final class HubInteropTests: XCTestCase {
    private var cleanup: [() -> Void] = []
    override func tearDown() {
        cleanup.reversed().forEach { $0() }
        cleanup = []
    }

    private func venvPython() throws -> URL {
        let python = FakeHub.repositoryRoot.appendingPathComponent(".venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw XCTSkip("no tools venv (.venv/bin/python): huggingface_hub interop not checked")
        }
        let probe = try runPython(python, "import huggingface_hub, transformers", environment: [:])
        guard probe.status == 0 else { throw XCTSkip("huggingface_hub/transformers not importable in .venv: \(probe.stderr)") }
        return python
    }

    private func runPython(_ python: URL, _ code: String, arguments: [String] = [], environment: [String: String]) throws -> GlimpseCLI.Output {
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let process = Process()
        process.executableURL = python
        process.arguments = ["-c", code] + arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HF_") && $0.key != "TRANSFORMERS_OFFLINE" }
        env.merge(environment) { $1 }
        env["HF_HUB_DISABLE_TELEMETRY"] = "1"
        process.environment = env
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        process.waitUntilExit()
        return GlimpseCLI.collect(process, out, err)
    }

    private func scratch() throws -> URL {
        let dir = try GlimpseCLI.temporaryDirectory()
        cleanup.append { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testHuggingFaceHubAndTransformersReadGlimpsesDownload() throws {
        let python = try venvPython()
        let repo = try FakeHub.repoDirectory("vit_gpt2_a")
        cleanup.append { try? FileManager.default.removeItem(at: repo) }
        let hub = try FakeHub(repos: ["glimpse/vit-a": repo])
        cleanup.append { hub.stop() }
        let cache = try scratch()
        let pulled = try HubClient(endpoint: hub.hub, cache: HubCache(root: cache), token: nil).pull(HubModelID(parsing: "glimpse/vit-a"))
        hub.stop()

        let script = """
        import json, sys
        from huggingface_hub import scan_cache_dir, hf_hub_download
        from transformers import VisionEncoderDecoderModel
        cache = sys.argv[1]
        info = scan_cache_dir(cache)
        repos = [{"id": r.repo_id, "type": r.repo_type, "refs": sorted(r.refs), "nb_files": r.nb_files,
                  "revisions": [{"commit": v.commit_hash, "refs": sorted(v.refs), "files": sorted(f.file_name for f in v.files),
                                 "blobs": sorted(f.blob_path.name for f in v.files)} for v in r.revisions]} for r in info.repos]
        path = hf_hub_download("glimpse/vit-a", "config.json", cache_dir=cache, local_files_only=True)
        model = VisionEncoderDecoderModel.from_pretrained("glimpse/vit-a", cache_dir=cache, local_files_only=True)
        print(json.dumps({"warnings": [str(w) for w in info.warnings], "repos": repos, "config_path": path,
                          "decoder_layers": model.config.decoder.n_layer}))
        """
        let out = try runPython(python, script, arguments: [cache.path], environment: ["HF_HUB_OFFLINE": "1"])
        XCTAssertEqual(out.status, 0, out.stderr)
        let result = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any], out.stdout)
        XCTAssertEqual(result["warnings"] as? [String], [], "scan_cache_dir finds nothing wrong")
        let repos = try XCTUnwrap(result["repos"] as? [[String: Any]])
        XCTAssertEqual(repos.count, 1)
        XCTAssertEqual(repos[0]["id"] as? String, "glimpse/vit-a")
        XCTAssertEqual(repos[0]["type"] as? String, "model")
        XCTAssertEqual(repos[0]["refs"] as? [String], ["main"])
        let revision = try XCTUnwrap((repos[0]["revisions"] as? [[String: Any]])?.first)
        XCTAssertEqual(revision["commit"] as? String, pulled.commit)
        XCTAssertEqual(revision["files"] as? [String], pulled.files.sorted())
        XCTAssertEqual(result["config_path"] as? String, pulled.snapshot.appendingPathComponent("config.json").path)
        XCTAssertEqual(result["decoder_layers"] as? Int, 2)
    }

    func testGlimpseCaptionsOfflineFromACacheHuggingFaceHubWrote() throws {
        let python = try venvPython()
        _ = try GlimpseCLI.executable()
        let repo = try FakeHub.repoDirectory("vit_gpt2_c")
        cleanup.append { try? FileManager.default.removeItem(at: repo) }
        let hub = try FakeHub(repos: ["glimpse/vit-c": repo])
        cleanup.append { hub.stop() }
        let cache = try scratch()
        let script = """
        import sys
        from huggingface_hub import snapshot_download
        print(snapshot_download("glimpse/vit-c", cache_dir=sys.argv[1]))
        """
        let download = try runPython(python, script, arguments: [cache.path], environment: ["HF_ENDPOINT": hub.hub.absoluteString])
        XCTAssertEqual(download.status, 0, download.stderr)
        XCTAssertTrue(download.stdout.contains("models--glimpse--vit-c/snapshots/"), download.stdout)
        XCTAssertTrue(hub.requests().contains { $0["server"] as? String == "cdn" }, "huggingface_hub fetched the LFS files from the fake CDN")
        hub.stop()

        let image = try GlimpseCLI.fixtureImage("shapes_40x30.png").path
        let direct = try GlimpseCLI.run(["caption", image, "--json", "--model", GlimpseCLI.fixtureModel("vit_gpt2_c").path])
        let cached = try GlimpseCLI.run(["caption", image, "--json", "--model", "glimpse/vit-c"],
                                        prefix: ["/usr/bin/env", "-u", "HF_ENDPOINT", "HF_HUB_OFFLINE=1", "HF_HUB_CACHE=\(cache.path)"])
        XCTAssertEqual(cached.status, 0, cached.stderr)
        func tokens(_ o: GlimpseCLI.Output) throws -> [Int]? {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((o.lines.first ?? "").utf8)) as? [String: Any])
            return (object["captions"] as? [[String: Any]])?.first?["tokens"] as? [Int]
        }
        XCTAssertNotNil(try tokens(direct))
        XCTAssertEqual(try tokens(cached), try tokens(direct))
    }
}
