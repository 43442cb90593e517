import Foundation
import XCTest
@testable import Glimpse

/// Florence-2 against transformers 5.24 on the `florence2_tiny` fixture (tools/make_fixtures.py): the
/// image processor, the DaViT tower and projector, the BART encoder over [image; prompt], the decoder's
/// logits and cross-attention, the processor's prompts, generate() with the checkpoint's defaults
/// (beam 3, no_repeat_ngram_size 3, forced BOS/EOS) and greedy, and post_process_generation.
final class Florence2ParityTests: XCTestCase {
    struct Fixture {
        let model: CaptionModel
        let reference: SafeTensorsFile
        let json: [String: Any]
        let directory: URL

        init() throws {
            let base = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/models", withExtension: nil))
            directory = base.appendingPathComponent("florence2_tiny")
            model = try CaptionModel(directory: directory)
            reference = try SafeTensorsFile(url: directory.appendingPathComponent("reference.safetensors"))
            let data = try Data(contentsOf: directory.appendingPathComponent("reference.json"))
            json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }

        var images: [String: [String: Any]] { json["images"] as? [String: [String: Any]] ?? [:] }
        var cases: [[String: Any]] { json["cases"] as? [[String: Any]] ?? [] }
        func tensor(_ name: String) throws -> Tensor { try reference.tensor(name) }
        var imageTokenId: Int { json["image_token_id"] as? Int ?? -1 }

        /// The processor's input ids without the image placeholders: the encoder prompt.
        func textIds(_ inputIds: [Int]) -> [Int] { inputIds.filter { $0 != imageTokenId } }
    }

    private static var cached: Fixture?
    private func fixture() throws -> Fixture {
        if let f = Self.cached { return f }
        let f = try Fixture()
        Self.cached = f
        return f
    }

    func testRegistryRecognizesTheCheckpoint() throws {
        let f = try fixture()
        XCTAssertEqual(f.model.family.name, "florence2")
        XCTAssertEqual(f.model.encoder.imageSize, 96, "the image processor's size")
        XCTAssertEqual(f.model.encoder.sequenceLength, f.json["num_image_tokens"] as? Int)
        XCTAssertEqual(f.model.encoder.patches, PatchRows(first: 1, grid: 3))
        XCTAssertEqual(f.model.unusedTensors, [], "every checkpoint tensor is read")
        XCTAssertEqual(f.model.defaults.beamWidth, 3)
        XCTAssertEqual(f.model.defaults.noRepeatNgramSize, 3)
        XCTAssertEqual(f.model.defaults.forcedBosTokenId, 0)
        XCTAssertEqual(f.model.defaults.forcedEosTokenIds, [2])
        XCTAssertEqual(f.model.decoderPrompt(nil, parameters: f.model.defaults), [2], "decoder_start_token_id")
    }

    func testPixelValuesMatchTheProcessor() throws {
        let f = try fixture()
        for (name, info) in f.images {
            let file = f.directory.deletingLastPathComponent().appendingPathComponent(try XCTUnwrap(info["file"] as? String))
            let decoded = try ImageDecoder.decode(file: file.path, maxPixels: 1 << 24)
            let ours = f.model.pixelValues(for: decoded)
            // One uint8 step is ~0.017 after ImageNet normalization: equal resampling gives equal bytes.
            assertClose(ours, try f.tensor("\(name).pixel_values"), count: ours.count, tolerance: 1e-5, "\(name) pixel values")
        }
    }

    func testImageFeaturesMatchTransformers() throws {
        let f = try fixture()
        let tower = try XCTUnwrap(f.model.encoder as? Florence2Encoder).vision
        for name in f.images.keys {
            let pixels = try f.tensor("\(name).pixel_values")
            let features = tower.features(pixels.data, count: 1)
            assertClose(features.data, try f.tensor("\(name).image_features"), count: features.count, tolerance: 1e-4, "\(name) image features")
        }
    }

    func testEncoderHiddenStatesAndPromptsMatchTransformers() throws {
        let f = try fixture()
        var checked = 0
        for (name, info) in f.images {
            let forward = try XCTUnwrap(info["forward"] as? [String: Any])
            let key = try XCTUnwrap(forward["key"] as? String), inputIds = try XCTUnwrap(forward["input_ids"] as? [Int])
            let prompt = f.textIds(inputIds)
            XCTAssertEqual(inputIds.prefix(f.model.encoder.sequenceLength).allSatisfy { $0 == f.imageTokenId }, true, "image tokens first")
            let pixels = try f.tensor("\(name).pixel_values")
            let hidden = f.model.encoder.encode(pixelValues: pixels.data, count: 1, prompt: prompt)
            XCTAssertEqual(hidden.shape, [1, inputIds.count, 32])
            assertClose(hidden.data, try f.tensor("\(key).encoder_hidden"), count: hidden.count, tolerance: 1e-4, "\(name) \(key) encoder")
            checked += 1
        }
        XCTAssertEqual(checked, 2)
        // Every task's prompt as the processor tokenizes it.
        let tasks = try XCTUnwrap(f.json["task_prompts"] as? [String: [String: Any]])
        XCTAssertEqual(tasks.count, Florence2Task.allCases.count)
        for (task, info) in tasks {
            let text = try XCTUnwrap(info["text"] as? String), ids = try XCTUnwrap(info["input_ids"] as? [Int])
            XCTAssertEqual(try f.model.encoderPrompt(text), f.textIds(ids), "\(task): encoder prompt ids")
        }
    }

    func testTeacherForcedLogitsAndCrossAttentionMatchTransformers() throws {
        let f = try fixture()
        let decoder = f.model.decoder, vocab = decoder.vocabularySize, heads = decoder.headCount
        for (name, info) in f.images {
            let forward = try XCTUnwrap(info["forward"] as? [String: Any])
            let key = try XCTUnwrap(forward["key"] as? String)
            let ids = try XCTUnwrap(forward["decoder_input_ids"] as? [Int])
            let hidden = try f.tensor("\(key).encoder_hidden")
            let rows = hidden.count / decoder.hiddenSize
            let state = decoder.makeState(beamCapacity: 1, lengthCapacity: decoder.maxPositions)
            decoder.setEncoderStates(hidden.data, rows: rows, state: state)
            let logits = decoder.forward(tokens: ids, state: state, allPositions: true, captureCrossAttention: true)
            assertClose(logits, try f.tensor("\(key).logits"), count: ids.count * vocab, tolerance: 1e-3, "\(name) logits")
            let t = ids.count
            for l in 0..<decoder.layerCount {
                let ref = try f.tensor("\(key).cross_attentions.\(l)")   // [1, heads, T, rows]
                let mine = crossAttentionAsTorch(state, layer: l, rows: t, heads: heads)
                assertClose(mine, ref, count: mine.count, tolerance: 1e-4, "\(name) cross-attention layer \(l)")
            }
            // The KV cache: one token at a time gives the same last row.
            state.reset()
            var last: UnsafeMutablePointer<Float>?
            for id in ids { last = decoder.forward(tokens: [id], state: state, allPositions: false, captureCrossAttention: false) }
            let expected = try f.tensor("\(key).logits")
            let lastRow = Tensor(shape: [vocab], storage: expected.storage, offset: expected.offset + (t - 1) * vocab)
            assertClose(try XCTUnwrap(last), lastRow, count: vocab, tolerance: 1e-3, "\(name) incremental logits")
        }
    }

    func testGenerateAndAnswersMatchTransformersOnEveryCase() throws {
        let f = try fixture()
        let parser = try XCTUnwrap(f.model.taskParser)
        var checked = 0
        for c in f.cases {
            let image = try XCTUnwrap(c["image"] as? String), label = try XCTUnwrap(c["label"] as? String)
            let task = try XCTUnwrap(c["task"] as? String), textInput = try XCTUnwrap(c["text_input"] as? String)
            let what = "\(image) \(task) \(label)"
            // The prompt as the CLI builds it from --task/--text, then the processor's ids.
            let taskInput = c["task_input"] as? String
            let prompt = try f.model.prompt(task: task, text: taskInput?.isEmpty == false ? taskInput : nil, prompt: nil)
            XCTAssertEqual(prompt, textInput, what)
            let encoderPrompt = try f.model.encoderPrompt(prompt)
            XCTAssertEqual(encoderPrompt, f.textIds(try XCTUnwrap(c["input_ids"] as? [Int])), "\(what): encoder prompt")

            var p = f.model.defaults
            let kwargs = try XCTUnwrap(c["kwargs"] as? [String: Any])
            XCTAssertEqual(try p.set(transformersOptions: JSONConfig(values: kwargs, file: "\(what) kwargs")), [], what)
            let pixels = try f.tensor("\(image).pixel_values")
            let hidden = f.model.encoder.encode(pixelValues: pixels.data, count: 1, prompt: encoderPrompt)
            let decoderPrompt = f.model.decoderPrompt(prompt, parameters: p)
            let state = f.model.makeState(beamWidth: p.beamWidth)
            let out = try f.model.generate(encoderStates: hidden[index: 0], prompt: decoderPrompt, parameters: p, state: state)
            let expected = try XCTUnwrap(c["sequences"] as? [[Int]])
            let best = try XCTUnwrap(out.first, what)
            XCTAssertEqual(best.tokens, expected[0], "\(what): sequence")
            if let scores = c["sequences_scores"] as? [Double] {
                XCTAssertEqual(Double(best.score), scores[0], accuracy: 1e-3, "\(what): sequences_scores")
            }
            // batch_decode with and without special tokens, then post_process_generation.
            XCTAssertEqual(f.model.tokenizer.decode(best.tokens, skipSpecialTokens: false), c["text"] as? String, "\(what): text")
            XCTAssertEqual(f.model.text(of: best), c["text_skip_special"] as? String, "\(what): text without special tokens")
            XCTAssertEqual(parser.task(of: prompt), task)
            let width = try XCTUnwrap((f.images[image]?["size"] as? [Int])?.first ?? c["image_width"] as? Int ?? imageSize(f, image).0)
            let height = try XCTUnwrap((f.images[image]?["size"] as? [Int])?.last ?? c["image_height"] as? Int ?? imageSize(f, image).1)
            let answer = try parser.answer(tokens: best.tokens, task: task, width: width, height: height)
            let parsed = try XCTUnwrap(c["parsed"] as? [String: Any])
            let expectedAnswer = try JSONDecoder().decode(AnswerValue.self, from: JSONSerialization.data(withJSONObject: try XCTUnwrap(parsed[task]), options: [.fragmentsAllowed]))
            XCTAssertEqual(answer.value, expectedAnswer, "\(what): post_process_generation")
            checked += 1
        }
        XCTAssertEqual(checked, f.cases.count)
        XCTAssertGreaterThanOrEqual(checked, 20)
    }

    /// Answers become contract detections: boxes [x0, y0, x1, y1] → [x, y, w, h]; polygons keep their points,
    /// get their bounding box and pycocotools' mask; OCR quads their bounding box with the text as label.
    func testAnswerRegionsBecomeDetections() throws {
        let boxes = Florence2Answer.boxes(bboxes: [[10, 20, 30, 60]], labels: ["car"]).detections(width: 64, height: 64)
        XCTAssertEqual(boxes.map(\.box), [PixelBox(x: 10, y: 20, width: 20, height: 40)])
        XCTAssertEqual(boxes.map(\.label), ["car"])
        let square: [[Int]] = [[8, 8, 24, 8, 24, 24, 8, 24]]
        let polygons = Florence2Answer.polygons(polygons: [square], labels: ["tile"]).detections(width: 32, height: 32)
        let p = try XCTUnwrap(polygons.first)
        XCTAssertEqual(p.box, PixelBox(x: 8, y: 8, width: 16, height: 16))
        XCTAssertEqual(p.polygons, [[8, 8, 24, 8, 24, 24, 8, 24]])
        let rle = try XCTUnwrap(p.mask), mask = rle.decode()
        XCTAssertEqual(rle, try RLE(polygons: [[8, 8, 24, 8, 24, 24, 8, 24]], height: 32, width: 32), "pycocotools' rasterization")
        XCTAssertEqual(mask.area, 16 * 16)
        XCTAssertTrue(mask[16, 16] && !mask[2, 2])
        let quads = Florence2Answer.quadBoxes(quadBoxes: [[5, 6, 40, 7, 41, 20, 4, 19]], labels: ["EXIT"]).detections(width: 64, height: 64)
        XCTAssertEqual(quads.first?.box, PixelBox(x: 4, y: 6, width: 37, height: 14))
        XCTAssertEqual(quads.first?.quad, [5, 6, 40, 7, 41, 20, 4, 19])
        XCTAssertEqual(quads.first?.label, "EXIT")
        XCTAssertEqual(Florence2Answer.text("a car").detections(width: 64, height: 64), [])
    }

    private func imageSize(_ f: Fixture, _ image: String) throws -> (Int, Int) {
        let file = f.directory.deletingLastPathComponent().appendingPathComponent(try XCTUnwrap(f.images[image]?["file"] as? String))
        let decoded = try ImageDecoder.decode(file: file.path, maxPixels: 1 << 24)
        return (decoded.image.width, decoded.image.height)
    }
}
