import Foundation
import XCTest
@testable import Glimpse

final class PNGWriterTests: XCTestCase {
    private let directory = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-pngwriter-\(getpid())")

    override func setUpWithError() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    func testRGBRoundTrip() throws {
        var generator = SplitMix64(seed: 1)
        let pixels = (0..<(29 * 17 * 3)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let image = RGBImage(width: 29, height: 17, pixels: pixels)
        let url = directory.appendingPathComponent("rgb.png")
        try PNGWriter.write(image, to: url)
        let decoded = try ImageDecoder.decode(contentsOf: url)
        XCTAssertEqual(decoded.image, image)
        XCTAssertEqual(decoded.info, ImageInfo(format: .png, width: 29, height: 17, layout: .rgb, bitDepth: 8))
    }

    func testGrayAndRGBAWrite() throws {
        let gray: [UInt8] = [0, 64, 128, 255, 1, 2]
        let grayURL = directory.appendingPathComponent("gray.png")
        try PNGWriter.write(pixels: gray, width: 3, height: 2, channels: 1, to: grayURL)
        let decodedGray = try ImageDecoder.decode(contentsOf: grayURL)
        XCTAssertEqual(decodedGray.info.layout, .gray)
        XCTAssertEqual(decodedGray.image.pixels, gray.flatMap { [$0, $0, $0] })

        let rgba: [UInt8] = [10, 20, 30, 0, 40, 50, 60, 128]
        let rgbaURL = directory.appendingPathComponent("rgba.png")
        try PNGWriter.write(pixels: rgba, width: 2, height: 1, channels: 4, to: rgbaURL)
        let decodedRGBA = try ImageDecoder.decode(contentsOf: rgbaURL)
        XCTAssertEqual(decodedRGBA.info.layout, .rgba)
        XCTAssertEqual(decodedRGBA.image.pixels, [10, 20, 30, 40, 50, 60]) // alpha dropped, as PIL's convert("RGB")
    }

    func testBadArgumentsAndPathsThrow() {
        XCTAssertThrowsError(try PNGWriter.encode(pixels: [1, 2], width: 1, height: 1, channels: 2))
        XCTAssertThrowsError(try PNGWriter.encode(pixels: [1, 2, 3], width: 2, height: 1, channels: 3))
        let image = RGBImage(width: 1, height: 1)
        XCTAssertThrowsError(try PNGWriter.write(image, to: URL(fileURLWithPath: "/nonexistent/dir/x.png"))) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/dir/x.png"))
        }
    }
}
