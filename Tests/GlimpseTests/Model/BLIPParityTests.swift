import Foundation
import XCTest
@testable import Glimpse

/// Parity of the BLIP family with transformers 5.24 on the random tiny `BlipForConditionalGeneration`
/// in Fixtures/models/blip_tiny (written by tools/make_fixtures.py; names in Fixtures/models/README.md).
final class BLIPParityTests: XCTestCase {
    /// Everything a test needs, loaded once.
    final class Fixture {
        let directory: URL
        let config: JSONConfig
        let reference: [String: Any]
        let tensors: SafeTensorsFile
        let encoder: ImageEncoder
        let decoder: TextDecoder
        let weights: WeightLoader

        init() throws {
            guard let dir = Bundle.module.url(forResource: "blip_tiny", withExtension: nil, subdirectory: "Fixtures/models") else {
                throw XCTSkip("Fixtures/models/blip_tiny is missing (run tools/make_fixtures.py --only blip_tiny)")
            }
            directory = dir
            config = try JSONConfig(contentsOf: dir.appendingPathComponent("config.json"))
            let data = try Data(contentsOf: dir.appendingPathComponent("reference.json"))
            reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            tensors = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
            weights = try WeightLoader(files: [SafeTensorsFile(url: dir.appendingPathComponent("model.safetensors"))])
            (encoder, decoder) = try BLIP.load(config: config, weights: weights)
        }

        var imageNames: [String] { ((reference["images"] as? [String: Any]) ?? [:]).keys.sorted() }
        func int(_ key: String) throws -> Int { try XCTUnwrap(reference[key] as? Int, "reference.json lacks \(key)") }
        func ints(_ key: String) throws -> [Int] { try XCTUnwrap(reference[key] as? [Int], "reference.json lacks \(key)") }

        /// The vision model's output for `image` (computed by Glimpse from the reference pixel values).
        func encode(_ image: String) throws -> Tensor {
            let pixels = try tensors.tensor("\(image).pixel_values")
            return encoder.encode(pixelValues: pixels.data, count: 1)
        }
    }

    private static var cached: Result<Fixture, Error>?
    private func fixture() throws -> Fixture {
        if Self.cached == nil { Self.cached = Result { try Fixture() } }
        return try XCTUnwrap(Self.cached).get()
    }

    private func assertClose(_ actual: UnsafePointer<Float>, _ expected: Tensor, count: Int, tolerance: Float,
                             _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(expected.count, count, "\(what): element count", file: file, line: line)
        var worst: Float = 0, at = 0
        for i in 0..<min(count, expected.count) {
            let d = abs(actual[i] - expected.data[i])
            if !(d <= worst) { worst = d; at = i }
        }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): max |Δ| \(worst) at \(at)", file: file, line: line)
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
        XCTAssertEqual(f.encoder.gridSize, 4)
        XCTAssertEqual(f.encoder.patchOffset, 1)
        XCTAssertEqual(f.encoder.sequenceLength, 17)
        XCTAssertEqual(f.decoder.vocabularySize, f.tensors.info("scene_64x64.logits")?.shape.last)
        // A missing tensor is an error naming its full checkpoint name.
        let empty = try SafeTensorsFile(url: f.directory.appendingPathComponent("reference.safetensors"))
        XCTAssertThrowsError(try BLIP.load(config: f.config, weights: WeightLoader(file: empty))) { error in
            XCTAssertTrue("\(error)".contains("vision_model.embeddings.class_embedding"), "\(error)")
        }
    }

    // MARK: tied prediction head (transformers 5 ties symmetrically; both present and different: untied)

    /// Teacher-forced logits [T, V] of the first image with the checkpoint rewritten by `edit`
    /// (name -> tensor; nil removes) and config.json rewritten by `editConfig`.
    private func logits(_ f: Fixture, edit: (inout [String: Tensor]) -> Void,
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
        let (encoder, decoder) = try BLIP.load(config: JSONConfig(values: values, file: "config.json"), weights: weights)
        XCTAssertEqual(weights.unusedTensorNames(), [])
        let image = try XCTUnwrap(f.imageNames.first)
        let pixels = try f.tensors.tensor("\(image).pixel_values")
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
        let f = try fixture()
        let bos = try f.int("bos_token_id"), sep = try f.int("sep_token_id")
        // generate(): input_ids[:, 0] = bos; input_ids[:, :-1]  ([CLS] a picture of [SEP] -> [DEC] a picture of)
        let processed = try f.ints("processor_prompt_input_ids")
        XCTAssertEqual(try BLIP.decoderPrompt(tokenizedPrompt: processed, bosTokenId: bos), try f.ints("prompt_ids"))
        // No prompt: [[bos, eos]][:, :-1] = [bos].
        XCTAssertEqual(try BLIP.decoderPrompt(tokenizedPrompt: nil, bosTokenId: bos), [bos])
        XCTAssertThrowsError(try BLIP.decoderPrompt(tokenizedPrompt: [], bosTokenId: bos))
        XCTAssertThrowsError(try BLIP.decoderPrompt(tokenizedPrompt: [2], bosTokenId: bos))
        // The first and last ids are replaced/dropped whatever they are, as transformers does.
        XCTAssertEqual(try BLIP.decoderPrompt(tokenizedPrompt: [7, 8, 9], bosTokenId: bos), [bos, 8])
        // The same from ids encoded without special tokens.
        let words = Array(processed.dropFirst().dropLast())
        XCTAssertEqual(BLIP.decoderPrompt("a picture of", encode: { _ in words }, bosTokenId: bos), try f.ints("prompt_ids"))
        XCTAssertEqual(BLIP.decoderPrompt(nil, encode: { _ in words }, bosTokenId: bos), [bos])

        var p = try GenerationParameters(modelDirectory: f.directory, config: f.config)
        try BLIP.adjustDefaults(&p, config: f.config)
        XCTAssertEqual(p.decoderStartTokenId, bos)
        XCTAssertEqual(p.eosTokenIds, [sep])
        XCTAssertEqual(p.padTokenId, try f.int("pad_token_id"))
        // generation_config.json (max_length 20 here) is ignored by BLIP's generate: 20 new tokens, greedy.
        XCTAssertEqual(p.resolvedMaxLength(promptLength: 1), 21)
        XCTAssertEqual(p.resolvedMaxLength(promptLength: 4), 24)
        XCTAssertEqual(p.beamWidth, 1)
        XCTAssertEqual(p, { var d = GenerationParameters(); d.maxNewTokens = 20; d.decoderStartTokenId = bos
                            d.eosTokenIds = [sep]; d.padTokenId = p.padTokenId; return d }())
    }

    // MARK: numerical parity

    func testVisionHiddenStates() throws {
        let f = try fixture()
        for image in f.imageNames {
            let hidden = try f.encode(image)
            let expected = try f.tensors.tensor("\(image).encoder_hidden")
            XCTAssertEqual(hidden.shape, expected.shape)
            assertClose(hidden.data, expected, count: hidden.count, tolerance: 1e-4, "\(image) vision last_hidden_state")
        }
    }

    func testBatchedVisionEqualsOneByOne() throws {
        let f = try fixture()
        let names = f.imageNames
        var pixels: [Float] = []
        for image in names { pixels += try f.tensors.tensor("\(image).pixel_values").scalars }
        let batch = pixels.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map { f.encoder.encode(pixelValues: $0, count: names.count) }
        }
        let together = try XCTUnwrap(batch)
        XCTAssertEqual(together.shape, [names.count, f.encoder.sequenceLength, f.encoder.hiddenSize])
        for (i, image) in names.enumerated() {
            let alone = try f.encode(image)
            // Same math; only gemm blocking over more rows may round differently.
            assertClose(together[index: i].data, alone, count: alone.count, tolerance: 1e-5, "\(image) batched vs alone")
        }
    }

    func testTeacherForcedLogitsAndCrossAttention() throws {
        let f = try fixture()
        let ids = try f.ints("teacher_forced_ids")
        let layers = f.decoder.layerCount, heads = f.decoder.headCount, vocab = f.decoder.vocabularySize
        for image in f.imageNames {
            let hidden = try f.encode(image)
            let state = f.decoder.makeState(beamCapacity: 1, lengthCapacity: f.decoder.maxPositions)
            f.decoder.setEncoderStates(hidden.data, rows: f.encoder.sequenceLength, state: state)
            let logits = f.decoder.forward(tokens: ids, state: state, allPositions: true, captureCrossAttention: true)
            assertClose(logits, try f.tensors.tensor("\(image).logits"), count: ids.count * vocab, tolerance: 1e-3, "\(image) logits")

            // state: [layer][row][head][enc]; reference: cross_attentions.L [1, heads, T, enc]
            let enc = state.encoderRows, t = ids.count
            XCTAssertEqual(state.capturedRows, t)
            for l in 0..<layers {
                let expected = try f.tensors.tensor("\(image).cross_attentions.\(l)")
                var mine = [Float](repeating: 0, count: heads * t * enc)
                for h in 0..<heads {
                    for r in 0..<t {
                        for j in 0..<enc {
                            mine[(h * t + r) * enc + j] = state.crossAttention.pointer[((l * t + r) * heads + h) * enc + j]
                        }
                    }
                }
                assertClose(mine, expected, count: mine.count, tolerance: 1e-4, "\(image) cross-attention layer \(l)")
            }

            // The KV cache: feeding the same ids one at a time gives the same last-position logits.
            state.reset()
            var last: UnsafeMutablePointer<Float>?
            for id in ids { last = f.decoder.forward(tokens: [id], state: state, allPositions: false, captureCrossAttention: false) }
            let full = try f.tensors.tensor("\(image).logits")
            let lastRow = Tensor(shape: [vocab], storage: full.storage, offset: full.offset + (t - 1) * vocab)
            assertClose(try XCTUnwrap(last), lastRow, count: vocab, tolerance: 1e-3, "\(image) incremental logits")
        }
    }

    private func assertClose(_ actual: [Float], _ expected: Tensor, count: Int, tolerance: Float, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        actual.withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress { assertClose(base, expected, count: count, tolerance: tolerance, what, file: file, line: line) }
        }
    }

    // MARK: generation

    /// GenerationParameters for a case: checkpoint defaults, BLIP's explicit ids, then the case's kwargs.
    private func parameters(_ f: Fixture, kwargs: [String: Any]) throws -> GenerationParameters {
        var p = try GenerationParameters(modelDirectory: f.directory, config: f.config)
        try BLIP.adjustDefaults(&p, config: f.config)
        for (key, value) in kwargs {
            switch key {
            case "do_sample": XCTAssertEqual(value as? Bool, false)
            case "num_beams": p.beamWidth = try XCTUnwrap(value as? Int)
            case "max_new_tokens": p.maxNewTokens = try XCTUnwrap(value as? Int)
            case "min_new_tokens": p.minNewTokens = try XCTUnwrap(value as? Int)
            case "length_penalty": p.lengthPenalty = Float(try XCTUnwrap(value as? Double))
            case "no_repeat_ngram_size": p.noRepeatNgramSize = try XCTUnwrap(value as? Int)
            case "repetition_penalty": p.repetitionPenalty = Float(try XCTUnwrap(value as? Double))
            case "num_return_sequences": p.returnCount = try XCTUnwrap(value as? Int)
            case "early_stopping":
                if let s = value as? String, s == "never" { p.earlyStopping = .never }
                else { p.earlyStopping = try XCTUnwrap(value as? Bool) ? .stopWhenFull : .heuristic }
            default: XCTFail("kwarg \(key) not mapped")
            }
        }
        return p
    }

    func testGenerationCasesMatchTransformers() throws {
        let f = try fixture()
        let cases = try XCTUnwrap(f.reference["cases"] as? [[String: Any]])
        XCTAssertFalse(cases.isEmpty)
        let bos = try f.int("bos_token_id")
        var hidden: [String: Tensor] = [:]
        var checked = 0
        for c in cases {
            let label = try XCTUnwrap(c["label"] as? String), image = try XCTUnwrap(c["image"] as? String)
            let what = "\(image) \(label)"
            var p = try parameters(f, kwargs: try XCTUnwrap(c["kwargs"] as? [String: Any]))
            let wantMaps = c["cross_attentions_prefix"] != nil
            p.captureAttention = wantMaps
            let inputs = try XCTUnwrap(c["inputs"] as? [String: Any])
            let prompt = try BLIP.decoderPrompt(tokenizedPrompt: (inputs["input_ids"] as? [[Int]])?.first, bosTokenId: bos)
            if hidden[image] == nil { hidden[image] = try f.encode(image) }
            let states = try XCTUnwrap(hidden[image])
            let state = f.decoder.makeState(beamCapacity: p.beamWidth, lengthCapacity: f.decoder.maxPositions)
            f.decoder.setEncoderStates(states.data, rows: f.encoder.sequenceLength, state: state)
            let out = try Generator(decoder: f.decoder, parameters: p).generate(prompt: prompt, state: state)

            let expected = try XCTUnwrap(c["sequences"] as? [[Int]])
            XCTAssertEqual(out.count, expected.count, "\(what): returned sequences")
            let width = out.map(\.tokens.count).max() ?? 0
            for (i, seq) in out.enumerated() where i < expected.count {
                // transformers fills shorter returned hypotheses with `pad_token_id or eos_token_id[0]`
                let padded = seq.tokens + Array(repeating: p.outputFillTokenId, count: width - seq.tokens.count)
                XCTAssertEqual(padded, expected[i], "\(what): sequence \(i)")
                XCTAssertEqual(seq.promptLength, prompt.count)
            }
            if let scores = c["sequences_scores"] as? [Double] {
                for (i, s) in scores.enumerated() where i < out.count {
                    XCTAssertEqual(Double(out[i].score), s, accuracy: 1e-3, "\(what): sequences_scores[\(i)]")
                }
            }
            if wantMaps, let prefix = c["cross_attentions_prefix"] as? String, let seq = out.first {
                // Reference: teacher-forced over sequences[:, :-1]; row p = query at position p, i.e. the
                // one that produced token p + 1. Generated token S (at position P + S) came from row P - 1 + S.
                let layers = f.decoder.layerCount, heads = f.decoder.headCount, enc = f.encoder.sequenceLength
                XCTAssertEqual(seq.crossAttention.count, seq.tokens.count - prompt.count, "\(what): one map per generated token")
                for l in 0..<layers {
                    let ref = try f.tensors.tensor("\(prefix).\(l)")   // [1, heads, q, enc]
                    let q = ref.shape[2]
                    for (s, map) in seq.crossAttention.enumerated() {
                        let row = prompt.count - 1 + s
                        guard row < q else { XCTFail("\(what): step \(s) beyond the reference rows"); continue }
                        var worst: Float = 0
                        for h in 0..<heads {
                            for j in 0..<enc {
                                let mine = map[(l * heads + h) * enc + j]
                                let theirs = ref.data[(h * q + row) * enc + j]
                                worst = max(worst, abs(mine - theirs))
                            }
                        }
                        XCTAssertLessThanOrEqual(worst, 1e-4, "\(what): cross-attention step \(s) layer \(l)")
                    }
                }
            }
            checked += 1
        }
        XCTAssertEqual(checked, cases.count)
    }
}
