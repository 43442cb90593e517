import Foundation
import XCTest
@testable import Glimpse

/// Resizing against PIL's Image.resize and pixel values against transformers' ViTImageProcessorPil.
final class ImagePreprocessorTests: XCTestCase {
    private func cases() throws -> [[String: Any]] {
        guard let cases = try ImageFixtures.json("preprocess.json")["cases"] as? [[String: Any]] else {
            throw ImageFixtures.FixtureError("preprocess.json has no cases")
        }
        return cases
    }

    private func preprocessor(_ c: [String: Any]) throws -> ImagePreprocessor {
        // PIL's Resampling value, which ResampleFilter's raw values mirror.
        let filter = try XCTUnwrap(ResampleFilter(rawValue: try XCTUnwrap(c["resample_id"] as? Int)))
        let mean = try XCTUnwrap(c["mean"] as? [Double]).map(Float.init)
        let std = try XCTUnwrap(c["std"] as? [Double]).map(Float.init)
        return ImagePreprocessor(width: try XCTUnwrap(c["width"] as? Int), height: try XCTUnwrap(c["height"] as? Int),
                                 resample: filter, rescaleFactor: try XCTUnwrap(c["rescale_factor"] as? Double),
                                 mean: mean, std: std)
    }

    func testResizeEqualsPILToTheByte() throws {
        var checked = 0
        for c in try cases() {
            let name = try XCTUnwrap(c["name"] as? String)
            let source = try ImageDecoder.decode(contentsOf: ImageFixtures.url(try XCTUnwrap(c["source"] as? String))).image
            let p = try preprocessor(c)
            let out = resized(source, width: p.width, height: p.height, filter: p.resample)
            XCTAssertEqual(out.width, p.width, name)
            XCTAssertEqual(out.height, p.height, name)
            if let file = c["resized"] as? String {
                let expected = [UInt8](try ImageFixtures.data(file))
                let differing = zip(out.pixels, expected).filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(name): \(differing) of \(expected.count) bytes differ from PIL")
            }
            XCTAssertEqual(SHA256.hex(out.pixels), c["resized_sha256"] as? String, name)
            checked += 1
        }
        XCTAssertEqual(checked, 13)
    }

    func testPixelValuesMatchTransformers() throws {
        for c in try cases() {
            let name = try XCTUnwrap(c["name"] as? String)
            let source = try ImageDecoder.decode(contentsOf: ImageFixtures.url(try XCTUnwrap(c["source"] as? String))).image
            let p = try preprocessor(c)
            let values = p.pixelValues(source)
            XCTAssertEqual(values.count, 3 * p.width * p.height, name)
            var actual = values
            let expected: [Float]
            if let file = c["pixel_values"] as? String {
                expected = try ImageFixtures.floats(file)
            } else {
                let stride = try XCTUnwrap(c["sample_stride"] as? Int)
                expected = try ImageFixtures.floats(try XCTUnwrap(c["pixel_values_sampled"] as? String))
                actual = Swift.stride(from: 0, to: values.count, by: stride).map { values[$0] }
            }
            XCTAssertEqual(actual.count, expected.count, name)
            let diffs = zip(actual, expected).map { abs($0 - $1) }
            let maxDiff = diffs.max() ?? .infinity
            let meanDiff = diffs.reduce(0, +) / Float(max(diffs.count, 1))
            // The issue's tolerance; with an exact resize the values agree to float32 rounding.
            XCTAssertLessThanOrEqual(maxDiff, 1e-2, name)
            XCTAssertLessThanOrEqual(meanDiff, 1e-3, name)
            XCTAssertLessThanOrEqual(maxDiff, 1e-6, "\(name): expected bit-level agreement, max |diff| \(maxDiff)")
        }
    }

    func testChannelsFirstLayoutAndNormalization() {
        // 1x2 image: red then blue; no resize.
        let image = RGBImage(width: 2, height: 1, pixels: [255, 0, 0, 0, 0, 255])
        let p = ImagePreprocessor(width: 2, height: 1, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])
        XCTAssertEqual(p.pixelValues(image), [1, -1, -1, -1, -1, 1])
        var raw = p
        raw.doNormalize = false
        raw.doRescale = false
        XCTAssertEqual(raw.pixelValues(image), [255, 0, 0, 0, 0, 255])
    }

    func testConfigFileIsRead() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-preprocessor-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data("""
        {"do_normalize": true, "do_rescale": true, "do_resize": true,
         "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
         "image_processor_type": "BlipImageProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
         "size": {"height": 384, "width": 384}}
        """.utf8).write(to: url)
        let p = try ImagePreprocessor(contentsOf: url)
        XCTAssertEqual(p.width, 384)
        XCTAssertEqual(p.height, 384)
        XCTAssertEqual(p.resample, .bicubic)
        XCTAssertEqual(p.mean, [0.48145466, 0.4578275, 0.40821073])
        XCTAssertEqual(p.rescaleFactor, 1.0 / 255.0)

        try Data(#"{"resample": 0}"#.utf8).write(to: url)
        XCTAssertThrowsError(try ImagePreprocessor(contentsOf: url))
        try Data(#"{"image_mean": 0.5}"#.utf8).write(to: url)
        XCTAssertEqual(try ImagePreprocessor(contentsOf: url).mean, [0.5, 0.5, 0.5])
    }

    func testKernelMatchesPillowCoefficients() {
        // Downscaling 4 -> 2 with bilinear: the support widens to 2 and output 0 is centred at 1.0,
        // so inputs 0...2 get tri((x - 1 + 0.5) / 2) = 0.75, 0.75, 0.25, normalized to 3/7, 3/7, 1/7.
        let kernel = Resampler.Kernel(inSize: 4, outSize: 2, filter: .bilinear)
        XCTAssertEqual(kernel.start, [0, 1])
        XCTAssertEqual(kernel.count, [3, 3])
        XCTAssertEqual(kernel.weights[0], 3.0 / 7, accuracy: 1e-12)
        XCTAssertEqual(kernel.weights[1], 3.0 / 7, accuracy: 1e-12)
        XCTAssertEqual(kernel.weights[2], 1.0 / 7, accuracy: 1e-12)
        // Same size: identity (bilinear and bicubic weights fall on integers).
        let gray: [UInt8] = [0, 50, 100, 150, 200, 250]
        XCTAssertEqual(Resampler.resample(gray, width: 6, height: 1, channels: 1, toWidth: 6, toHeight: 1,
                                          filter: .bicubic), gray)
    }

    func testFloatMapResample() {
        let constant = [Float](repeating: 0.25, count: 4 * 3)
        let up = Resampler.resample(constant, width: 4, height: 3, toWidth: 13, toHeight: 7, filter: .bilinear)
        XCTAssertEqual(up.count, 13 * 7)
        for v in up { XCTAssertEqual(v, 0.25, accuracy: 1e-6) }
        // A horizontal ramp stays monotonic and inside its range under bilinear upsampling.
        let ramp: [Float] = [0, 1, 2, 3]
        let wide = Resampler.resample(ramp, width: 4, height: 1, toWidth: 8, toHeight: 1, filter: .bilinear)
        XCTAssertEqual(wide, wide.sorted())
        XCTAssertEqual(wide.first ?? -1, 0, accuracy: 1e-6)
        XCTAssertEqual(wide.last ?? -1, 3, accuracy: 1e-6)
        XCTAssertEqual(wide[1], 0.25, accuracy: 1e-6)
    }
}

final class PreprocessorConfigVariantsTests: XCTestCase {
    /// nlpconnect/vit-gpt2-image-captioning's preprocessor_config.json (ViTFeatureExtractor, integer size).
    func testIntegerSizeOfOlderFeatureExtractors() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pre-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(#"{"do_normalize": true, "do_resize": true, "feature_extractor_type": "ViTFeatureExtractor", "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": 224}"#.utf8).write(to: url)
        let p = try ImagePreprocessor(contentsOf: url)
        XCTAssertEqual(p.width, 224)
        XCTAssertEqual(p.height, 224)
        XCTAssertEqual(p.resample, .bilinear)
    }
}

/// Files through decoding and the fixture models' own preprocessor_config.json against what
/// transformers' processors make of them after load_image (images/processor.json, written by
/// tools/make_image_fixtures.py): upscaling with both filters, EXIF-rotated non-square JPEGs,
/// Pillow's vertical-first pass order, palette and RGB tRNS with and without do_convert_rgb.
final class ProcessorParityTests: XCTestCase {
    func testPixelValuesOfFilesEqualTransformersProcessors() throws {
        guard let cases = try ImageFixtures.json("processor.json")["cases"] as? [[String: Any]] else {
            throw ImageFixtures.FixtureError("processor.json has no cases")
        }
        XCTAssertEqual(cases.count, 14)
        for c in cases {
            let file = try XCTUnwrap(c["file"] as? String), model = try XCTUnwrap(c["model"] as? String)
            let decoded = try ImageDecoder.decode(contentsOf: ImageFixtures.url(file))
            let config = try reliabilityModelDirectory(model).appendingPathComponent("preprocessor_config.json")
            let values = try ImagePreprocessor(contentsOf: config).pixelValues(decoded)
            let expected = try ImageFixtures.floats(try XCTUnwrap(c["pixel_values"] as? String))
            XCTAssertEqual(values.count, expected.count, "\(file) \(model)")
            let worst = zip(values, expected).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 1e-6, "\(file) through \(model)'s processor: max |diff| \(worst)")
        }
    }

    /// The transparent colour is the one PIL keeps: a simple palette tRNS, an RGB tRNS; not partial alphas.
    func testTransparentColorFollowsPIL() throws {
        let simple = try ImageDecoder.decode(contentsOf: ImageFixtures.url("processor/palette_trns_simple.png")).info
        XCTAssertEqual(simple.transparentColor?.count, 3)
        XCTAssertNil(try ImageDecoder.decode(contentsOf: ImageFixtures.url("processor/palette_trns_alphas.png")).info.transparentColor)
        XCTAssertEqual(try ImageDecoder.decode(contentsOf: ImageFixtures.url("processor/rgb_trns.png")).info.transparentColor, [10, 20, 30])
        XCTAssertNil(try ImageDecoder.decode(contentsOf: ImageFixtures.url("processor/up_small.png")).info.transparentColor)
    }

    /// Pillow 13's pass order rule, on the sizes that told it apart.
    func testVerticalFirstRule() {
        XCTAssertTrue(Resampler.verticalFirst(width: 50, height: 80, toWidth: 32, toHeight: 32))
        XCTAssertFalse(Resampler.verticalFirst(width: 75, height: 97, toWidth: 32, toHeight: 24))
        XCTAssertFalse(Resampler.verticalFirst(width: 48, height: 64, toWidth: 32, toHeight: 32))   // 32 == 2 · 16: not more
        XCTAssertTrue(Resampler.verticalFirst(width: 20, height: 90, toWidth: 33, toHeight: 40))    // wider, shorter
        XCTAssertFalse(Resampler.verticalFirst(width: 13, height: 19, toWidth: 33, toHeight: 29))   // taller: never
    }
}
