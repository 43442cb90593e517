import Foundation
import XCTest
@testable import Glimpse

/// Decoding against PIL: `ImageOps.exif_transpose(Image.open(f)).convert("RGB")`.
final class ImageDecoderTests: XCTestCase {
    private func entries() throws -> [[String: Any]] {
        guard let files = try ImageFixtures.json("expected.json")["files"] as? [[String: Any]] else {
            throw ImageFixtures.FixtureError("expected.json has no files")
        }
        return files
    }

    func testEveryValidFixtureMatchesPIL() throws {
        var checked = 0
        for entry in try entries() where entry["error"] == nil {
            let name = try XCTUnwrap(entry["file"] as? String)
            let decoded: DecodedImage
            do {
                decoded = try ImageDecoder.decode(contentsOf: ImageFixtures.url(name))
            } catch {
                XCTFail("\(name): \(error)")
                continue
            }
            let info = decoded.info
            XCTAssertEqual(info.format.rawValue, entry["format"] as? String, name)
            XCTAssertEqual(info.width, entry["width"] as? Int, name)
            XCTAssertEqual(info.height, entry["height"] as? Int, name)
            XCTAssertEqual(info.layout.rawValue, entry["layout"] as? String, name)
            XCTAssertEqual(info.bitDepth, entry["bit_depth"] as? Int, name)
            XCTAssertEqual(info.orientation, entry["orientation"] as? Int, name)
            XCTAssertEqual(info.interlaced, entry["interlaced"] as? Bool, name)
            if let transparency = entry["has_transparency"] as? Bool {
                XCTAssertEqual(info.hasTransparency, transparency, name)
            }
            XCTAssertEqual(decoded.image.width, info.width, name)
            XCTAssertEqual(decoded.image.height, info.height, name)

            let expected = [UInt8](try ImageFixtures.data(try XCTUnwrap(entry["rgb"] as? String)))
            let actual = decoded.image.pixels
            XCTAssertEqual(actual.count, expected.count, name)
            guard actual.count == expected.count else { continue }
            if actual != expected {
                let differing = zip(actual, expected).filter { $0 != $1 }.count
                let worst = zip(actual, expected).map { abs(Int($0) - Int($1)) }.max() ?? 0
                XCTFail("\(name): \(differing) of \(actual.count) samples differ from PIL (max |diff| \(worst))")
            }
            XCTAssertEqual(SHA256.hex(actual), entry["sha256"] as? String, name)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 55, "fixtures missing")
    }

    func testEveryBadFixtureThrowsItsError() throws {
        var checked = 0
        for entry in try entries() {
            guard let kind = entry["error"] as? String else { continue }
            let name = try XCTUnwrap(entry["file"] as? String)
            do {
                let decoded = try ImageDecoder.decode(contentsOf: ImageFixtures.url(name))
                XCTFail("\(name): decoded as \(decoded.info) but expected \(kind)")
            } catch let error as ImageError {
                XCTAssertEqual(error.kind, kind, "\(name): \(error)")
                XCTAssertTrue(error.description.contains(name), "\(name): message does not name the file: \(error)")
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 25, "fixtures missing")
    }

    func testTooLargeNamesSizeAndLimit() throws {
        XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: ImageFixtures.url("bad_png_huge.png"))) { error in
            guard case let ImageError.tooLarge(file, width, height, limit) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertTrue(file.hasSuffix("bad_png_huge.png"))
            XCTAssertEqual([width, height, limit], [100_000, 100_000, 100_000_000])
        }
        XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: ImageFixtures.url("bad_jpeg_huge.jpg"))) { error in
            XCTAssertEqual(error as? ImageError,
                           .tooLarge(file: ImageFixtures.url("bad_jpeg_huge.jpg").path, width: 65000, height: 65000,
                                     limit: 100_000_000))
        }
    }

    func testPixelLimitIsConfigurable() throws {
        let data = try ImageFixtures.data("png_rgb8.png") // 37 x 23 = 851 pixels
        XCTAssertEqual(try ImageDecoder.decode(data: data, name: "a.png", maxPixels: 851).image.width, 37)
        XCTAssertThrowsError(try ImageDecoder.decode(data: data, name: "a.png", maxPixels: 850)) { error in
            XCTAssertEqual(error as? ImageError, .tooLarge(file: "a.png", width: 37, height: 23, limit: 850))
        }
        let jpeg = try ImageFixtures.data("jpeg_orientation_6_le.jpg") // 40 x 24 stored
        XCTAssertThrowsError(try ImageDecoder.decode(data: jpeg, name: "b.jpg", maxPixels: 959)) { error in
            XCTAssertEqual(error as? ImageError, .tooLarge(file: "b.jpg", width: 40, height: 24, limit: 959))
        }
        // The big PNGs pass the header check with a large enough limit and then fail on their data.
        XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: ImageFixtures.url("bad_png_over_limit.png"),
                                                     maxPixels: 200_000_000)) { error in
            XCTAssertNotEqual((error as? ImageError)?.kind, "tooLarge")
        }
    }

    func testMissingFileIsUnreadable() {
        let url = URL(fileURLWithPath: "/nonexistent/glimpse/photo.jpg")
        XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: url)) { error in
            guard case let ImageError.unreadable(file, reason) = error else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(file, url.path)
            XCTAssertFalse(reason.isEmpty)
        }
    }

    func testFormatComesFromMagicNotExtension() throws {
        let png = try ImageFixtures.data("png_rgb8.png")
        XCTAssertEqual(try ImageDecoder.decode(data: png, name: "looks-like.jpg").info.format, .png)
        let jpeg = try ImageFixtures.data("jpeg_gray.jpg")
        XCTAssertEqual(try ImageDecoder.decode(data: jpeg, name: "looks-like.png").info.format, .jpeg)
    }

    /// Every prefix of a JPEG and a PNG, and seeded random byte damage: each is either
    /// decoded or rejected with an ImageError; none may crash or hang.
    func testDamagedDataNeverCrashes() throws {
        for name in ["jpeg_progressive.jpg", "jpeg_baseline_420.jpg", "png_rgba8_adam7.png", "png_palette4.png"] {
            let data = try ImageFixtures.data(name)
            for cut in stride(from: 0, to: data.count, by: 7) {
                do {
                    _ = try ImageDecoder.decode(data: data.prefix(cut), name: name)
                } catch is ImageError {
                } // any other error type fails the test by propagating
            }
            // PNG pixel data needs every byte; a prefix missing part of it must be refused.
            if name.hasSuffix(".png") {
                XCTAssertThrowsError(try ImageDecoder.decode(data: data.prefix(data.count / 2), name: name))
            }
            var generator = SplitMix64(seed: 42)
            for _ in 0..<150 {
                var damaged = [UInt8](data)
                for _ in 0..<1 + Int(generator.next() % 4) {
                    let at = 2 + Int(generator.next() % UInt64(damaged.count - 2))
                    damaged[at] = UInt8(truncatingIfNeeded: generator.next())
                }
                do {
                    _ = try ImageDecoder.decode(data: Data(damaged), name: name)
                } catch is ImageError {
                }
            }
        }
    }

    func testErrorMessagesNameFileAndCause() {
        XCTAssertEqual(ImageError.truncated(file: "x.jpg").description, "x.jpg: truncated image data")
        XCTAssertEqual(ImageError.tooLarge(file: "big.png", width: 20000, height: 10000, limit: 100_000_000).description,
                       "big.png: image too large (20000x10000 = 200000000 pixels, limit 100000000)")
        XCTAssertEqual(ImageError.corrupt(file: "c.png", detail: "IHDR: CRC error").errorDescription,
                       "c.png: corrupt image data (IHDR: CRC error)")
        XCTAssertEqual(ImageError.notAnImage(file: "n.txt").kind, "notAnImage")
    }
}

/// A small deterministic generator for damage tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
