import Foundation
import XCTest
@testable import Glimpse

/// The BLIP family's own rules against transformers 5.24 on the random tiny `BlipForConditionalGeneration`
/// in Fixtures/models/blip_tiny (tools/make_fixtures.py; names in Fixtures/models/README.md): config
/// defaults, loading and tying, the prompt and generation-default rules. Its numbers (vision states,
/// logits, attention, every generate case) are checked with every other fixture's in `FixtureParityTests`.
final class BLIPParityTests: XCTestCase {
    private static var cached: Result<ParityFixture, Error>?
    private func fixture() throws -> ParityFixture {
        if Self.cached == nil { Self.cached = Result { try ParityFixture("blip_tiny") } }
        return try XCTUnwrap(Self.cached).get()
    }

    // MARK: configs and loading

    func testConfigDefaultsMatchTransformers() throws {
        let (vision, text) = try BLIP.configs(JSONConfig(values: [:], file: "config.json"))
        XCTAssertEqual([vision.hiddenSize, vision.intermediateSize, vision.layers, vision.heads, vision.imageSize, vision.patchSize],
                       [768, 3072, 12, 12, 384, 16])
        XCTAssertEqual(vision.layerNormEps, 1e-5)
        XCTAssertEqual(vision.gridSize, 24)
        XCTAssertEqual(vision.sequenceLength, 577)
        XCTAssertEqual([text.vocabSize, text.hiddenSize, text.intermediateSize, text.layers, text.heads, text.positions],
                       [30524, 768, 3072, 12, 8, 512])
        XCTAssertEqual(text.layerNormEps, 1e-12)
        XCTAssertEqual(text.activation, .gelu)
        XCTAssertEqual([text.bosTokenId, text.sepTokenId], [30522, 102])
        XCTAssertEqual(text.padTokenId, 0)
        XCTAssertEqual(text.eosTokenId, 2)
        // BlipConfig.__post_init__: encoder_hidden_size := vision_config.hidden_size, whatever text_config says.
        let odd = JSONConfig(values: ["vision_config": ["hidden_size": 64, "num_attention_heads": 4, "image_size": [32, 32], "patch_size": 8],
                                      "text_config": ["encoder_hidden_size": 999]], file: "config.json")
        let (v2, t2) = try BLIP.configs(odd)
        XCTAssertEqual(t2.encoderHiddenSize, 64)
        XCTAssertEqual(v2.imageSize, 32)
        XCTAssertThrowsError(try BLIP.configs(JSONConfig(values: ["vision_config": ["image_size": [32, 48]]], file: "config.json")))
        XCTAssertThrowsError(try BLIP.configs(JSONConfig(values: ["text_config": ["is_decoder": false]], file: "config.json")))
    }

    func testLoadsEveryCheckpointTensorAndNamesMissingOnes() throws {
        let f = try fixture()
        XCTAssertEqual(f.weights.unusedTensorNames(), [], "every tensor of a BlipForConditionalGeneration checkpoint is used")
        XCTAssertEqual(f.encoder.patches, PatchRows(first: 1, grid: 4))
        XCTAssertEqual(f.encoder.patches.rows, 1..<17)
        XCTAssertEqual(f.encoder.sequenceLength, 17)
        XCTAssertEqual(f.decoder.vocabularySize, f.reference.info("scene_64x64.logits")?.shape.last)
        // A missing tensor is an error naming its full checkpoint name.
        let empty = try SafeTensorsFile(url: f.directory.appendingPathComponent("reference.safetensors"))
        XCTAssertThrowsError(try BLIP().load(config: f.config, weights: WeightLoader(file: empty))) { error in
            XCTAssertTrue("\(error)".contains("vision_model.embeddings.class_embedding"), "\(error)")
        }
    }

    // MARK: tied prediction head (transformers 5 ties symmetrically; both present and different: untied)

    /// Teacher-forced logits [T, V] of the first image with the checkpoint rewritten by `edit`
    /// (name -> tensor; nil removes) and config.json rewritten by `editConfig`.
    private func logits(_ f: ParityFixture, edit: (inout [String: Tensor]) -> Void,
                        editConfig: (inout [String: Any]) -> Void = { _ in }) throws -> [Float] {
        let source = try SafeTensorsFile(url: f.directory.appendingPathComponent("model.safetensors"))
        var tensors: [String: Tensor] = [:]
        for name in source.tensorNames { tensors[name] = try source.tensor(name) }
        edit(&tensors)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-blip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        try SafeTensorsWriter.write(tensors, to: url)
        var values = f.config.values
        editConfig(&values)
        let weights = try WeightLoader(files: [SafeTensorsFile(url: url)])
        let (encoder, decoder) = try BLIP().load(config: JSONConfig(values: values, file: "config.json"), weights: weights)
        XCTAssertEqual(weights.unusedTensorNames(), [])
        let image = try XCTUnwrap(f.imageNames.first)
        let pixels = try f.reference.tensor("\(image).pixel_values")
        let hidden = encoder.encode(pixelValues: pixels.data, count: 1)
        let state = decoder.makeState(beamCapacity: 1, lengthCapacity: decoder.maxPositions)
        decoder.setEncoderStates(hidden.data, rows: encoder.sequenceLength, state: state)
        let ids = try f.ints("teacher_forced_ids")
        let out = decoder.forward(tokens: ids, state: state, allPositions: true, captureCrossAttention: false)
        return Array(UnsafeBufferPointer(start: out, count: ids.count * decoder.vocabularySize))
    }

    func testPredictionHeadTying() throws {
        let f = try fixture()
        let words = "text_decoder.bert.embeddings.word_embeddings.weight"
        let head = "text_decoder.cls.predictions"
        let base = try logits(f, edit: { _ in })
        let vocab = f.decoder.vocabularySize
        let bias = try WeightLoader(files: [SafeTensorsFile(url: f.directory.appendingPathComponent("model.safetensors"))])
            .tensor("\(head).bias", shape: [vocab]).scalars
        func negated(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, values: t.scalars.map { -$0 }) }

        // Both decoder.weight and word_embeddings present and different: the head uses decoder.weight,
        // and decoder.bias (present, different from cls.predictions.bias) is the bias added.
        let untied = try logits(f, edit: { t in
            if let w = t[words] { t["\(head).decoder.weight"] = negated(w) }
            if let b = t["\(head).bias"] { t["\(head).decoder.bias"] = Tensor(shape: b.shape, values: b.scalars.map { $0 + 1 }) }
        })
        var worst: Float = 0
        for i in base.indices {
            // base = b + x·W; untied = (b + 1) - x·W  =>  base + untied = 2b + 1
            worst = max(worst, abs(base[i] + untied[i] - (2 * bias[i % vocab] + 1)))
        }
        XCTAssertLessThanOrEqual(worst, 1e-3, "untied head")

        // Only decoder.weight present: the tie runs the other way (it also serves as word_embeddings).
        let swapped = try logits(f, edit: { t in t["\(head).decoder.weight"] = t[words]; t[words] = nil })
        XCTAssertEqual(swapped, base)

        // Untied by config and no decoder.weight: an error naming the tensor.
        XCTAssertThrowsError(try logits(f, edit: { _ in }, editConfig: { c in
            c["tie_word_embeddings"] = false
            var text = c["text_config"] as? [String: Any] ?? [:]
            text["tie_word_embeddings"] = false
            c["text_config"] = text
        })) { error in XCTAssertTrue("\(error)".contains("\(head).decoder.weight"), "\(error)") }
    }

    // MARK: prompt and generation rules

    func testDecoderPromptRule() throws {
        let f = try fixture(), blip = BLIP()
        let bos = try f.int("bos_token_id"), sep = try f.int("sep_token_id")
        // The family's defaults start the decoder with bos ([DEC]).
        let p = try blip.generationDefaults(GenerationParameters(modelDirectory: f.directory, config: f.config), config: f.config)
        XCTAssertEqual(p.decoderStartTokenId, bos)
        // generate(): input_ids[:, 0] = bos; input_ids[:, :-1]  ([CLS] a picture of [SEP] -> [DEC] a picture of)
        let processed = try f.ints("processor_prompt_input_ids")
        XCTAssertEqual(try blip.decoderPrompt(generateInputIds: processed, parameters: p), try f.ints("prompt_ids"))
        // No prompt: [[bos, eos]][:, :-1] = [bos].
        XCTAssertEqual(try blip.decoderPrompt(generateInputIds: nil, parameters: p), [bos])
        XCTAssertThrowsError(try blip.decoderPrompt(generateInputIds: [], parameters: p))
        XCTAssertThrowsError(try blip.decoderPrompt(generateInputIds: [2], parameters: p))
        // The first and last ids are replaced/dropped whatever they are, as transformers does.
        XCTAssertEqual(try blip.decoderPrompt(generateInputIds: [7, 8, 9], parameters: p), [bos, 8])
        // The same from the text, encoded without special tokens by the checkpoint's tokenizer.
        let tokenizer = try TokenizerLoader.load(directory: f.directory)
        let text = try XCTUnwrap(f.json["prompt_text"] as? String)
        XCTAssertEqual(tokenizer.encode(text), Array(processed.dropFirst().dropLast()))
        XCTAssertEqual(blip.decoderPrompt(text, tokenizer: tokenizer, parameters: p), try f.ints("prompt_ids"))
        XCTAssertEqual(blip.decoderPrompt(nil, tokenizer: tokenizer, parameters: p), [bos])

        XCTAssertEqual(p.eosTokenIds, [sep])
        XCTAssertEqual(p.padTokenId, try f.int("pad_token_id"))
        // generation_config.json (max_length 20 here) is ignored by BLIP's generate: 20 new tokens, greedy.
        XCTAssertEqual(p.resolvedMaxLength(promptLength: 1), 21)
        XCTAssertEqual(p.resolvedMaxLength(promptLength: 4), 24)
        XCTAssertEqual(p.beamWidth, 1)
        XCTAssertEqual(p, { var d = GenerationParameters(); d.maxNewTokens = 20; d.decoderStartTokenId = bos
                            d.eosTokenIds = [sep]; d.padTokenId = p.padTokenId; return d }())
        // The registry finds the same family from config.json.
        XCTAssertEqual(try ModelFamilies.family(for: f.config).name, blip.name)
    }
}
