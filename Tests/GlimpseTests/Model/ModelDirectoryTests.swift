import XCTest
@testable import Glimpse

/// How every family's model directory is read: the image processor from preprocessor_config.json or,
/// as transformers 5 saves a processor, from processor_config.json's `image_processor`.
final class ModelDirectoryTests: XCTestCase {
    /// blip_tiny without its preprocessor_config.json but with the processor_config.json transformers 5
    /// wrote for the same processor (tools/make_fixtures.py): the same pixel values as transformers'.
    func testTransformers5ProcessorConfigLayout() throws {
        let fixture = try GlimpseCLI.fixtureModel("blip_tiny")
        let saved = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/processor/blip_tiny/processor_config.json", withExtension: nil))
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture.path) where name != "preprocessor_config.json" {
            try FileManager.default.copyItem(at: fixture.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: saved, to: dir.appendingPathComponent("processor_config.json"))

        let model = try CaptionModel(directory: dir)
        let original = try CaptionModel(directory: fixture)
        XCTAssertEqual(model.preprocessor, original.preprocessor)
        XCTAssertEqual(model.preprocessor.resample, .bicubic)
        XCTAssertTrue(model.preprocessor.doConvertRGB)
        let reference = try SafeTensorsFile(url: fixture.appendingPathComponent("reference.safetensors"))
        let image = try ImageDecoder.decode(file: try GlimpseCLI.fixtureImage("scene_64x64.png").path)
        let pixels = model.pixelValues(for: image)
        assertClose(pixels, try reference.tensor("scene_64x64.pixel_values"), count: pixels.count, tolerance: 1e-5, "pixel values via processor_config.json")

        // Without an image processor inside, the file is named with what is missing.
        try Data(#"{"processor_class": "BlipProcessor"}"#.utf8).write(to: dir.appendingPathComponent("processor_config.json"))
        XCTAssertThrowsError(try CaptionModel(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("processor_config.json"), "\(error)")
            XCTAssertTrue("\(error)".contains("image_processor"), "\(error)")
        }
        // preprocessor_config.json, when present, is the one read.
        try FileManager.default.copyItem(at: fixture.appendingPathComponent("preprocessor_config.json"), to: dir.appendingPathComponent("preprocessor_config.json"))
        XCTAssertEqual(try CaptionModel(directory: dir).preprocessor, original.preprocessor)
    }
}
