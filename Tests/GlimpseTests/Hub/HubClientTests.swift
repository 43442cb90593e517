import Foundation
import XCTest
@testable import Glimpse

/// `HubClient` against the loopback fake Hub: the cache layout huggingface_hub writes, resumed and
/// verified downloads, and the Hub's errors, each naming the repo (and file).
final class HubClientTests: XCTestCase {
    private var cleanup: [() -> Void] = []
    override func tearDown() {
        cleanup.reversed().forEach { $0() }
        cleanup = []
    }

    private func hub(_ repos: [String: URL], _ options: [String] = []) throws -> FakeHub {
        let hub = try FakeHub(repos: repos, options: options)
        cleanup.append { hub.stop() }
        return hub
    }

    private func scratch() throws -> URL {
        let dir = try GlimpseCLI.temporaryDirectory()
        cleanup.append { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func fixtureRepo(_ name: String = "vit_gpt2_a", dropping: Set<String> = [], adding: [String: URL] = [:]) throws -> URL {
        let dir = try FakeHub.repoDirectory(name, dropping: dropping, adding: adding)
        cleanup.append { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func client(_ hub: FakeHub, cache: URL, token: String? = nil) -> HubClient {
        let client = HubClient(endpoint: hub.hub, cache: HubCache(root: cache), token: token)
        client.retryDelay = 0.05
        return client
    }

    private let textFiles = ["config.json", "generation_config.json", "merges.txt", "preprocessor_config.json",
                             "tokenizer.json", "tokenizer_config.json", "vocab.json"]

    func testDigestsMatchKnownValues() {
        var sha = Digest(.sha256)
        sha.update(Array("abc".utf8))
        XCTAssertEqual(sha.finalize(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // `printf 'hello\n' | git hash-object --stdin`
        var blob = Digest.gitBlob(size: 6)
        blob.update(Array("hello\n".utf8))
        XCTAssertEqual(blob.finalize(), "ce013625030ba8dba906f756967f9e9ca394464a")
        // Across block boundaries, fed in uneven pieces: sha256 of 1000 x "a".
        var long = Digest(.sha256)
        let a = [UInt8](repeating: 0x61, count: 1000)
        long.update(Array(a[0..<3])); long.update(Array(a[3..<130])); long.update(Array(a[130...]))
        XCTAssertEqual(long.finalize(), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testPullLaysOutTheCacheExactlyAsHuggingFaceHub() throws {
        let source = try fixtureRepo()
        let hub = try hub(["glimpse/vit-a": source])
        let cache = try scratch()
        let result = try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/vit-a"))

        let repo = cache.appendingPathComponent("models--glimpse--vit-a")
        let ref = try String(contentsOf: repo.appendingPathComponent("refs/main"), encoding: .utf8)
        XCTAssertEqual(ref, result.commit, "refs/main holds the commit, no newline")
        XCTAssertTrue(HubModelID.isCommitHash(ref))
        let snapshot = repo.appendingPathComponent("snapshots/\(ref)")
        XCTAssertEqual(result.snapshot.path, snapshot.path)
        // Only what Glimpse reads: no reference.json / reference.safetensors.
        let files = try FileManager.default.contentsOfDirectory(atPath: snapshot.path).sorted()
        XCTAssertEqual(files, (textFiles + ["model.safetensors"]).sorted())
        var blobs: Set<String> = []
        for file in files {
            let lfs = file.hasSuffix(".safetensors")
            let etag = try contentHash(source.appendingPathComponent(file), gitBlob: !lfs)
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: snapshot.appendingPathComponent(file).path)
            XCTAssertEqual(target, "../../blobs/\(etag)", "\(file): a relative link to the blob named by its ETag")
            XCTAssertEqual(try Data(contentsOf: repo.appendingPathComponent("blobs/\(etag)")), try Data(contentsOf: source.appendingPathComponent(file)), file)
            blobs.insert(etag)
        }
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("blobs").path)), blobs,
                       "no temporary file left in blobs/")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: repo.path).sorted(), ["blobs", "refs", "snapshots"])
        XCTAssertNotNil(HubCache(root: cache).cachedSnapshot(try HubModelID(parsing: "glimpse/vit-a")))

        // The protocol: paginated tree, HEAD with identity encoding, LFS bytes from the CDN origin.
        let log = hub.requests()
        XCTAssertEqual(log.filter { ($0["path"] as? String)?.contains("/tree/") == true }.count, 4, "12 entries, 3 a page")
        let heads = log.filter { $0["method"] as? String == "HEAD" }
        XCTAssertEqual(heads.count, files.count)
        XCTAssertTrue(heads.allSatisfy { $0["accept_encoding"] as? String == "identity" })
        let cdn = log.filter { $0["server"] as? String == "cdn" }
        XCTAssertEqual(cdn.count, 1)
        XCTAssertEqual(cdn.first?["path"] as? String, "/lfs/\(try contentHash(source.appendingPathComponent("model.safetensors"), gitBlob: false))")
        let textGets = log.filter { $0["server"] as? String == "hub" && $0["method"] as? String == "GET" && ($0["path"] as? String)?.contains("/resolve/") == true }
        XCTAssertEqual(textGets.count, textFiles.count)
        XCTAssertTrue(textGets.allSatisfy { ($0["accept_encoding"] as? String)?.contains("gzip") == true }, "text files come gzip-encoded")

        // A second pull finds everything in place and downloads nothing.
        let again = try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/vit-a"))
        XCTAssertEqual(again.downloadedBytes, 0)
        XCTAssertEqual(hub.requests().filter { $0["server"] as? String == "cdn" }.count, 1)
    }

    func testTokenGoesToTheHubButNeverToTheCDN() throws {
        let hub = try hub(["glimpse/gated": try fixtureRepo("vit_gpt2_c")], ["--gated", "glimpse/gated"])
        let cache = try scratch()
        let id = try HubModelID(parsing: "glimpse/gated")
        XCTAssertThrowsError(try client(hub, cache: cache).pull(id)) { error in
            guard case HubError.accessDenied(let repo, let file, 401, true, _)? = error as? HubError else { return XCTFail("\(error)") }
            XCTAssertEqual(repo, "glimpse/gated")
            XCTAssertEqual(file, "config.json")
            XCTAssertTrue("\(error)".contains("HF_TOKEN"))
        }
        XCTAssertThrowsError(try client(hub, cache: cache, token: "hf_wrong_secret").pull(id)) { error in
            guard case HubError.accessDenied(_, _, 403, true, _)? = error as? HubError else { return XCTFail("\(error)") }
            XCTAssertFalse("\(error)".contains("hf_wrong_secret"), "the token is never printed")
        }
        let result = try client(hub, cache: cache, token: hub.token).pull(id)
        XCTAssertGreaterThan(result.downloadedBytes, 0)
        let log = hub.requests()
        XCTAssertTrue(log.filter { $0["server"] as? String == "cdn" }.allSatisfy { $0["token"] as? Bool == false })
        XCTAssertTrue(log.filter { $0["server"] as? String == "hub" }.suffix(5).allSatisfy { $0["token"] as? Bool == true })
    }

    func testDroppedConnectionResumesWithRange() throws {
        let source = try fixtureRepo()
        let hub = try hub(["glimpse/vit-a": source], ["--drop-after", "50000"])
        let cache = try scratch()
        let result = try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/vit-a"))
        let weights = result.snapshot.appendingPathComponent("model.safetensors")
        XCTAssertEqual(try Data(contentsOf: weights), try Data(contentsOf: source.appendingPathComponent("model.safetensors")))
        let ranges = hub.requests().filter { $0["server"] as? String == "cdn" }.map { $0["range"] as? String ?? "none" }
        XCTAssertEqual(ranges, ["none", "bytes=50000-"])
    }

    func testFurtherAbsoluteRedirectsOfTheDownloadAreFollowed() throws {
        let source = try fixtureRepo()
        let hub = try hub(["glimpse/vit-a": source], ["--cdn-hop"])
        let cache = try scratch()
        let result = try client(hub, cache: cache, token: "hf_x_only_for_the_hub").pull(HubModelID(parsing: "glimpse/vit-a"))
        XCTAssertEqual(try Data(contentsOf: result.snapshot.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: source.appendingPathComponent("model.safetensors")))
        let cdn = hub.requests().filter { $0["server"] as? String == "cdn" }
        XCTAssertEqual(cdn.map { ($0["query"] as? String)?.hasSuffix("hop=1") == true }, [false, true])
        XCTAssertTrue(cdn.allSatisfy { $0["token"] as? Bool == false })
    }

    func testPartialFileOfAnEarlierRunIsResumed() throws {
        let source = try fixtureRepo()
        let hub = try hub(["glimpse/vit-a": source])
        let cache = try scratch()
        let bytes = try Data(contentsOf: source.appendingPathComponent("model.safetensors"))
        let etag = try contentHash(source.appendingPathComponent("model.safetensors"), gitBlob: false)
        let blobs = cache.appendingPathComponent("models--glimpse--vit-a/blobs")
        try FileManager.default.createDirectory(at: blobs, withIntermediateDirectories: true)
        try bytes.prefix(123_456).write(to: blobs.appendingPathComponent("\(etag).glimpse.incomplete"))
        let result = try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/vit-a"))
        XCTAssertEqual(try Data(contentsOf: result.snapshot.appendingPathComponent("model.safetensors")), bytes)
        XCTAssertEqual(hub.requests().filter { $0["server"] as? String == "cdn" }.map { $0["range"] as? String }, ["bytes=123456-"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: blobs.appendingPathComponent("\(etag).glimpse.incomplete").path))
    }

    func testCorruptPayloadIsRefusedAndNothingIsKept() throws {
        let source = try fixtureRepo()
        let hub = try hub(["glimpse/vit-a": source], ["--corrupt", "model.safetensors"])
        let cache = try scratch()
        let etag = try contentHash(source.appendingPathComponent("model.safetensors"), gitBlob: false)
        XCTAssertThrowsError(try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/vit-a"))) { error in
            guard case HubError.integrity(let repo, let file, "sha256", etag, _)? = error as? HubError else { return XCTFail("\(error)") }
            XCTAssertEqual(repo, "glimpse/vit-a")
            XCTAssertEqual(file, "model.safetensors")
        }
        let repo = cache.appendingPathComponent("models--glimpse--vit-a")
        let blobs = try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("blobs").path)
        XCTAssertFalse(blobs.contains { $0.hasPrefix(etag) }, "neither the blob nor a partial file remains: \(blobs)")
        let snapshots = try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("snapshots").path)
        for commit in snapshots {
            XCTAssertFalse(FileManager.default.fileExists(atPath: repo.appendingPathComponent("snapshots/\(commit)/model.safetensors").path))
        }
        XCTAssertNil(HubCache(root: cache).cachedSnapshot(try HubModelID(parsing: "glimpse/vit-a")))
    }

    func testNotEnoughDiskSpaceIsRefusedBeforeDownloading() throws {
        let hub = try hub(["glimpse/vit-a": try fixtureRepo()], ["--claim-size", "model.safetensors=\(Int64(1) << 60)"])
        let cache = try scratch()
        XCTAssertThrowsError(try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/vit-a"))) { error in
            guard case HubError.diskFull("glimpse/vit-a", "model.safetensors", _, Int64(1) << 60, let free?)? = error as? HubError else { return XCTFail("\(error)") }
            XCTAssertLessThan(free, Int64(1) << 60)
            XCTAssertTrue("\(error)".contains("not enough disk space"), "\(error)")
        }
        XCTAssertFalse(hub.requests().contains { $0["server"] as? String == "cdn" }, "nothing was fetched")
        let blobs = try FileManager.default.contentsOfDirectory(atPath: cache.appendingPathComponent("models--glimpse--vit-a/blobs").path)
        XCTAssertFalse(blobs.contains { $0.hasSuffix(".incomplete") }, "no temporary file: \(blobs)")
    }

    func testUnknownRepoRevisionAndNoNetworkNameTheRepo() throws {
        let hub = try hub(["glimpse/vit-a": try fixtureRepo()])
        let cache = try scratch()
        XCTAssertThrowsError(try client(hub, cache: cache).pull(HubModelID(parsing: "nobody/missing"))) { error in
            guard case HubError.repositoryNotFound("nobody/missing", 401, false)? = error as? HubError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".hasPrefix("nobody/missing: repository not found"))
        }
        XCTAssertThrowsError(try client(hub, cache: cache, token: "hf_x").pull(HubModelID(parsing: "nobody/missing"))) { error in
            guard case HubError.repositoryNotFound("nobody/missing", 404, true)? = error as? HubError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/vit-a@no-such-branch"))) { error in
            guard case HubError.revisionNotFound("glimpse/vit-a", "no-such-branch")? = error as? HubError else { return XCTFail("\(error)") }
        }
        let closed = HubClient(endpoint: URL(string: "http://127.0.0.1:9")!, cache: HubCache(root: cache), token: nil)
        XCTAssertThrowsError(try closed.pull(HubModelID(parsing: "glimpse/vit-a"))) { error in
            guard case HubError.network("glimpse/vit-a", nil, "http://127.0.0.1:9", _)? = error as? HubError else { return XCTFail("\(error)") }
        }
    }

    func testRevisionsRefsAndRenamedRepoRedirects() throws {
        let hub = try hub(["glimpse/vit-a": try fixtureRepo()], ["--alias", "old/vit=glimpse/vit-a"])
        let cache = try scratch()
        let tagged = try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/vit-a@v1.0"))
        let repo = cache.appendingPathComponent("models--glimpse--vit-a")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("refs").path), ["v1.0"])
        // A commit revision writes no ref and reuses the blobs.
        let pinned = try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/vit-a", revision: tagged.commit))
        XCTAssertEqual(pinned.downloadedBytes, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("refs").path), ["v1.0"])
        // A renamed repo: relative redirects on the Hub origin are followed; stored under the name asked for.
        let renamed = try client(hub, cache: cache).pull(HubModelID(parsing: "old/vit"))
        XCTAssertEqual(renamed.commit, tagged.commit)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache.appendingPathComponent("models--old--vit/snapshots/\(renamed.commit)/config.json").path))
    }

    func testPyTorchOnlyRepoFetchesPytorchModelBinAndSafetensorsIsPreferred() throws {
        let bin = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/pytorch/vit_gpt2_c.bin", withExtension: nil))
        let hub = try hub(["glimpse/pt": try fixtureRepo("vit_gpt2_c", dropping: ["model.safetensors", "reference.safetensors"], adding: ["pytorch_model.bin": bin]),
                           "glimpse/both": try fixtureRepo("vit_gpt2_c", adding: ["pytorch_model.bin": bin])])
        let cache = try scratch()
        let pt = try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/pt"))
        XCTAssertTrue(pt.files.contains("pytorch_model.bin"))
        XCTAssertFalse(pt.files.contains("model.safetensors"))
        let both = try client(hub, cache: cache).pull(HubModelID(parsing: "glimpse/both"))
        XCTAssertTrue(both.files.contains("model.safetensors"))
        XCTAssertFalse(both.files.contains("pytorch_model.bin"))
        XCTAssertEqual(try CaptionModel(directory: pt.snapshot).family.name, "vision-encoder-decoder")
    }

    func testModelLocatorUsesTheCacheOfflineAndExplainsAMissingModel() throws {
        let hub = try hub(["glimpse/vit-a": try fixtureRepo()])
        let cache = try scratch()
        var env = ["HF_HUB_CACHE": cache.path, "HF_ENDPOINT": hub.hub.absoluteString, "HF_HUB_OFFLINE": "1"]
        XCTAssertThrowsError(try ModelLocator(environment: env).directory(for: "glimpse/vit-a", revision: nil)) { error in
            guard case HubError.offlineNotCached("glimpse/vit-a", cache.path)? = error as? HubError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("glimpse pull glimpse/vit-a"))
        }
        XCTAssertTrue(hub.requests().isEmpty, "offline: no request at all")
        env["HF_HUB_OFFLINE"] = nil
        let pulled = try ModelLocator(environment: env).directory(for: "glimpse/vit-a", revision: nil)
        let served = hub.requests().count
        env["HF_HUB_OFFLINE"] = "1"
        XCTAssertEqual(try ModelLocator(environment: env).directory(for: "glimpse/vit-a", revision: nil), pulled)
        let offlinePull = try ModelLocator(environment: env).pull(HubModelID(parsing: "glimpse/vit-a"))
        XCTAssertEqual(offlinePull.snapshot, pulled)
        XCTAssertEqual(offlinePull.downloadedBytes, 0)
        XCTAssertEqual(offlinePull.files, (textFiles + ["model.safetensors"]).sorted())
        env["HF_HUB_OFFLINE"] = nil
        XCTAssertEqual(try ModelLocator(environment: env).directory(for: "glimpse/vit-a", revision: nil), pulled, "cached: used as is")
        XCTAssertEqual(hub.requests().count, served, "a cached model asks the Hub nothing")
        // A directory that exists wins over a Hub ID of the same spelling; --revision is refused with it.
        let locator = ModelLocator(environment: env)
        XCTAssertEqual(try locator.source(of: cache.path, revision: nil), .directory(URL(fileURLWithPath: cache.path)))
        XCTAssertThrowsError(try locator.source(of: cache.path, revision: "main"))
        XCTAssertEqual(try locator.source(of: "a/b", revision: "v2"), .hub(try HubModelID(parsing: "a/b@v2")))
        XCTAssertThrowsError(try HubModelID(parsing: "a/b@v1", revision: "v2"))
        for bad in ["a", "a/b/c", "a/../b", "-a/b", "a/b@..", "a/b@", "a--x/b"] {
            XCTAssertThrowsError(try HubModelID(parsing: bad), bad)
        }
    }

    func testDefaultCacheRootFollowsHuggingFaceHub() {
        XCTAssertEqual(HubCache.defaultRoot(environment: ["HF_HUB_CACHE": "/x/hub", "HF_HOME": "/y"]).path, "/x/hub")
        XCTAssertEqual(HubCache.defaultRoot(environment: ["HF_HOME": "/y"]).path, "/y/hub")
        XCTAssertEqual(HubCache.defaultRoot(environment: ["XDG_CACHE_HOME": "/z", "HOME": "/h"]).path, "/z/huggingface/hub")
        XCTAssertEqual(HubCache.defaultRoot(environment: ["HOME": "/h"]).path, "/h/.cache/huggingface/hub")
        XCTAssertEqual(HubCache.defaultRoot(environment: ["HF_HOME": "~/hf", "HOME": "/h"]).path, "/h/hf/hub")
        // The token: --token, else $HF_TOKEN, else the login's token file under $HF_HOME.
        XCTAssertEqual(HubClient.token(explicit: "a", environment: ["HF_TOKEN": "b"]), "a")
        XCTAssertEqual(HubClient.token(explicit: nil, environment: ["HF_TOKEN": "b"]), "b")
        XCTAssertNil(HubClient.token(explicit: nil, environment: ["HF_HOME": "/nonexistent-glimpse"]))
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-hf-home-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: home) }
        try? Data("hf_from_login\n".utf8).write(to: home.appendingPathComponent("token"))
        XCTAssertEqual(HubClient.token(explicit: nil, environment: ["HF_HOME": home.path]), "hf_from_login")
        XCTAssertTrue(HubCache.isOffline(environment: ["HF_HUB_OFFLINE": "1"]))
        XCTAssertTrue(HubCache.isOffline(environment: ["TRANSFORMERS_OFFLINE": "yes"]))
        XCTAssertFalse(HubCache.isOffline(environment: ["HF_HUB_OFFLINE": "0"]))
    }
}
