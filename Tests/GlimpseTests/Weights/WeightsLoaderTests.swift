import Foundation
import XCTest
@testable import Glimpse

final class WeightsLoaderTests: XCTestCase {
    /// A GPT-2-like checkpoint: one block's tensors, the tied embedding, and a legacy buffer.
    private func checkpoint(_ scratch: ScratchDirectory, name: String = "model.safetensors",
                            extra: [SafeTensorsWriter.Entry] = []) throws -> SafeTensorsFile {
        let url = scratch.url.appendingPathComponent(name)
        try SafeTensorsWriter.write([
            .init(name: "decoder.transformer.wte.weight", shape: [4, 2], values: (0..<8).map(Float.init)),
            .init(name: "decoder.transformer.h.3.attn.c_attn.weight", shape: [2, 6], values: Array(repeating: 0.5, count: 12)),
            .init(name: "decoder.transformer.h.3.attn.bias", shape: [1, 1, 2, 2], values: [1, 0, 1, 1]),
            .init(name: "decoder.transformer.h.3.ln_1.weight", shape: [2], values: [1, 1]),
        ] + extra, to: url)
        return try SafeTensorsFile(url: url)
    }

    func testScopedNamesAndShapes() throws {
        let scratch = try ScratchDirectory()
        let loader = WeightLoader(file: try checkpoint(scratch))
        let block = loader.scoped("decoder").scoped("transformer").scoped("h").scoped(3)
        XCTAssertEqual(block.prefix, "decoder.transformer.h.3")
        XCTAssertEqual(block.fullName("ln_1.weight"), "decoder.transformer.h.3.ln_1.weight")
        XCTAssertEqual(loader.fullName("x"), "x")
        XCTAssertTrue(block.contains("ln_1.weight"))
        XCTAssertFalse(block.contains("ln_2.weight"))
        let attn = try block.scoped("attn").tensor("c_attn.weight", shape: [2, 6])
        XCTAssertEqual(attn.scalars, Array(repeating: 0.5, count: 12))
        XCTAssertEqual(try block.tensor("ln_1.weight", shape: [2]).scalars, [1, 1])
        // Dotted components work as one scope too.
        XCTAssertEqual(try loader.scoped("decoder.transformer").tensor("wte.weight", shape: [4, 2]).count, 8)
    }

    func testMissingTensorNamesTheFullCheckpointName() throws {
        let scratch = try ScratchDirectory()
        let file = try checkpoint(scratch)
        let block = WeightLoader(file: file).scoped("decoder").scoped("transformer").scoped("h.3")
        let error = expectWeightError(["missing tensor 'decoder.transformer.h.3.mlp.c_fc.weight'", file.path]) {
            _ = try block.scoped("mlp").tensor("c_fc.weight", shape: [2, 8])
        }
        guard case .missingTensor(_, "decoder.transformer.h.3.mlp.c_fc.weight")? = error else {
            return XCTFail("\(String(describing: error))")
        }
    }

    func testWrongShapeNamesTheFullNameAndBothShapes() throws {
        let scratch = try ScratchDirectory()
        let file = try checkpoint(scratch)
        let attn = WeightLoader(file: file).scoped("decoder.transformer.h").scoped(3).scoped("attn")
        let error = expectWeightError(["'decoder.transformer.h.3.attn.c_attn.weight' has shape [2, 6], expected [6, 2]", file.path]) {
            _ = try attn.tensor("c_attn.weight", shape: [6, 2])
        }
        guard case .shapeMismatch(_, _, [6, 2], [2, 6])? = error else { return XCTFail("\(String(describing: error))") }
    }

    func testOptionalTensorFallsBackAndStillChecksShape() throws {
        let scratch = try ScratchDirectory()
        let loader = WeightLoader(file: try checkpoint(scratch)).scoped("decoder")
        // lm_head is tied to wte when absent.
        let head = try loader.optionalTensor("lm_head.weight", shape: [4, 2])
        XCTAssertNil(head)
        let tied = try head ?? loader.tensor("transformer.wte.weight", shape: [4, 2])
        XCTAssertEqual(tied.shape, [4, 2])
        expectWeightError(["'decoder.transformer.wte.weight' has shape [4, 2], expected [4, 3]"]) {
            _ = try loader.optionalTensor("transformer.wte.weight", shape: [4, 3])
        }
    }

    func testUnusedNamesAreTrackedAcrossScopes() throws {
        let scratch = try ScratchDirectory()
        let loader = WeightLoader(file: try checkpoint(scratch))
        XCTAssertEqual(loader.unusedTensorNames().count, 4)
        let block = loader.scoped("decoder.transformer.h.3")
        _ = try block.tensor("ln_1.weight", shape: [2])
        _ = try block.scoped("attn").tensor("c_attn.weight", shape: [2, 6])
        _ = try loader.scoped("decoder").optionalTensor("transformer.wte.weight", shape: [4, 2])
        XCTAssertEqual(loader.unusedTensorNames(), ["decoder.transformer.h.3.attn.bias"])
        XCTAssertEqual(block.unusedTensorNames(), loader.unusedTensorNames(), "scopes share one tracker")
        XCTAssertEqual(loader.usedTensorNames().count, 3)
        // A fresh loader over the same file starts from nothing.
        XCTAssertEqual(WeightLoader(file: loader.files[0]).unusedTensorNames().count, 4)
    }

    func testShapeMismatchDoesNotMarkUsed() throws {
        let scratch = try ScratchDirectory()
        let loader = WeightLoader(file: try checkpoint(scratch))
        _ = try? loader.tensor("decoder.transformer.h.3.ln_1.weight", shape: [3])
        XCTAssertTrue(loader.unusedTensorNames().contains("decoder.transformer.h.3.ln_1.weight"))
    }

    func testSeveralFilesAndDuplicates() throws {
        let scratch = try ScratchDirectory()
        let first = try checkpoint(scratch)
        let secondURL = scratch.url.appendingPathComponent("heads.safetensors")
        try SafeTensorsWriter.write([.init(name: "heads.box.weight", shape: [2], values: [3, 4])], to: secondURL)
        let second = try SafeTensorsFile(url: secondURL)
        let loader = try WeightLoader(files: [first, second])
        XCTAssertEqual(try loader.scoped("heads").tensor("box.weight", shape: [2]).scalars, [3, 4])
        XCTAssertEqual(try loader.tensor("decoder.transformer.h.3.ln_1.weight", shape: [2]).scalars, [1, 1])
        expectWeightError(["missing tensor 'nope'", first.path, second.path]) { _ = try loader.tensor("nope", shape: [1]) }
        XCTAssertEqual(loader.unusedTensorNames().count, 3)

        let duplicate = try checkpoint(scratch, name: "copy.safetensors")
        expectWeightError(["appears in several files", first.path, duplicate.path]) {
            _ = try WeightLoader(files: [first, duplicate])
        }
    }

    func testCheckFiniteOption() throws {
        let scratch = try ScratchDirectory()
        let file = try checkpoint(scratch, extra: [.init(name: "decoder.bad", shape: [2], values: [1, .nan])])
        XCTAssertEqual(try WeightLoader(file: file).tensor("decoder.bad", shape: [2]).count, 2)
        let checked = WeightLoader(file: file, checkFinite: true)
        XCTAssertEqual(try checked.tensor("decoder.transformer.h.3.ln_1.weight", shape: [2]).scalars, [1, 1])
        expectWeightError(["tensor 'decoder.bad' has 1 non-finite value", file.path]) {
            _ = try checked.scoped("decoder").tensor("bad", shape: [2])
        }
    }
}
