import Foundation
import XCTest
@testable import Glimpse

/// Hostile sizes: headers that claim gigabytes must be refused before anything that size is allocated
/// or computed, and quickly.
final class ResourceBoundsTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory() }
    override func tearDown() { scratch = nil }

    private func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    private func safetensors(_ header: String, data: [UInt8] = [], claimed: UInt64? = nil) -> [UInt8] {
        var json = Array(header.utf8)
        json += Array(repeating: UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
        var bytes: [UInt8] = []
        withUnsafeBytes(of: (claimed ?? UInt64(json.count)).littleEndian) { bytes += $0 }
        return bytes + json + data
    }

    private func parse(_ bytes: [UInt8]) throws {
        _ = try bytes.withUnsafeBytes { try SafeTensorsLayout.parse($0, file: "hostile.safetensors") }
    }

    private func expectError(_ fragments: [String], _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("no error; expected \(fragments)", file: file, line: line)
        } catch {
            for f in fragments { XCTAssertTrue("\(error)".contains(f), "\"\(error)\" lacks \"\(f)\"", file: file, line: line) }
        }
    }

    // MARK: safetensors

    func testEnormousShapesFailBeforeAllocating() throws {
        // 2^62 elements: the byte count overflows Int.
        expectError(["hostile.safetensors", "'huge'", "overflows"]) {
            try parse(safetensors(#"{"huge":{"dtype":"F32","shape":[4611686018427387904,2],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)))
        }
        // 10^12 elements that fit in an Int but not in the 8-byte data section.
        expectError(["'big'", "needs 4000000000000 bytes but data_offsets span 8"]) {
            try parse(safetensors(#"{"big":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)))
        }
        // Offsets that claim 4 TB of data.
        expectError(["'far'", "past the end of the data section (8 bytes)"]) {
            try parse(safetensors(#"{"far":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}"#, data: [UInt8](repeating: 0, count: 8)))
        }
        // A shape claim through the loader: the file maps, and the tensor is never materialized.
        let url = scratch.url.appendingPathComponent("huge.safetensors")
        try Data(safetensors(#"{"w":{"dtype":"F32","shape":[65536,65536,65536],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))).write(to: url)
        expectError([url.path, "'w'"]) { _ = try SafeTensorsFile(url: url) }
    }

    func testMultiGigabyteHeaderIsRefusedWithoutReadingIt() throws {
        // A length field claiming 5 GB in a 16-byte file.
        expectError(["header length 5000000000 bytes exceeds the limit of 100000000"]) {
            try parse(safetensors("{}", claimed: 5_000_000_000))
        }
        // A real (sparse) 3 GB file whose header length claims 2.5 GB: refused from the length field alone,
        // long before any of it is paged in or copied.
        let url = scratch.url.appendingPathComponent("sparse.safetensors")
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        var length = UInt64(2_500_000_000).littleEndian
        try handle.write(contentsOf: Data(bytes: &length, count: 8))
        try handle.truncate(atOffset: 3_000_000_000)
        try handle.close()
        let time = seconds { expectError([url.path, "exceeds the limit"]) { _ = try SafeTensorsFile(url: url) } }
        XCTAssertLessThan(time, 1.0)
        // Within the cap but past the end of the file.
        expectError(["runs past the end of the file"]) { try parse(safetensors("{}", claimed: 99_000_000)) }
    }

    // MARK: images

    func testHeadersClaimingHugeSizesFailFast() throws {
        // 30000 x 30000 PNG whose IDAT is a 1 MB zlib stream of zeros (about 160 MB inflated).
        let bomb = TestPNG.bomb(width: 30000, height: 30000, inflated: 160 << 20)
        XCTAssertGreaterThan(bomb.count, 1_000_000)
        let png = scratch.url.appendingPathComponent("bomb.png")
        try Data(bomb).write(to: png)
        let time = seconds {
            expectError(["bomb.png", "30000x30000", "limit 100000000"]) {
                _ = try ImageDecoder.decode(contentsOf: png, maxPixels: ImageDecoder.defaultMaxPixels)
            }
        }
        XCTAssertLessThan(time, 0.5, "the pixel limit is checked from the header, before inflating anything")
        // The same from the IHDR alone, at libpng's largest accepted size, and past it.
        expectError(["max.png", "1000000x1000000", "limit"]) {
            _ = try ImageDecoder.decode(data: Data(TestPNG.signature + TestPNG.ihdr(width: 1_000_000, height: 1_000_000) + TestPNG.chunk("IDAT", [])), name: "max.png")
        }
        expectError(["beyond.png", "IHDR"]) {
            _ = try ImageDecoder.decode(data: Data(TestPNG.signature + TestPNG.ihdr(width: 0x7FFF_FFFF, height: 0x7FFF_FFFF)), name: "beyond.png")
        }
        // A JPEG SOF claiming 65500 x 65500 (baseline, 3 components) after a minimal header.
        var jpeg: [UInt8] = [0xFF, 0xD8]
        jpeg += [0xFF, 0xDB, 0x00, 0x43, 0x00] + Array(repeating: 1, count: 64)                 // DQT
        jpeg += [0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xDC, 0xFF, 0xDC, 0x03,
                 0x01, 0x11, 0x00, 0x02, 0x11, 0x00, 0x03, 0x11, 0x00]                          // SOF0
        jpeg += [0xFF, 0xC4, 0x00, 0x14, 0x00, 0x01] + Array(repeating: 0, count: 15) + [0x00]  // DHT
        jpeg += [0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x3F, 0x00]  // SOS
        jpeg += Array(repeating: 0, count: 64) + [0xFF, 0xD9]
        let jpegTime = seconds {
            expectError(["65500x65500", "limit"]) { _ = try ImageDecoder.decode(data: Data(jpeg), name: "huge.jpg") }
        }
        XCTAssertLessThan(jpegTime, 0.5)
        // --max-pixels lowers the bound.
        let small = scratch.url.appendingPathComponent("small.png")
        try Data(TestPNG.pattern(seed: 1, width: 40, height: 30)).write(to: small)
        expectError(["40x30", "limit 1000"]) { _ = try ImageDecoder.decode(contentsOf: small, maxPixels: 1000) }
        XCTAssertNoThrow(try ImageDecoder.decode(contentsOf: small, maxPixels: 1200))
    }

    /// Within the pixel limit, a 3 MB file whose zlib stream runs on for 512 MB past the last row: the
    /// image (4000 x 3000, 36 MB) is decoded, and the rest of the stream is never inflated. (Before the
    /// fix png_read_end inflated all of it: 13 s for a 2 GB stream.)
    func testPNGWhoseStreamInflatesFarPastTheImageIsCheap() throws {
        let width = 4000, height = 3000
        let bomb = TestPNG.bomb(width: UInt32(width), height: UInt32(height), inflated: 512 << 20)
        let url = scratch.url.appendingPathComponent("stream-bomb.png")
        try Data(bomb).write(to: url)
        var decoded: DecodedImage?
        let time = try seconds { decoded = try ImageDecoder.decode(contentsOf: url, maxPixels: ImageDecoder.defaultMaxPixels) }
        XCTAssertEqual(decoded?.image.width, width)
        XCTAssertEqual(decoded?.image.pixels.count, width * height * 3)
        XCTAssertLessThan(time, 1.5, "inflated the whole stream?")
    }

    /// The same for Adam7: the bound is the interlaced image's real size (every pass's rows). Odd and
    /// even heights (an even one puts a row past the end into an early pass), and widths under 5
    /// (libpng skips empty passes). Before the fix a 1 GB tail was inflated in full (12.5 s for 8 GB).
    func testInterlacedPNGWhoseStreamInflatesFarPastTheImageIsCheap() throws {
        let stream = TestPNG.chunk("IDAT", TestPNG.zeros(inflatingTo: 1 << 30))
        for (width, height) in [(1000, 999), (1000, 1000), (3, 1001)] {
            let bomb = TestPNG.signature + TestPNG.ihdr(width: UInt32(width), height: UInt32(height), interlaced: true)
                + stream + TestPNG.chunk("IEND", [])
            let url = scratch.url.appendingPathComponent("adam7-bomb-\(width)x\(height).png")
            try Data(bomb).write(to: url)
            var decoded: DecodedImage?
            let time = try seconds { decoded = try ImageDecoder.decode(contentsOf: url) }
            XCTAssertEqual(decoded?.image.width, width)
            XCTAssertEqual(decoded?.image.height, height)
            XCTAssertEqual(decoded?.info.interlaced, true)
            XCTAssertTrue(decoded?.image.pixels.allSatisfy { $0 == 0 } == true)
            XCTAssertLessThan(time, 0.5, "\(width)x\(height): inflated the whole 1 GB stream?")
        }
    }

    /// Stopping at the last row must not stop short: Adam7 images of sizes whose passes are empty,
    /// partial or uneven decode to exactly the pixels encoded (and so do straight ones).
    func testInterlacedPNGsOfEverySmallShapeDecodeExactly() throws {
        for (width, height) in [(1, 1), (2, 3), (3, 2), (4, 4), (5, 1), (1, 9), (7, 9), (8, 8), (9, 10), (17, 33), (3, 1001)] {
            var state: UInt32 = UInt32(width * 131 + height)
            let rgb = (0..<(width * height * 3)).map { _ -> UInt8 in state = state &* 1_103_515_245 &+ 12345; return UInt8(state >> 24) }
            for interlaced in [true, false] {
                let decoded = try ImageDecoder.decode(data: Data(TestPNG.encode(width: width, height: height, rgb: rgb, interlaced: interlaced)),
                                                      name: "\(width)x\(height).png")
                XCTAssertEqual(decoded.info.interlaced, interlaced)
                XCTAssertEqual(decoded.image.pixels, rgb, "\(width)x\(height) interlaced \(interlaced)")
            }
        }
    }

    /// The zTXt decompression bomb fixture, and memory: `glimpse info` on the stream bomb stays near
    /// the image's own 36 MB (checked on the child's peak RSS).
    func testDecodingBombsKeepsMemoryNearThePixelBuffer() throws {
        _ = try GlimpseCLI.executable()
        let url = scratch.url.appendingPathComponent("stream-bomb.png")
        try Data(TestPNG.bomb(width: 4000, height: 3000, inflated: 256 << 20)).write(to: url)
        let over = scratch.url.appendingPathComponent("over.png")
        try Data(TestPNG.bomb(width: 30000, height: 30000, inflated: 64 << 20)).write(to: over)
        // ru_maxrss of RUSAGE_CHILDREN is the largest peak of any child so far; read it before and after.
        var before = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &before)
        let bound = 400_000  // KB
        let result = try GlimpseCLI.run(["info", url.path, over.path], scratch: scratch.url)
        XCTAssertEqual(result.status, 1, "the over-limit file fails")
        XCTAssertTrue(result.stdout.contains("4000x3000"), result.stdout)
        XCTAssertTrue(result.stderr.contains("over.png") && result.stderr.contains("limit"), result.stderr)
        var after = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &after)
        if before.ru_maxrss >= bound { throw XCTSkip("an earlier child peaked at \(before.ru_maxrss) KB: this one cannot be told apart") }
        XCTAssertLessThan(after.ru_maxrss, bound, "peak RSS of glimpse info on the bombs: \(after.ru_maxrss) KB")
    }
}
