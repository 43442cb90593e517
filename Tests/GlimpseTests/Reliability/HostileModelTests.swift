import Foundation
import XCTest
@testable import Glimpse

/// Copies of the vit_gpt2_a fixture broken one way each. Loading (or captioning) must fail with an error
/// that names the file and the tensor or key at fault; nothing may trap or produce a caption from garbage.
final class HostileModelTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory() }
    override func tearDown() { scratch = nil }

    /// A fresh copy of the fixture model.
    private func copyModel() throws -> URL {
        let target = scratch.url.appendingPathComponent("model-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: try reliabilityModelDirectory(), to: target)
        return target
    }

    private func weights(_ dir: URL) -> URL { dir.appendingPathComponent("model.safetensors") }

    /// Rewrites the safetensors header of `dir`'s weights through `edit`, keeping the data section.
    private func editHeader(_ dir: URL, _ edit: (inout [String: [String: Any]]) -> Void) throws {
        let data = try Data(contentsOf: weights(dir))
        let length = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try XCTUnwrap(try JSONSerialization.jsonObject(with: data[8..<(8 + length)]) as? [String: [String: Any]])
        edit(&header)
        var json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        json += Array(repeating: UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        out.append(data[(8 + length)...])
        try out.write(to: weights(dir))
    }

    /// Overwrites tensor `name`'s values with `value` (F32).
    private func fill(_ dir: URL, tensor name: String, with value: Float) throws {
        var data = try Data(contentsOf: weights(dir))
        let length = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: data[8..<(8 + length)]) as? [String: [String: Any]])
        let offsets = try XCTUnwrap(header[name]?["data_offsets"] as? [Int])
        let bytes = withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) }
        for offset in stride(from: offsets[0], to: offsets[1], by: 4) {
            data.replaceSubrange((8 + length + offset)..<(8 + length + offset + 4), with: bytes)
        }
        try data.write(to: weights(dir))
    }

    private func editJSON(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&object)
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: url)
    }

    /// Loading `dir` must throw an error whose text holds every fragment.
    private func expectLoadError(_ dir: URL, _ fragments: [String], checkWeights: Bool = false,
                                 file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try CaptionModel(directory: dir, checkWeights: checkWeights)
            XCTFail("loaded a broken model; expected \(fragments)", file: file, line: line)
        } catch {
            let text = String(describing: error)
            for fragment in fragments {
                XCTAssertTrue(text.contains(fragment), "\"\(text)\" lacks \"\(fragment)\"", file: file, line: line)
            }
        }
    }

    private let wte = "decoder.transformer.wte.weight"

    func testTheUnmodifiedCopyLoads() throws {
        XCTAssertNoThrow(try CaptionModel(directory: try copyModel(), checkWeights: true))
    }

    func testWrongDType() throws {
        let dir = try copyModel()
        try editHeader(dir) { $0[wte]?["dtype"] = "I64" }
        expectLoadError(dir, [weights(dir).path, wte, "unsupported dtype I64"])
        // A supported dtype whose size disagrees with the byte range.
        try editHeader(dir) { $0[wte]?["dtype"] = "F16" }
        expectLoadError(dir, [weights(dir).path, wte, "F16", "needs 24576 bytes"])
    }

    func testOffsetsPastTheEnd() throws {
        let dir = try copyModel()
        try editHeader(dir) { header in
            let offsets = header[wte]?["data_offsets"] as! [Int]
            header[wte]?["data_offsets"] = [offsets[0] + 400_000, offsets[1] + 400_000]
        }
        expectLoadError(dir, [weights(dir).path, wte, "past the end of the data section"])
    }

    func testOverlappingTensors() throws {
        let dir = try copyModel()
        try editHeader(dir) { header in
            let offsets = header["encoder.layernorm.weight"]?["data_offsets"]
            header["encoder.layernorm.bias"]?["data_offsets"] = offsets
        }
        expectLoadError(dir, [weights(dir).path, "encoder.layernorm.bias", "encoder.layernorm.weight", "overlapping"])
    }

    func testConfigSizesThatDisagreeWithTheTensors() throws {
        let dir = try copyModel()
        let config = dir.appendingPathComponent("config.json")
        try editJSON(config) { c in
            var decoder = c["decoder"] as! [String: Any]
            decoder["vocab_size"] = 400
            c["decoder"] = decoder
        }
        expectLoadError(dir, [weights(dir).path, "decoder.transformer.wte.weight", "[384, 32]", "expected [400, 32]"])
        let fresh = try copyModel()
        try editJSON(fresh.appendingPathComponent("config.json")) { c in
            var encoder = c["encoder"] as! [String: Any]
            encoder["intermediate_size"] = 80
            c["encoder"] = encoder
        }
        expectLoadError(fresh, [weights(fresh).path, "encoder.encoder.layer.0.intermediate.dense.weight", "expected [80, 32]"])
        // A size no checkpoint could satisfy is refused as a config error naming the key.
        let wild = try copyModel()
        try editJSON(wild.appendingPathComponent("config.json")) { c in
            var decoder = c["decoder"] as! [String: Any]
            decoder["n_embd"] = 1e300
            c["decoder"] = decoder
        }
        expectLoadError(wild, ["config.json", "n_embd"])
    }

    func testMergesThatReferenceUnknownTokens() throws {
        let dir = try copyModel()
        // Without tokenizer.json the loader reads vocab.json + merges.txt.
        try FileManager.default.removeItem(at: dir.appendingPathComponent("tokenizer.json"))
        XCTAssertNoThrow(try CaptionModel(directory: dir), "vocab.json + merges.txt alone load")
        let merges = dir.appendingPathComponent("merges.txt")
        var text = try String(contentsOf: merges, encoding: .utf8)
        text += "zq\u{0120}xx qqz\n"
        try text.write(to: merges, atomically: true, encoding: .utf8)
        expectLoadError(dir, [merges.path, "zq\u{0120}xx"])
        // A vocabulary entry with an id that is not a number.
        let fresh = try copyModel()
        try FileManager.default.removeItem(at: fresh.appendingPathComponent("tokenizer.json"))
        try editJSON(fresh.appendingPathComponent("vocab.json")) { $0["ar"] = "seven" }
        expectLoadError(fresh, [fresh.appendingPathComponent("vocab.json").path, "ar"])
    }

    func testNaNWeightIsFoundByCheckWeights() throws {
        let dir = try copyModel()
        try fill(dir, tensor: "decoder.lm_head.weight", with: .nan)
        expectLoadError(dir, [weights(dir).path, "decoder.lm_head.weight", "non-finite"], checkWeights: true)
    }

    /// Without --check-weights the model loads, and captioning fails that image with nonFiniteLogits
    /// instead of emitting a caption chosen from NaN.
    func testNonFiniteWeightEndsGenerationWithAClearError() throws {
        for (tensor, value) in [("decoder.lm_head.weight", Float.nan), ("encoder.layernorm.weight", Float.nan),
                                ("decoder.transformer.ln_f.bias", Float.infinity)] {
            let dir = try copyModel()
            try fill(dir, tensor: tensor, with: value)
            let model = try CaptionModel(directory: dir)
            let image = scratch.url.appendingPathComponent("image.png")
            try Data(TestPNG.pattern(seed: 3)).write(to: image)
            for beams in [1, 3] {
                var parameters = model.defaults
                parameters.beamWidth = beams
                let result = Captioner(model: model, beamWidth: beams).caption(file: image.path, request: CaptionRequest(parameters: parameters))
                switch result {
                case .success(let r): XCTFail("\(tensor) = \(value), \(beams) beams: captioned \(r.texts)")
                case .failure(let error):
                    guard case ModelError.nonFiniteLogits = error else { return XCTFail("\(tensor): \(error)") }
                    XCTAssertTrue(String(describing: error).contains("--check-weights"))
                }
            }
        }
    }

    /// `--check-weights` on the CLI: the NaN tensor is named at load (exit 2); without it, the image
    /// fails with the logits error (exit 1) and nothing garbage is printed.
    func testCheckWeightsFlag() throws {
        _ = try GlimpseCLI.executable()
        let dir = try copyModel()
        let image = scratch.url.appendingPathComponent("image.png")
        try Data(TestPNG.pattern(seed: 5)).write(to: image)
        let clean = try GlimpseCLI.run(["caption", "--check-weights", "--model", dir.path, image.path], scratch: scratch.url)
        XCTAssertEqual(clean.status, 0, clean.stderr)
        try fill(dir, tensor: "decoder.lm_head.weight", with: .nan)
        let checked = try GlimpseCLI.run(["caption", "--check-weights", "--model", dir.path, image.path], scratch: scratch.url)
        XCTAssertEqual(checked.status, 2, checked.stderr)
        XCTAssertTrue(checked.stderr.contains("decoder.lm_head.weight") && checked.stderr.contains("non-finite"), checked.stderr)
        let unchecked = try GlimpseCLI.run(["caption", "--json", "--model", dir.path, image.path], scratch: scratch.url)
        XCTAssertEqual(unchecked.status, 1, unchecked.stderr)
        XCTAssertTrue(unchecked.stderr.contains("NaN or infinite logits"), unchecked.stderr)
        XCTAssertFalse(unchecked.stdout.contains("captions"), unchecked.stdout)
        let batchOut = scratch.url.appendingPathComponent("out.jsonl")
        let batch = try GlimpseCLI.run(["batch", scratch.url.path, "--check-weights", "--model", dir.path, "--out", batchOut.path, "--quiet"],
                                       scratch: scratch.url)
        XCTAssertEqual(batch.status, 2, batch.stderr)
        XCTAssertTrue(batch.stderr.contains("decoder.lm_head.weight"), batch.stderr)
    }

    /// preprocessor_config.json with do_resize false: an image of another size is that image's error,
    /// not a precondition failure that takes the whole batch down.
    func testNoResizePreprocessorRejectsOtherSizesPerImage() throws {
        let dir = try copyModel()
        try editJSON(dir.appendingPathComponent("preprocessor_config.json")) { $0["do_resize"] = false }
        let model = try CaptionModel(directory: dir)
        let image = scratch.url.appendingPathComponent("image.png")
        try Data(TestPNG.pattern(seed: 1, width: 24, height: 20)).write(to: image)
        let result = Captioner(model: model, beamWidth: 1).caption(file: image.path, request: CaptionRequest(parameters: model.defaults))
        guard case .failure(let error) = result else { return XCTFail("captioned a 24x20 image without resizing to 32x32") }
        XCTAssertTrue(String(describing: error).contains("do_resize false"), "\(error)")
        let square = scratch.url.appendingPathComponent("square.png")
        try Data(TestPNG.pattern(seed: 1, width: 32, height: 32)).write(to: square)
        XCTAssertNoThrow(try Captioner(model: model, beamWidth: 1).caption(file: square.path, request: CaptionRequest(parameters: model.defaults)).get())
    }
}
