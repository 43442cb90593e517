import Foundation
import XCTest
@testable import Glimpse

/// pytorch_model.bin read natively (tools/make_pytorch_fixtures.py wrote the fixtures with torch.save):
/// the same tensors and the same generated tokens as the safetensors fixtures, and hostile files refused.
final class PyTorchCheckpointTests: XCTestCase {
    private func fixture(_ path: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/pytorch/\(path)", withExtension: nil), "fixture pytorch/\(path)")
    }

    private func safetensors(_ model: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(url: XCTUnwrap(Bundle.module.url(forResource: "Fixtures/models/\(model)/model.safetensors", withExtension: nil)))
    }

    private func values(_ t: Tensor) -> [Float] { Array(UnsafeBufferPointer(start: t.data, count: t.count)) }

    func testEveryTensorEqualsTheSafetensorsFixtureBitForBit() throws {
        for model in ["vit_gpt2_c", "blip_tiny"] {
            let bin = try SafeTensorsFile(pytorchCheckpoint: fixture("\(model).bin"))
            let reference = try safetensors(model)
            for name in reference.tensorNames {
                let a = try bin.tensor(name), b = try reference.tensor(name)
                XCTAssertEqual(a.shape, b.shape, "\(model) \(name)")
                XCTAssertEqual(values(a).map(\.bitPattern), values(b).map(\.bitPattern), "\(model) \(name)")
                XCTAssertTrue(bin.isInPlace(a), "\(model) \(name): F32 storage should be mapped in place")
            }
        }
    }

    func testTiedTensorsShareOneStorageAndLegacyBuffersAreSkippedByDType() throws {
        let gpt = try SafeTensorsFile(pytorchCheckpoint: fixture("vit_gpt2_c.bin"))
        XCTAssertEqual(gpt.info("decoder.lm_head.weight")?.byteRange, gpt.info("decoder.transformer.wte.weight")?.byteRange)
        XCTAssertEqual(gpt.skippedTensors, ["decoder.transformer.h.0.attn.bias (BoolStorage)", "decoder.transformer.h.1.attn.bias (BoolStorage)"])
        XCTAssertEqual(gpt.info("decoder.transformer.h.0.attn.masked_bias")?.shape, [])
        XCTAssertEqual(try gpt.tensor("decoder.transformer.h.0.attn.masked_bias").data[0], -10_000)
        let blip = try SafeTensorsFile(pytorchCheckpoint: fixture("blip_tiny.bin"))
        XCTAssertEqual(blip.skippedTensors, ["text_decoder.bert.embeddings.position_ids (LongStorage)"])
    }

    func testHalfPrecisionCheckpointWidensToTheRoundedValues() throws {
        let bin = try SafeTensorsFile(pytorchCheckpoint: fixture("vit_gpt2_a_float16.bin"))
        let reference = try safetensors("vit_gpt2_a")
        XCTAssertEqual(bin.info("decoder.transformer.wte.weight")?.dtype, .f16)
        for name in reference.tensorNames {
            let expected = values(try reference.tensor(name)).map { Float(Float16($0)) }
            XCTAssertEqual(values(try bin.tensor(name)), expected, name)
        }
    }

    /// The whole model loaded from pytorch_model.bin generates transformers' tokens on every reference case.
    func testGenerateFromPyTorchCheckpointMatchesTransformers() throws {
        var checked = 0
        // BLIP's checkpoint is covered by testBLIPCaptionsFromBothWeightFormatsAreIdentical (the
        // safetensors path is transformers-checked in FixtureParityTests).
        for model in ["vit_gpt2_c"] {
            let f = try ParityFixture(model, weights: fixture("\(model).bin"))
            for c in f.cases {
                let label = c["label"] as? String ?? "?", image = c["image"] as? String ?? ""
                let hidden = try f.encode(image)
                let p = try f.parameters(for: c["kwargs"] as? [String: Any] ?? [:])
                let state = f.decoder.makeState(beamCapacity: p.beamWidth, lengthCapacity: 64)
                f.decoder.setEncoderStates(hidden.data, rows: f.encoder.sequenceLength, state: state)
                let out = try Generator(decoder: f.decoder, parameters: p).generate(prompt: f.prompt(for: c, parameters: p), state: state)
                let expected = try XCTUnwrap(c["sequences"] as? [[Int]], label)
                let width = expected.first?.count ?? 0
                XCTAssertEqual(out.map { $0.tokens + Array(repeating: p.padTokenId ?? 0, count: max(0, width - $0.tokens.count)) },
                               expected, "\(model) \(image) \(label)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 10)
    }

    /// A model directory like a Hub repo published with pytorch_model.bin only.
    private func pytorchOnlyDirectory(_ model: String) throws -> URL {
        let dir = try GlimpseCLI.temporaryDirectory()
        let source = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/models/\(model)", withExtension: nil))
        for file in try FileManager.default.contentsOfDirectory(atPath: source.path) where file != "model.safetensors" && !file.hasPrefix("reference") {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: dir.appendingPathComponent(file))
        }
        try FileManager.default.copyItem(at: fixture("\(model).bin"), to: dir.appendingPathComponent("pytorch_model.bin"))
        return dir
    }

    func testBLIPCaptionsFromBothWeightFormatsAreIdentical() throws {
        let dir = try pytorchOnlyDirectory("blip_tiny")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fromBin = try CaptionModel(directory: dir)
        let fromSafetensors = try CaptionModel(directory: XCTUnwrap(Bundle.module.url(forResource: "Fixtures/models/blip_tiny", withExtension: nil)))
        XCTAssertEqual(fromBin.family.name, "blip")
        XCTAssertEqual(fromBin.unusedTensors, ["text_decoder.bert.embeddings.position_ids (LongStorage)"])
        for image in ["scene_64x64", "shapes_40x30"] {
            let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/models/images/\(image)", withExtension: "png"))
            let decoded = try ImageDecoder.decode(contentsOf: url)
            for beams in [1, 3] {
                var p = fromSafetensors.defaults
                p.beamWidth = beams
                let runs = try [fromBin, fromSafetensors].map { model -> [GeneratedSequence] in
                    let hidden = model.encode(pixelValues: model.pixelValues(for: decoded.image), count: 1)
                    return try model.generate(encoderStates: hidden[index: 0], prompt: model.decoderPrompt(nil, parameters: p),
                                              parameters: p, state: model.makeState(beamWidth: beams))
                }
                XCTAssertEqual(runs[0].map(\.tokens), runs[1].map(\.tokens), "\(image) beams \(beams)")
                XCTAssertEqual(runs[0].map(\.score), runs[1].map(\.score), "\(image) beams \(beams)")
                XCTAssertGreaterThan(runs[0].first?.tokens.count ?? 0, 2)
            }
        }
    }

    // MARK: Hostile and broken files

    private func refusal(_ name: String) throws -> WeightError {
        do {
            _ = try SafeTensorsFile(pytorchCheckpoint: fixture("hostile/\(name)"))
        } catch let error as WeightError {
            return error
        }
        XCTFail("\(name) was accepted")
        throw XCTSkip("accepted")
    }

    func testMinimalValidFileFromTheSameMachineryLoads() throws {
        let file = try SafeTensorsFile(pytorchCheckpoint: fixture("hostile/minimal-valid.bin"))
        XCTAssertEqual(file.tensorNames, ["w"])
        XCTAssertEqual(values(try file.tensor("w")), [0, 1, 2, 3])
    }

    func testGlobalOfOsSystemIsRefusedBeforeAnythingRuns() throws {
        guard case .refusedPickle(_, let reason) = try refusal("global-os-system.bin") else { return XCTFail("wrong error") }
        XCTAssertTrue(reason.contains("global 'os.system' is not allowed"), reason)
    }

    func testReduceOfAStorageTypeIsRefused() throws {
        guard case .refusedPickle(_, let reason) = try refusal("reduce-storage-type.bin") else { return XCTFail("wrong error") }
        XCTAssertTrue(reason.contains("REDUCE of torch.FloatStorage is not allowed"), reason)
    }

    func testTensorPastTheEndOfItsStorageIsRefused() throws {
        let error = try refusal("offset-past-end.bin")
        XCTAssertTrue(error.description.contains("tensor 'w': elements 3..<5 lie past the end of storage 0 (4 elements)"), error.description)
        let short = try refusal("storage-shorter-than-claimed.bin")
        XCTAssertTrue(short.description.contains("storage 0 claims 8 elements, its entry has 16 bytes"), short.description)
    }

    func testCompressedAndStridedEntriesAreRefusedClearly() throws {
        let compressed = try refusal("compressed-entry.bin").description
        XCTAssertTrue(compressed.contains("is compressed (zip method 8)"), compressed)
        XCTAssertTrue(try refusal("non-contiguous.bin").description.contains("non-contiguous (shape [2, 2], stride [1, 2])"))
    }

    func testOtherGlobalsAndOpcodesAreRefused() throws {
        /// PROTO 2 followed by `body`'s bytes.
        func protocol2(_ body: String) -> [UInt8] { [0x80, 0x02] + Array(body.utf8) }
        let cases: [(String, [UInt8], String)] = [
            ("builtins.eval", protocol2("cbuiltins\neval\n)R."), "global 'builtins.eval' is not allowed"),
            ("torch.load", protocol2("ctorch\nload\n)R."), "global 'torch.load' is not allowed"),
            ("STACK_GLOBAL os.system", protocol2("X\u{2}\0\0\0osX\u{6}\0\0\0system") + [0x93, 0x2E], "global 'os.system' is not allowed"),
            ("INST opcode", protocol2("(ios\nsystem\n."), "opcode 0x69 is not allowed"),
            ("NEWOBJ", protocol2("))") + [0x81, 0x2E], "opcode 0x81 is not allowed"),
            ("BUILD on a tensor rebuilder", protocol2("ctorch._utils\n_rebuild_tensor_v2\n}b."), "BUILD on torch._utils._rebuild_tensor_v2"),
            ("no STOP", protocol2("}"), "pickle ends before STOP"),
            ("memo miss", protocol2("h\u{5}."), "memo 5 not set"),
        ]
        for (label, bytes, expected) in cases {
            XCTAssertThrowsError(try bytes.withUnsafeBytes { raw in
                var unpickler = RestrictedUnpickler(raw, file: "t")
                return try unpickler.load()
            }, label) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(label): \(error)")
            }
        }
    }

    /// Every prefix of a real checkpoint (a truncated download) is refused with an error, never a crash.
    func testTruncatedCheckpointsAreRefused() throws {
        let data = try Data(contentsOf: fixture("blip_tiny.bin"))
        for length in stride(from: 0, to: data.count, by: max(1, data.count / 97)) + [data.count - 1, data.count - 22] {
            let cut = data.prefix(length)
            XCTAssertThrowsError(try cut.withUnsafeBytes { try PyTorchCheckpoint.parse($0, file: "cut") }, "\(length) bytes")
        }
    }
}
