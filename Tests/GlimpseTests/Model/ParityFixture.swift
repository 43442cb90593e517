import Foundation
import XCTest
@testable import Glimpse

/// A model fixture made by tools/make_fixtures.py: an HF model directory plus transformers'
/// reference tensors (reference.safetensors) and generate() cases (reference.json).
struct ParityFixture {
    /// Every captioning fixture directory (Fixtures/models/*/reference.json) of a family that takes no
    /// task prompt, sorted: what the generic parity tests walk (Florence2ParityTests has its own cases).
    static var names: [String] { names { ($0 as? any CaptionFamily)?.taskTokens.isEmpty == true } }

    /// The fixture directories whose config.json the registry gives a family `matching`, sorted.
    static func names(matching: (any ModelFamily) -> Bool) -> [String] {
        guard let base = Bundle.module.url(forResource: "Fixtures/models", withExtension: nil),
              let entries = try? FileManager.default.contentsOfDirectory(atPath: base.path) else { return [] }
        return entries.filter { name in
            let directory = base.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("reference.json").path) else { return false }
            // A fixture no family recognizes is kept, so the test that loads it fails naming it.
            return (try? ModelFamilies.family(directory: directory)).map(matching) ?? true
        }.sorted()
    }

    let name: String
    let directory: URL
    let config: JSONConfig
    let reference: SafeTensorsFile
    let json: [String: Any]
    let encoder: ImageEncoder
    let decoder: TextDecoder
    /// The checkpoint as loaded (its unused tensors are what `CaptionModel` would report).
    let weights: WeightLoader
    let family: any CaptionFamily
    /// The family's generation defaults (as `CaptionModel.defaults`).
    let defaults: GenerationParameters

    /// `weights` replaces model.safetensors (a pytorch_model.bin of the same model, say).
    init(_ name: String, weights replacement: URL? = nil) throws {
        guard let base = Bundle.module.url(forResource: "Fixtures/models/\(name)", withExtension: nil) else {
            throw XCTSkip("fixture models/\(name) missing")
        }
        self.name = name
        directory = base
        config = try JSONConfig(contentsOf: base.appendingPathComponent("config.json"))
        reference = try SafeTensorsFile(url: base.appendingPathComponent("reference.safetensors"))
        let data = try Data(contentsOf: base.appendingPathComponent("reference.json"))
        json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let file = try replacement.map { try SafeTensorsFile(pytorchCheckpoint: $0) } ?? SafeTensorsFile(url: base.appendingPathComponent("model.safetensors"))
        weights = try WeightLoader(files: [file])
        family = try ModelFamilies.captionFamily(for: config)
        (encoder, decoder) = try family.load(config: config, weights: weights)
        defaults = try family.generationDefaults(GenerationParameters(modelDirectory: base, config: config), config: config)
    }

    var imageNames: [String] { ((json["images"] as? [String: Any]) ?? [:]).keys.sorted() }
    var cases: [[String: Any]] { (json["cases"] as? [[String: Any]]) ?? [] }
    var teacherForcedIds: [Int] { (json["teacher_forced_ids"] as? [Int]) ?? [] }
    func int(_ key: String) throws -> Int { try XCTUnwrap(json[key] as? Int, "\(name)/reference.json lacks \(key)") }
    func ints(_ key: String) throws -> [Int] { try XCTUnwrap(json[key] as? [Int], "\(name)/reference.json lacks \(key)") }

    func tensor(_ name: String) throws -> Tensor { try reference.tensor(name) }

    /// Encoder hidden states [N, D] for one reference image (from transformers' pixel values).
    func encode(_ image: String) throws -> Tensor {
        let pixels = try tensor("\(image).pixel_values")
        return encoder.encode(pixelValues: pixels.data, count: 1)[index: 0]
    }

    /// Generates from one image's encoder states [N, D] as `CaptionModel.generate` does.
    func generate(_ hidden: Tensor, prompt: [Int], parameters: GenerationParameters) throws -> [GeneratedSequence] {
        let state = decoder.makeState(beamCapacity: parameters.beamWidth, lengthCapacity: decoder.maxPositions)
        decoder.setEncoderStates(hidden.data, rows: encoder.sequenceLength, state: state)
        return try Generator(decoder: decoder, parameters: parameters).generate(prompt: prompt, state: state)
    }

    /// GenerationParameters for a case's generate() kwargs on top of the family's defaults, read by
    /// the same reader as generation_config.json and the CLI; a kwarg Glimpse does not implement fails.
    func parameters(for kwargs: [String: Any], file: StaticString = #filePath, line: UInt = #line) throws -> GenerationParameters {
        var p = defaults
        let notImplemented = try p.set(transformersOptions: JSONConfig(values: kwargs, file: "\(directory.lastPathComponent)/reference.json kwargs"))
        XCTAssertEqual(notImplemented, [], "generate kwargs Glimpse does not implement", file: file, line: line)
        return p
    }

    /// The decoder prompt of a case: the family's rule applied to the ids it passed to generate
    /// (`decoder_input_ids`, or BLIP's processor `input_ids`), else the decoder start token.
    func prompt(for testCase: [String: Any], parameters: GenerationParameters) throws -> [Int] {
        let inputs = testCase["inputs"] as? [String: Any] ?? [:]
        let ids = ((inputs["decoder_input_ids"] ?? inputs["input_ids"]) as? [[Int]])?.first
        return try family.decoderPrompt(generateInputIds: ids, parameters: parameters)
    }
}

/// Layer `layer`'s captured cross-attention of `state` ([layer][row][head][encoderRows]) in torch's
/// `cross_attentions[layer]` layout [heads, rows, encoderRows], for `rows` scheduled rows.
func crossAttentionAsTorch(_ state: DecoderState, layer l: Int, rows t: Int, heads: Int) -> [Float] {
    let enc = state.encoderRows
    var out = [Float](repeating: 0, count: heads * t * enc)
    for h in 0..<heads { for r in 0..<t { for j in 0..<enc {
        out[(h * t + r) * enc + j] = state.crossAttention.pointer[((l * t + r) * heads + h) * enc + j]
    } } }
    return out
}

/// Asserts max |actual - expected| < tolerance over `count` floats (and that the counts agree).
func assertClose(_ actual: UnsafePointer<Float>, _ expected: Tensor, count: Int, tolerance: Float,
                 _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(expected.count, count, "\(what): element count", file: file, line: line)
    var worst: Float = 0, at = 0
    for i in 0..<min(count, expected.count) {
        let d = abs(actual[i] - expected.data[i])
        if !(d <= worst) { worst = d; at = i }
    }
    XCTAssertLessThan(worst, tolerance, "\(what): max |Δ| \(worst) at \(at)", file: file, line: line)
}

func assertClose(_ actual: [Float], _ expected: Tensor, count: Int, tolerance: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    actual.withUnsafeBufferPointer { buffer in
        if let base = buffer.baseAddress { assertClose(base, expected, count: count, tolerance: tolerance, what, file: file, line: line) }
    }
}
