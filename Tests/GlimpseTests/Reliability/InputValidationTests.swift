import Foundation
import XCTest
@testable import Glimpse

/// Sizes and values from options and configs are bounded and validated as transformers validates
/// them, before any work; a model whose parts do not fit together is refused at load; a NaN in the
/// learned heads is an error, never a trap. (Issue 14, items 8, 9, 10, 16, 19.)
final class InputValidationTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory() }
    override func tearDown() { scratch = nil }

    private func copyModel(_ name: String = "vit_gpt2_a") throws -> URL {
        let target = scratch.url.appendingPathComponent("model-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: try reliabilityModelDirectory(name), to: target)
        return target
    }

    private func editJSON(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
        var object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]) ?? [:]
        edit(&object)
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: url)
    }

    /// Rewrites `dir`'s model.safetensors with `change` applied to its tensors.
    private func rewriteWeights(_ dir: URL, _ change: (inout [String: (shape: [Int], values: [Float])]) -> Void) throws {
        let url = dir.appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(url: url)
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for name in file.tensorNames {
            let t = try file.tensor(name)
            tensors[name] = (t.shape, Array(UnsafeBufferPointer(start: t.data, count: t.count)))
        }
        change(&tensors)
        let entries = tensors.keys.sorted().map { SafeTensorsWriter.Entry(name: $0, shape: tensors[$0]!.shape, values: tensors[$0]!.values) }
        try SafeTensorsWriter.write(entries, to: url)
    }

    private func expectError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("no error; expected one mentioning \(fragments)", file: file, line: line)
        } catch {
            let text = String(describing: error)
            for f in fragments { XCTAssertTrue(text.contains(f), "\"\(text)\" lacks \"\(f)\"", file: file, line: line) }
        }
    }

    // MARK: generation options (items 8 and 16)

    func testGenerationOptionsAreBoundedAndValidatedAsTransformersDoes() throws {
        func with(_ change: (inout GenerationParameters) -> Void) -> GenerationParameters {
            var p = GenerationParameters()
            p.beamWidth = 3
            p.returnCount = 1
            change(&p)
            return p
        }
        XCTAssertNoThrow(try with { _ in }.validate())
        // A negative length penalty is legal in transformers (it favours short sequences).
        XCTAssertNoThrow(try with { $0.lengthPenalty = -10 }.validate())
        expectError(["length_penalty", "finite"]) { try with { $0.lengthPenalty = .nan }.validate() }
        expectError(["length_penalty", "finite"]) { try with { $0.lengthPenalty = .infinity }.validate() }
        expectError(["repetition_penalty"]) { try with { $0.repetitionPenalty = .nan }.validate() }
        expectError(["num_beams", "1024", "\(Int.max)"]) { try with { $0.beamWidth = .max }.validate() }
        expectError(["num_beams", "(got 0)"]) { try with { $0.beamWidth = 0 }.validate() }
        expectError(["max_new_tokens", "32768"]) { try with { $0.maxNewTokens = .max }.validate() }
        expectError(["max_length"]) { try with { $0.maxLength = .max }.validate() }
        expectError(["no_repeat_ngram_size"]) { try with { $0.noRepeatNgramSize = .max }.validate() }
        expectError(["min_new_tokens"]) { try with { $0.minNewTokens = -1 }.validate() }
        // transformers: "num_return_sequences has to be smaller or equal to num_beams"; not clamped.
        expectError(["num_return_sequences (4)", "num_beams (3)"]) { try with { $0.returnCount = 4 }.validate() }
        expectError(["greedy", "num_return_sequences 2"]) { try with { $0.beamWidth = 1; $0.returnCount = 2 }.validate() }
        // Int.max new tokens no longer overflow promptLength + n downstream: refused up front.
        XCTAssertEqual(with { $0.maxNewTokens = GenerationParameters.maxTokens }.resolvedMaxLength(promptLength: 5), 5 + 32768)
    }

    func testGenerationConfigValuesAreCheckedWhenTheModelLoads() throws {
        let cases: [([String: Any], [String])] = [
            (["num_beams": 100_000], ["generation_config.json", "num_beams", "100000", "1...1024"]),
            (["num_beams": 2, "num_return_sequences": 4], ["generation_config.json", "num_return_sequences (4)", "num_beams (2)"]),
            (["eos_token_id": [0.7]], ["generation_config.json", "eos_token_id", "integers"]),
            (["pad_token_id": [2.5]], ["generation_config.json", "pad_token_id"]),
            (["max_new_tokens": 1e12], ["generation_config.json", "max_new_tokens"]),
            (["length_penalty": "long"], ["generation_config.json", "length_penalty"]),
        ]
        for (values, fragments) in cases {
            let dir = try copyModel()
            try editJSON(dir.appendingPathComponent("generation_config.json")) { c in
                for (k, v) in values { c[k] = v }
            }
            expectError(fragments) { _ = try CaptionModel(directory: dir) }
        }
        // Integral values in a list still read, as transformers reads them.
        let dir = try copyModel()
        try editJSON(dir.appendingPathComponent("generation_config.json")) { $0["eos_token_id"] = [1, 2.0] }
        XCTAssertEqual(try CaptionModel(directory: dir).defaults.eosTokenIds, [1, 2])
    }

    func testShardArithmeticCannotOverflow() throws {
        let huge = try Shard(index: Int.max - 1, count: Int.max)
        XCTAssertEqual(huge.range(of: 10), 9..<10)
        XCTAssertEqual(try Shard(parsing: "9223372036854775806/9223372036854775807").range(of: 1_000_000), 999_999..<1_000_000)
        XCTAssertEqual(try Shard(index: 0, count: Int.max).range(of: 10), 0..<0)
        // Small shards are unchanged: 10 items in 3 shards.
        XCTAssertEqual(try (0..<3).map { try Shard(index: $0, count: 3).range(of: 10) }, [0..<3, 3..<6, 6..<10])
    }

    /// The decoder caches are budgeted from the model's sizes before they are allocated.
    func testMemoryIsBudgetedBeforeAllocating() throws {
        let model = try CaptionModel(directory: try reliabilityModelDirectory())
        var p = model.defaults
        p.beamWidth = 8
        let small = model.memoryEstimate(p, captureAttention: false)
        p.beamWidth = 16
        let double = model.memoryEstimate(p, captureAttention: false)
        XCTAssertGreaterThan(double, 1.9 * small - 4 * 1e5)
        XCTAssertGreaterThan(model.memoryEstimate(p, captureAttention: true), double)
        XCTAssertGreaterThan(model.memoryEstimate(p, captureAttention: false, encoderBatch: 64), double)
        XCTAssertNoThrow(try model.checkResources(p, captureAttention: true, encoderBatch: 64))
        expectError(["num_beams 16", "memory budget", "--beams"]) {
            try model.checkResources(p, captureAttention: false, budget: small)
        }
        // Every term counted: KV caches = 2 · layers · beams · positions · E floats at least.
        let positions = Double(min(p.resolvedMaxLength(promptLength: 1), model.decoder.maxPositions))
        XCTAssertGreaterThanOrEqual(double, 4 * 2 * Double(model.decoder.layerCount) * 16 * positions * Double(model.decoder.hiddenSize))
    }

    // MARK: model parts that must fit together (items 10 and 16)

    /// num_channels 4 with matching patch weights: the processor makes 3 channels, so the load fails
    /// (it used to read past the pixel buffer).
    func testEncoderChannelsMustMatchThePreprocessor() throws {
        let dir = try copyModel()
        let name = "encoder.embeddings.patch_embeddings.projection.weight"
        try rewriteWeights(dir) { t in
            let shape = t[name]!.shape      // [D, 3, P, P]
            let four = [shape[0], 4, shape[2], shape[3]]
            t[name] = (four, [Float](repeating: 0.01, count: four.reduce(1, *)))
        }
        try editJSON(dir.appendingPathComponent("config.json")) { c in
            var encoder = c["encoder"] as! [String: Any]
            encoder["num_channels"] = 4
            c["encoder"] = encoder
        }
        expectError(["config.json", "num_channels 4", "3-channel"]) { _ = try CaptionModel(directory: dir) }
    }

    func testTokenizerMustCoverTheDecoderVocabulary() throws {
        let dir = try copyModel()
        let model = try CaptionModel(directory: dir)
        let vocab = model.decoder.vocabularySize
        XCTAssertGreaterThanOrEqual(model.tokenizer.vocabularySize, vocab)
        let bigger = model.tokenizer.vocabularySize + 16
        try rewriteWeights(dir) { t in
            for (name, value) in t where value.shape.first == vocab && (name.hasSuffix("wte.weight") || name.hasSuffix("lm_head.weight")) {
                let e = value.shape[1]
                t[name] = ([bigger, e], value.values + [Float](repeating: 0, count: (bigger - vocab) * e))
            }
        }
        try editJSON(dir.appendingPathComponent("config.json")) { c in
            var decoder = c["decoder"] as! [String: Any]
            decoder["vocab_size"] = bigger
            c["decoder"] = decoder
        }
        expectError(["tokenizer has \(model.tokenizer.vocabularySize) tokens", "\(bigger)"]) { _ = try CaptionModel(directory: dir) }
    }

    /// The shipped model's ViT pooler is expected to be unused (VisionEncoderDecoderModel drops it):
    /// no note on every run. A tensor no family expects is still reported.
    func testFamiliesDeclareTheTensorsTheyIgnore() throws {
        let root = DefaultModelTests.root.appendingPathComponent("models/default")
        let file = try SafeTensorsFile(url: root.appendingPathComponent("model.safetensors"))
        XCTAssertTrue(file.tensorNames.contains { $0.hasPrefix("encoder.pooler.") }, "the shipped checkpoint carries the pooler")
        XCTAssertEqual(try CaptionModel(directory: root).unusedTensors, [])
        let dir = try copyModel()
        try rewriteWeights(dir) { t in
            t["encoder.pooler.dense.bias"] = ([2], [0, 0])
            t["decoder.transformer.h.0.attn.masked_bias"] = ([1], [0])
            t["decoder.stray.weight"] = ([2], [0, 0])
        }
        XCTAssertEqual(try CaptionModel(directory: dir).unusedTensors, ["decoder.stray.weight"])
    }

    // MARK: learned heads (item 9)

    /// The shipped model with one NaN in heads.safetensors (files linked, the heads copied).
    private func defaultModelWithNaNHeads() throws -> URL {
        let root = DefaultModelTests.root.appendingPathComponent("models/default")
        let dir = scratch.url.appendingPathComponent("nan-heads")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: root.path) where name != "heads.safetensors" {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(name), withDestinationURL: root.appendingPathComponent(name))
        }
        let heads = try SafeTensorsFile(url: root.appendingPathComponent("heads.safetensors"))
        var entries: [SafeTensorsWriter.Entry] = []
        for name in heads.tensorNames {
            let t = try heads.tensor(name)
            var values = Array(UnsafeBufferPointer(start: t.data, count: t.count))
            if name == "det.fc2.bias" { values[0] = .nan }
            entries.append(.init(name: name, shape: t.shape, values: values))
        }
        try SafeTensorsWriter.write(entries, to: dir.appendingPathComponent("heads.safetensors"))
        return dir
    }

    func testNaNInTheHeadsIsAnErrorRecordAndCheckWeightsFindsIt() throws {
        let dir = try defaultModelWithNaNHeads()
        expectError(["heads.safetensors", "det.fc2.bias", "non-finite"]) { _ = try CaptionModel(directory: dir, checkWeights: true) }
        let model = try CaptionModel(directory: dir)
        var request = CaptionRequest(parameters: model.defaults)
        request.detect = true
        let pipeline = try RecordPipeline(model: model, request: request)
        let image = DefaultModelTests.root.appendingPathComponent("samples/two-shapes-left-of.png").path
        let record = pipeline.record(for: Captioner(model: model, beamWidth: model.defaults.beamWidth).caption(file: image, request: request), file: image)
        let error = try XCTUnwrap(record.error, "a record with detections from NaN heads")
        XCTAssertTrue(error.contains("heads.safetensors") && error.contains("NaN"), error)
        XCTAssertNil(record.captions)
    }

    func testPixelBoxIsTotalForAnyFloat() {
        let box = LearnedHeads.pixelBox([.nan, .infinity, -.infinity, 1e30], width: 40, height: 30)
        XCTAssertTrue((0..<40).contains(box.x) && (0..<30).contains(box.y))
        XCTAssertTrue(box.width >= 1 && box.x + box.width <= 40 && box.height >= 1 && box.y + box.height <= 30, "\(box)")
    }

    // MARK: messages (item 19)

    /// Valid JSON whose values do not fit names the key (it used to say "malformed JSON").
    func testOutOfRangeConfigValuesNameTheKey() throws {
        let url = scratch.url.appendingPathComponent("preprocessor_config.json")
        for (json, fragments) in [(#"{"size": {"height": 1e30, "width": 224}}"#, ["[size]", "'height'"]),
                                  (#"{"resample": 3.5}"#, ["'resample'", "not an integer"]),
                                  (#"{"resample": 9}"#, ["'resample'", "9"]),
                                  (#"{"image_mean": [0.5, "x", 0.5]}"#, ["'image_mean'"]),
                                  (#"{"size": {"height": 100000, "width": 224}}"#, ["[size]", "'height' = 100000", "1...8192"]),
                                  (#"{"do_resize": 1.5}"#, ["'do_resize'", "boolean"])] {
            try Data(json.utf8).write(to: url)
            expectError([url.path] + fragments) { _ = try ImagePreprocessor(contentsOf: url) }
            do { _ = try ImagePreprocessor(contentsOf: url) } catch {
                XCTAssertFalse(String(describing: error).contains("malformed"), "\(error)")
            }
        }
        try Data("{\"size\": ".utf8).write(to: url)
        expectError([url.path, "not valid JSON"]) { _ = try ImagePreprocessor(contentsOf: url) }
    }

    func testDirectoriesAndFIFOsAreNamedForWhatTheyAre() throws {
        let dir = try scratch.directory("photos")
        expectError(["photos", "is a directory", "glimpse batch"]) { _ = try ImageDecoder.decode(contentsOf: dir) }
        let fifo = scratch.url.appendingPathComponent("pipe.png")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        // Refused from its type: opening it would block until a writer came.
        expectError(["pipe.png", "FIFO"]) { _ = try ImageDecoder.decode(contentsOf: fifo) }
        expectError(["/dev/null", "character device"]) { _ = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: "/dev/null")) }
        expectError(["missing.png", "no such file"]) { _ = try ImageDecoder.decode(contentsOf: scratch.url.appendingPathComponent("missing.png")) }
    }
}
