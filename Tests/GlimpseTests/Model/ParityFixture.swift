import Foundation
import XCTest
@testable import Glimpse

/// A model fixture made by tools/make_fixtures.py: an HF model directory plus transformers'
/// reference tensors (reference.safetensors) and generate() cases (reference.json).
struct ParityFixture {
    let directory: URL
    let config: JSONConfig
    let reference: SafeTensorsFile
    let json: [String: Any]
    let encoder: ImageEncoder
    let decoder: TextDecoder
    let defaults: GenerationParameters

    /// `weights` replaces model.safetensors (a pytorch_model.bin of the same model, say).
    init(_ name: String, weights: URL? = nil) throws {
        guard let base = Bundle.module.url(forResource: "Fixtures/models/\(name)", withExtension: nil) else {
            throw XCTSkip("fixture models/\(name) missing")
        }
        directory = base
        config = try JSONConfig(contentsOf: base.appendingPathComponent("config.json"))
        reference = try SafeTensorsFile(url: base.appendingPathComponent("reference.safetensors"))
        let data = try Data(contentsOf: base.appendingPathComponent("reference.json"))
        json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let file = try weights.map { try SafeTensorsFile(pytorchCheckpoint: $0) } ?? SafeTensorsFile(url: base.appendingPathComponent("model.safetensors"))
        let weights = try WeightLoader(files: [file])
        switch try ModelFamily.detect(config) {
        case .visionEncoderDecoder: (encoder, decoder) = try VisionEncoderDecoder.load(config: config, weights: weights)
        case .blip: (encoder, decoder) = try BLIP.load(config: config, weights: weights)
        }
        defaults = try GenerationParameters(modelDirectory: base, config: config)
    }

    var imageNames: [String] { ((json["images"] as? [String: Any]) ?? [:]).keys.sorted() }
    var cases: [[String: Any]] { (json["cases"] as? [[String: Any]]) ?? [] }
    var teacherForcedIds: [Int] { (json["teacher_forced_ids"] as? [Int]) ?? [] }

    func tensor(_ name: String) throws -> Tensor { try reference.tensor(name) }

    /// Encoder hidden states [N, D] for one reference image (from transformers' pixel values).
    func encode(_ image: String) throws -> Tensor {
        let pixels = try tensor("\(image).pixel_values")
        return encoder.encode(pixelValues: pixels.data, count: 1)[index: 0]
    }

    /// GenerationParameters for a case's generate() kwargs, on top of the checkpoint defaults.
    func parameters(for kwargs: [String: Any]) -> GenerationParameters {
        var p = defaults
        if let v = kwargs["num_beams"] as? Int { p.beamWidth = v }
        if let v = kwargs["max_new_tokens"] as? Int { p.maxNewTokens = v }
        if let v = kwargs["min_new_tokens"] as? Int { p.minNewTokens = v }
        if let v = kwargs["length_penalty"] as? Double { p.lengthPenalty = Float(v) }
        if let v = kwargs["no_repeat_ngram_size"] as? Int { p.noRepeatNgramSize = v }
        if let v = kwargs["repetition_penalty"] as? Double { p.repetitionPenalty = Float(v) }
        if let v = kwargs["num_return_sequences"] as? Int { p.returnCount = v }
        if let v = kwargs["early_stopping"] as? String, v == "never" { p.earlyStopping = .never }
        else if let v = kwargs["early_stopping"] as? Bool { p.earlyStopping = v ? .stopWhenFull : .heuristic }
        return p
    }

    /// The decoder prompt of a case: its decoder_input_ids / input_ids, else the decoder start token.
    func prompt(for testCase: [String: Any], parameters: GenerationParameters) -> [Int] {
        let inputs = testCase["inputs"] as? [String: Any] ?? [:]
        if let ids = (inputs["decoder_input_ids"] ?? inputs["input_ids"]) as? [[Int]], let first = ids.first { return first }
        return [parameters.decoderStartTokenId]
    }
}

/// Max |a - b| over two equally long buffers.
func maxAbsDifference(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var worst: Float = 0
    for i in 0..<count { worst = max(worst, abs(a[i] - b[i])) }
    return worst
}
