import XCTest
@testable import Glimpse

/// A classifier fixture made by tools/make_fixtures.py (random tiny ViTForImageClassification with
/// transformers 5.24's pixel values, hidden states, logits, attentions, top classes and rollout).
struct ClassifierFixture {
    let name: String
    let model: ClassificationModel
    let reference: SafeTensorsFile
    let json: [String: Any]

    init(_ name: String) throws {
        let directory = try GlimpseCLI.fixtureModel(name)
        self.name = name
        model = try ClassificationModel(directory: directory)
        reference = try SafeTensorsFile(url: directory.appendingPathComponent("reference.safetensors"))
        let data = try Data(contentsOf: directory.appendingPathComponent("reference.json"))
        json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    var images: [String: [String: Any]] { (json["images"] as? [String: [String: Any]]) ?? [:] }
}

/// Tolerances: pixel values 1e-6 (same PIL arithmetic), hidden states and attentions 1e-4,
/// logits 1e-3, probabilities and the rollout 1e-4.
final class ClassifierParityTests: XCTestCase {
    private var fixtures: [ClassifierFixture] {
        get throws { try ParityFixture.names(matching: { $0 is any ClassifierFamily }).map { try ClassifierFixture($0) } }
    }

    func testLogitsAttentionsAndRolloutMatchTransformers() throws {
        let all = try fixtures
        XCTAssertFalse(all.isEmpty, "no classifier fixture in Fixtures/models")
        for f in all {
            let c = f.model.classifier, n = c.sequenceLength, perImage = c.headCount * n * n
            XCTAssertEqual(f.model.labels.count, c.classCount, f.name)
            XCTAssertEqual(f.model.unusedTensors, [], f.name)
            for (image, info) in f.images {
                let what = "\(f.name) \(image)"
                // Our preprocessing of the fixture image against the processor's pixel values.
                let file = try GlimpseCLI.fixtureImage(URL(fileURLWithPath: try XCTUnwrap(info["file"] as? String)).lastPathComponent)
                let decoded = try ImageDecoder.decode(file: file.path)
                let pixels = try f.model.pixelValues(for: decoded, file: file.path)
                let expectedPixels = try f.reference.tensor("\(image).pixel_values")
                assertClose(pixels, expectedPixels, count: pixels.count, tolerance: 1e-5, "\(what) pixel values")

                let attentions = Tensor(zeros: [c.layerCount, perImage])
                let logits = expectedPixels.scalars.withUnsafeBufferPointer {
                    c.logits(pixelValues: $0.baseAddress!, count: 1, attentions: attentions.data)
                }
                assertClose(logits.data, try f.reference.tensor("\(image).logits"), count: c.classCount, tolerance: 1e-3, "\(what) logits")
                for l in 0..<c.layerCount {
                    assertClose(attentions.data + l * perImage, try f.reference.tensor("\(image).attentions.\(l)"),
                                count: perImage, tolerance: 1e-4, "\(what) attentions layer \(l)")
                }

                let (probabilities, rollouts) = f.model.probabilities(pixelValues: expectedPixels.scalars, count: 1, rollout: true)
                let expectedTop = try XCTUnwrap(info["top"] as? [[String: Any]])
                let top = f.model.top(expectedTop.count, of: probabilities[0])
                XCTAssertEqual(top.map(\.id), expectedTop.compactMap { $0["id"] as? Int }, "\(what) class order")
                XCTAssertEqual(top.map(\.label), expectedTop.compactMap { $0["label"] as? String }, "\(what) labels")
                for (mine, theirs) in zip(top, expectedTop) {
                    XCTAssertEqual(Double(mine.score), try XCTUnwrap(theirs["score"] as? Double), accuracy: 1e-4, "\(what) \(mine.label)")
                }
                let rollout = try f.reference.tensor("\(image).rollout")
                XCTAssertEqual(rollouts[0].count, c.patches.grid * c.patches.grid, what)
                assertClose(rollouts[0], rollout, count: rollouts[0].count, tolerance: 1e-4, "\(what) attention rollout")
            }
        }
    }

    /// Two images in one pass give each image's own result (rows of a batch stay independent).
    func testBatchEqualsOneByOne() throws {
        for f in try fixtures {
            let names = f.images.keys.sorted()
            var pixels: [Float] = []
            for image in names { pixels += try f.reference.tensor("\(image).pixel_values").scalars }
            let together = f.model.probabilities(pixelValues: pixels, count: names.count, rollout: true)
            for (i, image) in names.enumerated() {
                let alone = f.model.probabilities(pixelValues: try f.reference.tensor("\(image).pixel_values").scalars, count: 1, rollout: true)
                for (a, b) in zip(together.probabilities[i], alone.probabilities[0]) { XCTAssertEqual(a, b, accuracy: 1e-6, "\(f.name) \(image)") }
                for (a, b) in zip(together.rollouts[i], alone.rollouts[0]) { XCTAssertEqual(a, b, accuracy: 1e-6, "\(f.name) \(image) rollout") }
            }
        }
    }

    func testClassLabelsFromConfig() throws {
        let labels = try ClassLabels.names(JSONConfig(values: ["id2label": ["1": "dog", "0": "cat"]], file: "c.json"))
        XCTAssertEqual(labels, ["cat", "dog"])
        XCTAssertEqual(try ClassLabels.names(JSONConfig(values: ["num_labels": 3], file: "c.json")), ["LABEL_0", "LABEL_1", "LABEL_2"])
        XCTAssertEqual(try ClassLabels.names(JSONConfig(values: [:], file: "c.json")), ["LABEL_0", "LABEL_1"])
        for bad: [String: Any] in [["0": "a", "2": "b"], ["x": "a"], ["0": 5], [:]] {
            XCTAssertThrowsError(try ClassLabels.names(JSONConfig(values: ["id2label": bad], file: "c.json")), "\(bad)") { error in
                XCTAssertTrue("\(error)".contains("c.json"), "\(error)")
            }
        }
        XCTAssertThrowsError(try ClassLabels.names(JSONConfig(values: ["num_labels": 0], file: "c.json")))
    }
}

/// `glimpse classify` end to end: the record format of the output contract, transformers' classes.
final class ClassifyCLITests: XCTestCase {
    func testJSONRecordsCarryTransformersTopClassesAndErrorsStayPerFile() throws {
        let model = try GlimpseCLI.fixtureModel("vit_cls_tiny"), f = try ClassifierFixture("vit_cls_tiny")
        let image = try GlimpseCLI.fixtureImage("scene_64x64.png")
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let broken = dir.appendingPathComponent("broken.png")
        try Data([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]).write(to: broken)
        let out = try GlimpseCLI.run(["classify", image.path, broken.path, image.path, "--model", model.path, "--top-k", "3", "--json"])
        XCTAssertEqual(out.status, 1, out.stderr)
        XCTAssertTrue(out.stderr.contains(broken.path), out.stderr)
        let lines = out.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        let records = try lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(Set(records[1].keys), ["file", "error"])
        let expected = try XCTUnwrap(f.images["scene_64x64"]?["top"] as? [[String: Any]])
        for r in [records[0], records[2]] {
            XCTAssertEqual(r["file"] as? String, image.path)
            XCTAssertEqual(r["width"] as? Int, 64)
            XCTAssertEqual(r["height"] as? Int, 64)
            XCTAssertNotNil(r["timing_ms"] as? [String: Any])
            let labels = try XCTUnwrap(r["labels"] as? [[String: Any]])
            XCTAssertEqual(labels.count, 3)
            for (mine, theirs) in zip(labels, expected) {
                XCTAssertEqual(mine["id"] as? Int, theirs["id"] as? Int)
                XCTAssertEqual(mine["label"] as? String, theirs["label"] as? String)
                XCTAssertEqual(try XCTUnwrap(mine["score"] as? Double), try XCTUnwrap(theirs["score"] as? Double), accuracy: 1e-4)
            }
        }
    }

    func testCaptionModelsAreRefusedAndTopKIsBounded() throws {
        let image = try GlimpseCLI.fixtureImage("scene_64x64.png").path
        let captioner = try GlimpseCLI.run(["classify", image, "--model", try GlimpseCLI.fixtureModel("vit_gpt2_a").path])
        XCTAssertEqual(captioner.status, 2, captioner.stderr)
        XCTAssertTrue(captioner.stderr.contains("does not classify"), captioner.stderr)
        let classifier = try GlimpseCLI.run(["caption", image, "--model", try GlimpseCLI.fixtureModel("vit_cls_tiny").path])
        XCTAssertNotEqual(classifier.status, 0)
        XCTAssertTrue(classifier.stderr.contains("does not caption"), classifier.stderr)
        for k in ["0", "1001", "-3"] {
            let out = try GlimpseCLI.run(["classify", image, "--model", try GlimpseCLI.fixtureModel("vit_cls_tiny").path, "--top-k", k])
            XCTAssertEqual(out.status, 64, "--top-k \(k): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("--top-k"), out.stderr)
        }
    }

    /// `overlay` on a classifier: the class token's attention rollout over the image, titled with the top class.
    func testOverlayDrawsTheRollout() throws {
        let model = try GlimpseCLI.fixtureModel("vit_cls_tiny"), image = try GlimpseCLI.fixtureImage("scene_64x64.png")
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = try GlimpseCLI.run(["overlay", image.path, "--model", model.path, "--out", dir.path])
        XCTAssertEqual(out.status, 0, out.stderr)
        let f = try ClassifierFixture("vit_cls_tiny")
        let top = try XCTUnwrap((f.images["scene_64x64"]?["top"] as? [[String: Any]])?.first?["label"] as? String)
        XCTAssertTrue(out.stdout.hasPrefix(top), out.stdout)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertEqual(files, ["00-rollout.png", "contact-sheet.png"])
        let png = try Data(contentsOf: dir.appendingPathComponent("00-rollout.png"))
        XCTAssertTrue(PNGWriter.isWrittenByGlimpse(Array(png.prefix(64))))
        // The same picture as transformers' rollout drawn over the image (within one level per channel).
        let drawn = try ImageDecoder.decode(data: png, name: "00-rollout.png").image
        let original = try ImageDecoder.decode(file: image.path).image
        let rollout = try f.reference.tensor("scene_64x64.rollout").scalars
        let grid = f.model.classifier.patches.grid
        let expected = Overlay.word(WordMap(word: CaptionWord(text: "rollout", tokens: [], tokenIndex: 0), map: rollout, grid: grid), image: original)
        XCTAssertEqual(drawn.width, expected.width)
        XCTAssertEqual(drawn.height, expected.height)
        let worst = zip(drawn.pixels, expected.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
        XCTAssertLessThanOrEqual(worst, 1, "rollout overlay differs from transformers' rollout drawn over the image")
        // And it is not the plain image: the rollout is drawn.
        XCTAssertGreaterThan(zip(drawn.pixels, original.pixels).filter { $0 != $1 }.count, drawn.pixels.count / 4)
    }
}
