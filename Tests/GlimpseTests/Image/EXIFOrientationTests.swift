import XCTest
@testable import Glimpse

/// The Exif parser on hand-made blocks; whole files are covered by the PIL fixtures.
final class EXIFOrientationTests: XCTestCase {
    /// A TIFF block with one IFD0 entry: tag, type, count, 4 value bytes.
    private func tiff(bigEndian: Bool, tag: UInt16 = 0x0112, type: UInt16 = 3, count: UInt32 = 1,
                      value: UInt32 = 6) -> [UInt8] {
        func u16(_ v: UInt16) -> [UInt8] { bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: UInt32) -> [UInt8] {
            let bytes = (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
            return bigEndian ? bytes.reversed() : bytes
        }
        // SHORT values sit left-justified in the 4-byte field.
        let field: [UInt8] = type == 3 ? u16(UInt16(value)) + [0, 0] : u32(value)
        return (bigEndian ? Array("MM".utf8) : Array("II".utf8)) + u16(42) + u32(8)
            + u16(1) + u16(tag) + u16(type) + u32(count) + field + u32(0)
    }

    private func orientation(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBytes { EXIFOrientation.fromEXIF($0) }
    }

    func testBothByteOrdersAndTypes() {
        for bigEndian in [false, true] {
            XCTAssertEqual(orientation(tiff(bigEndian: bigEndian)), 6)
            XCTAssertEqual(orientation(tiff(bigEndian: bigEndian, type: 4, value: 8)), 8)
            XCTAssertEqual(orientation(Array("Exif\0\0".utf8) + tiff(bigEndian: bigEndian, value: 3)), 3)
            XCTAssertNil(orientation(tiff(bigEndian: bigEndian, tag: 0x0110)))
            XCTAssertNil(orientation(tiff(bigEndian: bigEndian, count: 2)))
        }
    }

    func testMalformedBlocksGiveNil() {
        let good = tiff(bigEndian: false)
        // PIL keeps complete entries of a cut-off IFD (here 22 bytes) and drops a partial one.
        for length in 0..<22 { XCTAssertNil(orientation(Array(good.prefix(length))), "prefix \(length)") }
        for length in 22...good.count { XCTAssertEqual(orientation(Array(good.prefix(length))), 6, "prefix \(length)") }
        var badMagic = good
        badMagic[2] = 43
        XCTAssertNil(orientation(badMagic))
        var farOffset = good
        farOffset[4] = 0xFF
        farOffset[7] = 0x7F
        XCTAssertNil(orientation(farOffset))
        var manyEntries = good // an entry count past the end: the first entry is still read, as by PIL
        manyEntries[8] = 0xFF
        manyEntries[9] = 0xFF
        XCTAssertEqual(orientation(manyEntries), 6)
        XCTAssertNil(orientation(Array("XX".utf8) + good.dropFirst(2)))
    }

    func testTransposesMatchPILDefinitions() {
        // 3 x 2 image whose red channel numbers the pixels 0...5 row by row.
        let image = RGBImage(width: 3, height: 2, pixels: (0..<6).flatMap { [UInt8($0), 0, 0] })
        func reds(_ orientation: Int) -> [UInt8] {
            let out = EXIFOrientation.apply(orientation, to: image)
            return stride(from: 0, to: out.pixels.count, by: 3).map { out.pixels[$0] }
        }
        XCTAssertEqual(reds(1), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(reds(2), [2, 1, 0, 5, 4, 3])         // FLIP_LEFT_RIGHT
        XCTAssertEqual(reds(3), [5, 4, 3, 2, 1, 0])         // ROTATE_180
        XCTAssertEqual(reds(4), [3, 4, 5, 0, 1, 2])         // FLIP_TOP_BOTTOM
        XCTAssertEqual(reds(5), [0, 3, 1, 4, 2, 5])         // TRANSPOSE
        XCTAssertEqual(reds(6), [3, 0, 4, 1, 5, 2])         // ROTATE_270 (90 degrees clockwise)
        XCTAssertEqual(reds(7), [5, 2, 4, 1, 3, 0])         // TRANSVERSE
        XCTAssertEqual(reds(8), [2, 5, 1, 4, 0, 3])         // ROTATE_90 (counter-clockwise)
        XCTAssertEqual(EXIFOrientation.apply(6, to: image).width, 2)
        XCTAssertEqual(reds(9), reds(1))
    }
}
