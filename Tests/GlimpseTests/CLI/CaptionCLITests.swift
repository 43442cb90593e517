import Foundation
import XCTest
@testable import Glimpse

/// `glimpse caption`, `overlay`, `report` and `batch` end to end on a fixture checkpoint, against
/// transformers' outputs recorded in its reference.json.
final class CaptionCLITests: XCTestCase {
    func reference(_ model: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("reference.json"))) as? [String: Any])
    }

    func referenceCase(_ model: URL, label: String, image: String) throws -> [String: Any] {
        let cases = try XCTUnwrap(try reference(model)["cases"] as? [[String: Any]])
        return try XCTUnwrap(cases.first { $0["label"] as? String == label && $0["image"] as? String == image })
    }

    func jsonLine(_ line: Substring) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    func testCaptionTextEqualsTransformersGreedy() throws {
        let model = try GlimpseCLI.fixtureModel(), image = try GlimpseCLI.fixtureImage("shapes_40x30.png")
        let out = try GlimpseCLI.run(["caption", image.path, "--model", model.path, "--max-tokens", "16"])
        XCTAssertEqual(out.status, 0, out.stderr)
        let expected = try XCTUnwrap((try referenceCase(model, label: "greedy", image: "shapes_40x30")["text"] as? [String])?.first)
        XCTAssertEqual(out.lines, [Substring(expected)])
    }

    /// BLIP through the same CLI: greedy, beam search and the prompt convention as transformers.
    func testBLIPCaptionsWithAndWithoutPrompt() throws {
        let model = try GlimpseCLI.fixtureModel("blip_tiny")
        for image in ["shapes_40x30", "scene_64x64"] {
            let file = try GlimpseCLI.fixtureImage("\(image).png").path
            for (label, flags) in [("greedy", ["--max-tokens", "16"]), ("beams3", ["--max-tokens", "16", "--beams", "3"]),
                                   ("greedy_prompt", ["--max-tokens", "16", "--prompt", "a picture of"]),
                                   ("beams3_prompt", ["--max-tokens", "16", "--beams", "3", "--prompt", "a picture of"])] {
                let out = try GlimpseCLI.run(["caption", file, "--model", model.path] + flags)
                XCTAssertEqual(out.status, 0, out.stderr)
                let expected = try XCTUnwrap((try referenceCase(model, label: label, image: image)["text"] as? [String])?.first)
                XCTAssertEqual(out.stdout, expected + "\n", "\(image) \(label)")
            }
        }
    }

    /// Florence-2 through the CLI: --task/--text build the processor's prompt, the record carries the
    /// task and transformers' post_process_generation answer, boxes become detections ([x, y, w, h]).
    func testFlorence2TasksGiveTransformersAnswers() throws {
        let model = try GlimpseCLI.fixtureModel("florence2_tiny")
        let cases = try XCTUnwrap(try reference(model)["cases"] as? [[String: Any]])
        var checked = 0
        for c in cases {
            let image = try XCTUnwrap(c["image"] as? String), task = try XCTUnwrap(c["task"] as? String)
            let input = c["task_input"] as? String ?? "", label = try XCTUnwrap(c["label"] as? String)
            var flags = ["--task", task, "--max-tokens", "16", "--json"]
            if !input.isEmpty { flags += ["--text", input] }
            if label == "greedy" { flags += ["--beams", "1"] }
            let out = try GlimpseCLI.run(["caption", try GlimpseCLI.fixtureImage("\(image).png").path, "--model", model.path] + flags)
            XCTAssertEqual(out.status, 0, out.stderr)
            let record = try jsonLine(try XCTUnwrap(out.lines.first))
            XCTAssertEqual(record["task"] as? String, task)
            let expected = try XCTUnwrap((c["parsed"] as? [String: Any])?[task])
            let answer = try XCTUnwrap(record["answer"], "\(image) \(task) \(label): no answer")
            XCTAssertEqual(try JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys, .fragmentsAllowed]),
                           try JSONSerialization.data(withJSONObject: expected, options: [.sortedKeys, .fragmentsAllowed]),
                           "\(image) \(task) \(label)")
            let tokens = try XCTUnwrap(((record["captions"] as? [[String: Any]])?.first)?["tokens"] as? [Int])
            XCTAssertEqual(tokens, (c["sequences"] as? [[Int]])?.first, "\(image) \(task) \(label)")
            if let boxes = (expected as? [String: Any])?["bboxes"] as? [[Int]] {
                let detections = record["detections"] as? [[String: Any]] ?? []
                XCTAssertEqual(detections.compactMap { $0["box"] as? [Int] },
                               boxes.map { [$0[0], $0[1], $0[2] - $0[0], $0[3] - $0[1]] }, "\(image) \(task): detections")
            }
            checked += 1
        }
        XCTAssertEqual(checked, cases.count)
        // overlay draws the answer's regions on the image (regions.png) and on the sheet's image tile.
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let overlay = try GlimpseCLI.run(["overlay", try GlimpseCLI.fixtureImage("shapes_40x30.png").path, "--model", model.path,
                                          "--task", "<OD>", "--beams", "1", "--max-tokens", "16", "--out", dir.path])
        XCTAssertEqual(overlay.status, 0, overlay.stderr)
        XCTAssertTrue(overlay.stdout.contains("regions.png"), overlay.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("regions.png").path))
        // Refusals name the option: a task that takes no text, an unknown task, a task on a model without tasks.
        let file = try GlimpseCLI.fixtureImage("shapes_40x30.png").path
        for (flags, message, on) in [(["--task", "<OD>", "--text", "a dog"], "only content", model),
                                     (["--task", "<NOPE>"], "unknown task", model),
                                     (["--text", "a dog"], "give a task too", model),
                                     (["--task", "<CAPTION_TO_PHRASE_GROUNDING>", "--text", String(repeating: "a red circle ", count: 40)],
                                      "at most 54", model),
                                     (["--task", "<OD>"], "takes no task prompts", try GlimpseCLI.fixtureModel())] {
            let out = try GlimpseCLI.run(["caption", file, "--model", on.path] + flags)
            XCTAssertNotEqual(out.status, 0, "\(flags)")
            XCTAssertTrue(out.stderr.contains(message), "\(flags): \(out.stderr)")
        }
    }

    func testCaptionJSONFollowsTheContractAndBeamScores() throws {
        let model = try GlimpseCLI.fixtureModel(), image = try GlimpseCLI.fixtureImage("scene_64x64.png")
        let out = try GlimpseCLI.run(["caption", image.path, "--model", model.path, "--json", "--beams", "5", "--n-best", "3", "--max-tokens", "16"])
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertEqual(out.lines.count, 1)
        let record = try jsonLine(out.lines[0])
        XCTAssertEqual(record["file"] as? String, image.path)
        XCTAssertEqual(record["width"] as? Int, 64)
        XCTAssertEqual(record["height"] as? Int, 64)
        XCTAssertEqual(record["model"] as? String, model.path)
        let expected = try referenceCase(model, label: "beams5_nrs3", image: "scene_64x64")
        let captions = try XCTUnwrap(record["captions"] as? [[String: Any]])
        let sequences = try XCTUnwrap(expected["sequences"] as? [[Int]]), scores = try XCTUnwrap(expected["sequences_scores"] as? [Double])
        let texts = try XCTUnwrap(expected["text"] as? [String])
        XCTAssertEqual(captions.count, 3)
        for (i, c) in captions.enumerated() {
            let tokens = try XCTUnwrap(c["tokens"] as? [Int])
            XCTAssertEqual(tokens, Array(sequences[i].prefix(tokens.count)), "caption \(i)")
            XCTAssertEqual(try XCTUnwrap(c["score"] as? Double), scores[i], accuracy: 1e-3)
            XCTAssertEqual(c["text"] as? String, texts[i])
        }
        let timing = try XCTUnwrap(record["timing_ms"] as? [String: Double])
        XCTAssertEqual(Set(timing.keys), ["decode", "encode", "generate", "load"])
        XCTAssertNil(record["detections"], "detections appear only with --detect/--segment")
        XCTAssertTrue(out.lines[0].hasPrefix("{\"file\":"), "file comes first")
    }

    func testFailedInputsAreReportedAndTheOthersCaptioned() throws {
        let model = try GlimpseCLI.fixtureModel(), image = try GlimpseCLI.fixtureImage("shapes_40x30.png")
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("broken.png")
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]).write(to: bad)
        let missing = dir.appendingPathComponent("missing.jpg").path
        let out = try GlimpseCLI.run(["caption", bad.path, image.path, missing, "--model", model.path, "--json"])
        XCTAssertEqual(out.status, 1)
        XCTAssertEqual(out.lines.count, 3)
        let first = try jsonLine(out.lines[0]), third = try jsonLine(out.lines[2])
        XCTAssertEqual(Set(first.keys), ["file", "error"])
        XCTAssertEqual(first["file"] as? String, bad.path)
        XCTAssertEqual(Set(third.keys), ["file", "error"])
        XCTAssertNotNil(try jsonLine(out.lines[1])["captions"])
        XCTAssertTrue(out.stderr.contains(bad.path) && out.stderr.contains("truncated"), out.stderr)
        XCTAssertTrue(out.stderr.contains(missing), out.stderr)
    }

    func testDetectAndSegmentGiveBoxesAndMasksInsideTheImage() throws {
        let model = try GlimpseCLI.fixtureModel(), image = try GlimpseCLI.fixtureImage("scene_64x64.png")
        let out = try GlimpseCLI.run(["caption", image.path, "--model", model.path, "--json", "--segment"])
        XCTAssertEqual(out.status, 0, out.stderr)
        let record = try jsonLine(out.lines[0])
        let detections = try XCTUnwrap(record["detections"] as? [[String: Any]])
        XCTAssertFalse(detections.isEmpty)
        let tokens = try XCTUnwrap((record["captions"] as? [[String: Any]])?.first?["tokens"] as? [Int])
        for d in detections {
            let box = try XCTUnwrap(d["box"] as? [Int])
            XCTAssertEqual(box.count, 4)
            XCTAssertTrue(box[0] >= 0 && box[1] >= 0 && box[2] > 0 && box[3] > 0 && box[0] + box[2] <= 64 && box[1] + box[3] <= 64, "\(box)")
            let index = try XCTUnwrap(d["token_index"] as? Int)
            XCTAssertTrue(index > 0 && index < tokens.count)
            let mask = try XCTUnwrap(d["mask"] as? [String: Any])
            XCTAssertEqual(mask["size"] as? [Int], [64, 64])
            let rle = try RLE(height: 64, width: 64, compressed: try XCTUnwrap(mask["counts"] as? String))
            XCTAssertGreaterThan(rle.area, 0)
            // The mask lies inside its box.
            let bits = rle.decode()
            for y in 0..<64 { for x in 0..<64 where bits[x, y] {
                XCTAssertTrue(x >= box[0] && x < box[0] + box[2] && y >= box[1] && y < box[1] + box[3])
            } }
        }
    }

    func testOverlayWritesOnePNGPerWordAndAContactSheet() throws {
        let model = try GlimpseCLI.fixtureModel(), image = try GlimpseCLI.fixtureImage("shapes_40x30.png")
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = try GlimpseCLI.run(["overlay", image.path, "--model", model.path, "--out", dir.path, "--max-tokens", "16"])
        XCTAssertEqual(out.status, 0, out.stderr)
        let caption = String(out.lines[0])
        let words = caption.split(separator: " ").count
        let pngs = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(pngs.count, words + 1, "\(pngs) for '\(caption)'")
        XCTAssertTrue(pngs.contains("contact-sheet.png"))
        for name in pngs where name != "contact-sheet.png" {
            let decoded = try ImageDecoder.decode(contentsOf: dir.appendingPathComponent(name))
            XCTAssertEqual(decoded.image.width, 40)
            XCTAssertEqual(decoded.image.height, 30)
        }
        let raw = try GlimpseCLI.run(["overlay", image.path, "--model", model.path, "--out", dir.appendingPathComponent("raw").path,
                                      "--layer", "0", "--head", "1", "--max-tokens", "16"])
        XCTAssertEqual(raw.status, 0, raw.stderr)
        let first = try ImageDecoder.decode(contentsOf: dir.appendingPathComponent(pngs[0])).image
        let firstRaw = try ImageDecoder.decode(contentsOf: dir.appendingPathComponent("raw").appendingPathComponent(pngs[0])).image
        XCTAssertNotEqual(first.pixels, firstRaw.pixels, "a raw head map differs from the aggregate")
    }

    func testBatchWithCorruptFileShardsAndReport() throws {
        let model = try GlimpseCLI.fixtureModel()
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = dir.appendingPathComponent("images/sub")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for i in 0..<7 {
            try FileManager.default.copyItem(at: try GlimpseCLI.fixtureImage(i % 2 == 0 ? "shapes_40x30.png" : "scene_64x64.png"),
                                             to: images.appendingPathComponent("img\(i).dat"))   // extension does not matter
        }
        try Data("not an image".utf8).write(to: images.appendingPathComponent("notes.txt"))
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 16]).write(to: images.appendingPathComponent("img3b.jpg"))  // corrupt JPEG in the middle
        let whole = dir.appendingPathComponent("all.jsonl")
        let out = try GlimpseCLI.run(["batch", dir.appendingPathComponent("images").path, "--model", model.path, "--out", whole.path, "--quiet"])
        XCTAssertEqual(out.status, 1, "a failed file makes the exit status non-zero")
        let lines = try String(contentsOf: whole, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 8)
        let records = try lines.map(jsonLine)
        XCTAssertEqual(records.filter { $0["error"] != nil }.count, 1)
        XCTAssertEqual(records.filter { $0["captions"] != nil }.count, 7)
        XCTAssertEqual(records.compactMap { $0["file"] as? String }, records.compactMap { $0["file"] as? String }.sorted())
        XCTAssertTrue(out.stderr.contains("img3b.jpg"), out.stderr)

        var joined: [Substring] = []
        for shard in 0..<3 {
            let part = dir.appendingPathComponent("part\(shard).jsonl")
            _ = try GlimpseCLI.run(["batch", dir.appendingPathComponent("images").path, "--model", model.path, "--out", part.path,
                                    "--shard", "\(shard)/3", "--quiet"])
            joined += try String(contentsOf: part, encoding: .utf8).split(separator: "\n")
        }
        func withoutTiming(_ line: Substring) throws -> NSDictionary {
            var r = try jsonLine(line); r["timing_ms"] = nil; return r as NSDictionary
        }
        XCTAssertEqual(try joined.map(withoutTiming), try lines.map(withoutTiming), "shards 0/3, 1/3, 2/3 concatenated equal the whole run")

        // Resume after a cut: keep 3 records and half of the 4th; resume completes the rest exactly once.
        let cut = dir.appendingPathComponent("cut.jsonl")
        let text = lines.prefix(3).joined(separator: "\n") + "\n" + lines[3].prefix(20)
        try Data(text.utf8).write(to: cut)
        // With the manifest glimpse wrote next to the whole output: only a glimpse output is resumed.
        try FileManager.default.copyItem(atPath: whole.path + ".meta.json", toPath: cut.path + ".meta.json")
        _ = try GlimpseCLI.run(["batch", dir.appendingPathComponent("images").path, "--model", model.path, "--out", cut.path, "--resume", "--quiet"])
        let resumed = try String(contentsOf: cut, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(Set(try resumed.map(withoutTiming)), Set(try lines.map(withoutTiming)))
        XCTAssertEqual(resumed.count, lines.count)

        let report = dir.appendingPathComponent("report")
        let r = try GlimpseCLI.run(["report", whole.path, "--out", report.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let html = try String(contentsOf: report.appendingPathComponent("index.html"), encoding: .utf8)
        let firstCaption = try XCTUnwrap((records.first { $0["captions"] != nil }?["captions"] as? [[String: Any]])?.first?["text"] as? String)
        XCTAssertTrue(html.contains("img0.dat"))
        XCTAssertFalse(firstCaption.isEmpty)
    }
}

final class EvalCLITests: XCTestCase {
    func testEvalJSONHasPycocoKeysAndValues() throws {
        let f = { (n: String) in try EvaluationTests.fixture(n).path }
        let out = try GlimpseCLI.run(["eval", try f("predictions.jsonl"), "--references", try f("captions.json"),
                                      "--instances", try f("instances.json"), "--json", "--per-image"])
        XCTAssertEqual(out.status, 0, out.stderr)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
        let exp = try EvaluationTests.expected()
        let overall = try XCTUnwrap((exp["captions"] as? [String: Any])?["overall"] as? [String: Double])
        for k in ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"] {
            XCTAssertEqual(try XCTUnwrap(obj[k] as? Double), try XCTUnwrap(overall[k]), accuracy: 1e-4, k)
        }
        XCTAssertNil(obj["METEOR"], "no jar given: METEOR is left out, as without java")
        let bbox = try XCTUnwrap(obj["bbox"] as? [String: Double]), eb = try XCTUnwrap(exp["bbox"] as? [String: Double])
        XCTAssertEqual(Set(bbox.keys), Set(eb.keys))
        for (k, v) in eb { XCTAssertEqual(try XCTUnwrap(bbox[k]), v, accuracy: 1e-4, k) }
        XCTAssertEqual((obj["per_image"] as? [Any])?.count, 35)
        XCTAssertTrue(out.stderr.contains("1 reference images have no prediction record"), out.stderr)
    }

    func testEvalMissingReferencesFails() throws {
        let out = try GlimpseCLI.run(["eval", try EvaluationTests.fixture("predictions.jsonl").path, "--references", "/nonexistent/captions.json"])
        XCTAssertEqual(out.status, 1)
        XCTAssertTrue(out.stderr.contains("/nonexistent/captions.json"), out.stderr)
    }
}
