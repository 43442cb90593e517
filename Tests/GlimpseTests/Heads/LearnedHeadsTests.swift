import XCTest
@testable import Glimpse

/// The learned heads against tools/make_heads_fixtures.py's PyTorch reference on random weights.
final class LearnedHeadsTests: XCTestCase {
    struct Setup {
        var heads: LearnedHeads
        var attention: AttentionMaps
        var encoder: Tensor
        var fixture: [String: Any]
        var results: [[String: Any]]
        var words: [CaptionWord]
        var width: Int, height: Int
        var image: RGBImage
    }

    private func setup() throws -> Setup {
        let f = try XCTUnwrap(try headsFixture("learned_heads.json") as? [String: Any])
        let configData = try JSONSerialization.data(withJSONObject: try XCTUnwrap(f["config"]))
        let config = try JSONDecoder().decode(HeadsConfig.self, from: configData)
        let patchRows = PatchRows(first: f["patch_offset"] as? Int ?? 0, grid: config.grid[0])
        let layout = AttentionLayout(layers: f["layers"] as? Int ?? 0, heads: f["heads"] as? Int ?? 0,
                                     encoderRows: patchRows.rows.upperBound, patchRows: patchRows)
        try config.validate(file: "learned_heads.json", layout: layout, encoderHiddenSize: config.encoderHiddenSize)
        var tensors: [String: Tensor] = [:]
        for (name, value) in try XCTUnwrap(f["weights"] as? [String: [String: Any]]) {
            tensors[name] = Tensor(shape: ints(value["shape"]), values: floats(value["values"]))
        }
        let heads = try LearnedHeads(config: config, tensors: tensors)
        let attention = (f["attention"] as? [Any] ?? []).map(floats)
        let sequence = GeneratedSequence(tokens: [0] + attention.indices.map { 100 + $0 }, promptLength: 1,
                                         score: 0, crossAttention: attention)
        let maps = try AttentionMaps(sequence: sequence, layout: layout)
        let e = floats(f["encoder_states"])
        let encoder = Tensor(shape: [layout.encoderRows, config.encoderHiddenSize], values: e)
        let groups = (f["words"] as? [Any] ?? []).map(ints)
        let texts = ["circle", "star"]
        let words = zip(texts, groups).map { CaptionWord(text: $0, tokens: $1, tokenIndex: 1 + $1[0]) }
        return Setup(heads: heads, attention: maps, encoder: encoder, fixture: f,
                     results: try XCTUnwrap(f["results"] as? [[String: Any]]), words: words,
                     width: f["image_width"] as? Int ?? 0, height: f["image_height"] as? Int ?? 0,
                     image: RGBImage(width: f["image_width"] as? Int ?? 0, height: f["image_height"] as? Int ?? 0,
                                     pixels: ints(f["image"]).map { UInt8(clamping: $0) }))
    }

    func testMathMatchesPyTorch() throws {
        let s = try setup()
        let layer = s.heads.config.attentionLayer
        let maps = try s.words.map { try s.attention.map(tokens: $0.tokens, layer: layer) }
        for (i, r) in s.results.enumerated() { assertClose(maps[i], floats(r["map"]), tolerance: 1e-5, "A_w \(i)") }
        let x = try s.heads.features(maps: maps, encoderStates: s.encoder, patchRows: s.attention.layout.patchRows)
        let din = s.heads.config.inputSize
        for (i, r) in s.results.enumerated() {
            assertClose(Array(x[i * din..<(i + 1) * din]), floats(r["features"]), tolerance: 1e-5, "x \(i)")
        }
        let p = try s.heads.predict(maps: maps, encoderStates: s.encoder, patchRows: s.attention.layout.patchRows)
        for (i, r) in s.results.enumerated() {
            assertClose(p[i].boxFractions, floats(r["box_fractions"]), tolerance: 1e-5, "box \(i)")
            XCTAssertEqual(p[i].score, (r["score"] as? NSNumber)?.floatValue ?? -1, accuracy: 1e-5)
            assertClose(p[i].maskLogits, floats(r["seg"]), tolerance: 1e-4, "seg \(i)")
            assertClose(p[i].pixelWeights ?? [], floats(r["theta"]), tolerance: 1e-4, "refine θ \(i)")
            XCTAssertEqual(LearnedHeads.pixelBox(p[i].boxFractions, width: s.width, height: s.height).array, ints(r["box"]))
        }
    }

    /// Version-2 heads refine each mask from the pixels (the fixture's 50×40 image) and box it;
    /// without the pixels they report the coarse mask and the detection box.
    func testRefinedMasksAndBoxesMatchPyTorch() throws {
        let s = try setup()
        let dets = try s.heads.detect(words: s.words, attention: s.attention, encoderStates: s.encoder,
                                      imageWidth: s.width, imageHeight: s.height, image: s.image)
        XCTAssertEqual(dets.count, s.results.count)
        for (d, r) in zip(dets, s.results) {
            let mask = try XCTUnwrap(r["refined_mask"] as? [String: Any])
            XCTAssertEqual(d.mask?.compressedString, mask["counts"] as? String)
            XCTAssertEqual(d.mask?.area, r["refined_area"] as? Int)
            XCTAssertEqual(d.box.array, ints(r["refined_box"]))
            XCTAssertNotEqual(d.box.array, ints(r["box"]), "the fixture's refinement moves the box")
        }
        // An image of another size than the one described: coarse masks, as without pixels.
        let other = RGBImage(width: s.width + 1, height: s.height)
        let coarse = try s.heads.detect(words: s.words, attention: s.attention, encoderStates: s.encoder,
                                        imageWidth: s.width, imageHeight: s.height, image: other)
        XCTAssertEqual(coarse.map(\.box.array), s.results.map { ints($0["box"]) })
    }

    func testRefinementRegionGrowsTheBoxInsideTheImage() {
        let r = PixelRefinement.region(around: PixelBox(x: 10, y: 0, width: 20, height: 3), width: 32, height: 40)
        // a quarter of 20 (+2, floored) = 5 a side, cut at the right edge; 3 px high: the 2-pixel minimum
        XCTAssertEqual(r.x, 5..<32)
        XCTAssertEqual(r.y, 0..<5)
        XCTAssertTrue(PixelRefinement.refines(width: 4096, height: 2048))
        XCTAssertFalse(PixelRefinement.refines(width: 4097, height: 2048))
    }

    func testDetectionsMatchPyTorchBoxesAndMasks() throws {
        let s = try setup()
        let words = [CaptionWord(text: "red", tokens: [0], tokenIndex: 1)] + s.words
        let dets = try s.heads.detect(words: words, attention: s.attention, encoderStates: s.encoder,
                                      imageWidth: s.width, imageHeight: s.height)
        XCTAssertEqual(dets.map(\.word), ["circle", "star"])
        XCTAssertEqual(dets.map(\.label), ["red circle", "star"])
        XCTAssertEqual(dets.map(\.tokenIndex), [2, 3])
        for (d, r) in zip(dets, s.results) {
            XCTAssertEqual(d.box.array, ints(r["box"]))
            XCTAssertEqual(d.score, (r["score"] as? NSNumber)?.doubleValue ?? -1, accuracy: 1e-5)
            let mask = try XCTUnwrap(r["mask"] as? [String: Any])
            XCTAssertEqual(d.mask?.compressedString, mask["counts"] as? String)
            XCTAssertEqual(d.mask.map { [$0.height, $0.width] }, ints(mask["size"]))
        }
    }

    /// The pipeline from a generated sequence: word grouping by the tokenizer, then either path.
    func testGroundingPipeline() throws {
        let s = try setup()
        let pieces = [100: "red", 101: " circle", 102: " st", 103: "ar"]
        let decode: ([Int]) -> String = { $0.compactMap { pieces[$0] }.joined() }
        let attention = s.fixture["attention"] as? [Any] ?? []
        let sequence = GeneratedSequence(tokens: [0, 100, 101, 102, 103], promptLength: 1, score: 0,
                                         crossAttention: attention.map(floats))
        let layout = s.attention.layout
        let learned = try Grounding.detections(sequence: sequence, layout: layout, decode: decode, encoderStates: s.encoder,
                                               imageWidth: s.width, imageHeight: s.height, heads: s.heads)
        XCTAssertEqual(learned.map(\.label), ["red circle", "star"])
        XCTAssertEqual(learned.map(\.tokenIndex), [2, 3])
        XCTAssertEqual(learned.map(\.box.array), s.results.map { ints($0["box"]) })

        let free = try Grounding.detections(sequence: sequence, layout: layout, decode: decode, encoderStates: s.encoder,
                                            imageWidth: s.width, imageHeight: s.height, heads: s.heads,
                                            method: .attention, masks: false)
        XCTAssertEqual(free.map(\.label), ["red circle", "star"])
        XCTAssertTrue(free.allSatisfy { $0.mask == nil && $0.box.width > 0 && $0.score > 0 && $0.score <= 1 })

        // no heads: every content word, training-free
        let plain = try Grounding.detections(sequence: sequence, layout: layout, decode: decode, encoderStates: s.encoder,
                                             imageWidth: s.width, imageHeight: s.height, heads: nil)
        XCTAssertEqual(plain.map(\.word), ["red", "circle", "star"])
        XCTAssertThrowsError(try Grounding.detections(sequence: sequence, layout: layout, decode: decode,
                                                      encoderStates: s.encoder, imageWidth: s.width, imageHeight: s.height,
                                                      heads: nil, method: .learned))
    }

    /// Banker's rounding and clamping as tools/train_heads.py's pixel_box.
    func testPixelBoxRoundingAndClamping() {
        // (0.25 - 0.05) * 10 = 2.0; (0.25 + 0.05) * 10 = 3.0
        XCTAssertEqual(LearnedHeads.pixelBox([0.25, 0.25, 0.1, 0.1], width: 10, height: 10).array, [2, 2, 1, 1])
        // 2.5 rounds to 2 (half to even), 7.5 to 8
        XCTAssertEqual(LearnedHeads.pixelBox([0.5, 0.5, 0.5, 0.5], width: 10, height: 10).array, [2, 2, 6, 6])
        // beyond the image: clamped, at least one pixel
        XCTAssertEqual(LearnedHeads.pixelBox([1, 1, 0.2, 0.2], width: 10, height: 10).array, [9, 9, 1, 1])
        XCTAssertEqual(LearnedHeads.pixelBox([0, 0, 0, 0], width: 10, height: 10).array, [0, 0, 1, 1])
    }

    func testValidationNamesFileAndKey() throws {
        let layout = AttentionLayout(layers: 2, heads: 3, encoderRows: 10, patchRows: PatchRows(first: 1, grid: 3))
        var c = HeadsConfig(grid: 3, encoderHiddenSize: 5, attentionLayer: 1, hiddenSize: 7, maskSize: 4)
        XCTAssertNoThrow(try c.validate(file: "h.json", layout: layout, encoderHiddenSize: 5))
        XCTAssertThrowsError(try c.validate(file: "h.json", layout: layout, encoderHiddenSize: 6)) { e in
            XCTAssertEqual((e as? HeadsError).map { "\($0)" }?.contains("h.json: 'encoder_hidden_size'"), true)
        }
        c.grid = [4, 4]
        XCTAssertThrowsError(try c.validate(file: "h.json", layout: layout, encoderHiddenSize: 5)) { e in
            XCTAssertEqual((e as? HeadsError).map { "\($0)" }?.contains("'grid'"), true)
        }
        c.grid = [3, 3]; c.attentionLayer = 2
        XCTAssertThrowsError(try c.validate(file: "h.json", layout: layout, encoderHiddenSize: 5))
        c.attentionLayer = 1; c.format = "other"
        XCTAssertThrowsError(try c.validate(file: "h.json", layout: layout, encoderHiddenSize: 5))

        // a mis-shaped tensor is named
        let ok = HeadsConfig(grid: 3, encoderHiddenSize: 5, attentionLayer: 1, hiddenSize: 7, maskSize: 4)
        var tensors = Dictionary(uniqueKeysWithValues: LearnedHeads.tensorShapes(ok).map { ($0.0, Tensor(zeros: $0.1)) })
        tensors["seg.fc2.weight"] = Tensor(zeros: [15, 7])
        XCTAssertThrowsError(try LearnedHeads(config: ok, tensors: tensors, file: "heads.safetensors")) { e in
            XCTAssertEqual(e as? HeadsError, .invalidHeads(file: "heads.safetensors", key: "seg.fc2.weight",
                                                           detail: "shape [15, 7], expected [16, 7]"))
        }
        tensors["seg.fc2.weight"] = nil
        XCTAssertThrowsError(try LearnedHeads(config: ok, tensors: tensors))

        // version 2 needs both refinement sizes, and its refine.* tensors
        var v2 = HeadsConfig(grid: 3, encoderHiddenSize: 5, attentionLayer: 1, hiddenSize: 7, maskSize: 4,
                             refineHiddenSize: 6, pixelHiddenSize: 8)
        XCTAssertEqual(v2.version, 2)
        XCTAssertNoThrow(try v2.validate(file: "h.json", layout: layout, encoderHiddenSize: 5))
        XCTAssertEqual(LearnedHeads.tensorShapes(v2).last?.1, [8 * 6 + 2 * 8 + 1])
        var v2Tensors = Dictionary(uniqueKeysWithValues: LearnedHeads.tensorShapes(ok).map { ($0.0, Tensor(zeros: $0.1)) })
        XCTAssertThrowsError(try LearnedHeads(config: v2, tensors: v2Tensors)) { e in
            guard case .invalidHeads(_, let key, _)? = e as? HeadsError else { return XCTFail("\(e)") }
            XCTAssertEqual(key, "refine.fc1.weight")
        }
        v2Tensors = Dictionary(uniqueKeysWithValues: LearnedHeads.tensorShapes(v2).map { ($0.0, Tensor(zeros: $0.1)) })
        XCTAssertNoThrow(try LearnedHeads(config: v2, tensors: v2Tensors))
        v2.pixelHiddenSize = 0
        XCTAssertThrowsError(try v2.validate(file: "h.json", layout: layout, encoderHiddenSize: 5)) { e in
            XCTAssertEqual((e as? HeadsError).map { "\($0)" }?.contains("'pixel_hidden_size'"), true)
        }
        v2.pixelHiddenSize = nil
        XCTAssertThrowsError(try v2.validate(file: "h.json", layout: layout, encoderHiddenSize: 5))
        v2.pixelHiddenSize = 8; v2.version = 3
        XCTAssertThrowsError(try v2.validate(file: "h.json", layout: layout, encoderHiddenSize: 5))
    }

    func testMissingKeyInJSONIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-heads-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("heads.json")
        try Data(#"{"format": "glimpse-heads", "version": 1, "grid": [3, 3], "encoder_hidden_size": 5}"#.utf8).write(to: url)
        let layout = AttentionLayout(layers: 2, heads: 3, encoderRows: 10, patchRows: PatchRows(first: 1, grid: 3))
        XCTAssertThrowsError(try HeadsConfig.load(url, layout: layout, encoderHiddenSize: 5)) { e in
            guard case .invalidHeads(let file, let key, _)? = e as? HeadsError else { return XCTFail("\(e)") }
            XCTAssertEqual(file, url.path)
            XCTAssertEqual(key, "attention_layer")
        }
        // heads.json without heads.safetensors
        XCTAssertThrowsError(try LearnedHeads.load(directory: dir, layout: layout, encoderHiddenSize: 5))
        // no heads at all
        try FileManager.default.removeItem(at: url)
        XCTAssertNil(try LearnedHeads.load(directory: dir, layout: layout, encoderHiddenSize: 5))
    }

    /// Loading heads.safetensors through the real WeightLoader gives the fixture's weights
    /// (skipped while the safetensors loader is a stub in this worktree).
    func testLoadsFromModelDirectory() throws {
        let missing = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString).safetensors")
        if (try? SafeTensorsFile(url: missing)) != nil { throw XCTSkip("safetensors loader is a stub here") }
        let s = try setup()
        let dir = try XCTUnwrap(headsFixtureURL("heads.json")).deletingLastPathComponent()
        let layout = AttentionLayout(layers: 2, heads: 3, encoderRows: 10, patchRows: PatchRows(first: 1, grid: 3))
        let heads = try XCTUnwrap(try LearnedHeads.load(directory: dir, layout: layout, encoderHiddenSize: 5))
        let maps = try s.words.map { try s.attention.map(tokens: $0.tokens, layer: 1) }
        let p = try heads.predict(maps: maps, encoderStates: s.encoder, patchRows: layout.patchRows)
        for (i, r) in s.results.enumerated() { assertClose(p[i].maskLogits, floats(r["seg"]), tolerance: 1e-4) }
    }
}
