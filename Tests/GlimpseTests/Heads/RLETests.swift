import XCTest
@testable import Glimpse

final class RLETests: XCTestCase {
    private func cases() throws -> [[String: Any]] { try XCTUnwrap(try headsFixture("rle.json") as? [[String: Any]]) }

    /// Encoding, the compressed string and decoding agree with pycocotools on every fixture mask.
    func testMatchesPycocotools() throws {
        let all = try cases()
        XCTAssertEqual(all.count, 8)
        for c in all {
            let name = c["name"] as? String ?? "?"
            let h = c["height"] as? Int ?? -1, w = c["width"] as? Int ?? -1
            let counts = ints(c["counts"]), compressed = try XCTUnwrap(c["compressed"] as? String)
            let fromCounts = try RLE(height: h, width: w, counts: counts)
            XCTAssertEqual(fromCounts.compressedString, compressed, name)
            XCTAssertEqual(try RLE(height: h, width: w, compressed: compressed).counts, counts, name)
            XCTAssertEqual(fromCounts.area, c["area"] as? Int, name)
            if let bits = c["bits"] as? String {
                let mask = try BitMask(width: w, height: h, bits: bits.utf8.map { $0 == UInt8(ascii: "1") ? 1 : 0 })
                let rle = RLE(mask: mask)
                XCTAssertEqual(rle.counts, counts, name)
                XCTAssertEqual(rle.compressedString, compressed, name)
                XCTAssertEqual(rle.decode(), mask, name)
                XCTAssertEqual(mask.area, c["area"] as? Int, name)
            } else {
                // Round trip through the mask for the large case.
                XCTAssertEqual(RLE(mask: fromCounts.decode()).counts, counts, name)
            }
        }
    }

    /// Hand-computed: column-major order, leading zero run when the first pixel is set.
    func testColumnMajorByHand() throws {
        // rows: [1 0 0]
        //       [1 1 0]   column-major: 1 1 | 0 1 | 0 0  -> runs 0,2,1,1,2
        let mask = try BitMask(width: 3, height: 2, bits: [1, 0, 0, 1, 1, 0])
        let rle = RLE(mask: mask)
        XCTAssertEqual(rle.counts, [0, 2, 1, 1, 2])
        XCTAssertEqual(rle.height, 2)
        XCTAssertEqual(rle.width, 3)
        // "0": 0; "2": 2; "1": 1; then 1-2 = -1 -> 0x1f -> 'O'; 2-1 = 1 -> '1'
        XCTAssertEqual(rle.compressedString, "021O1")
    }

    func testJSONShapeAndRoundTrip() throws {
        let mask = try BitMask(width: 3, height: 2, bits: [1, 0, 0, 1, 1, 0])
        let d = Detection(label: "red circle", word: "circle", tokenIndex: 4,
                          box: PixelBox(x: 0, y: 0, width: 2, height: 2), score: 0.5, mask: RLE(mask: mask))
        let data = try JSONEncoder().encode(d)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(obj["token_index"] as? Int, 4)
        XCTAssertEqual(obj["box"] as? [Int], [0, 0, 2, 2])
        XCTAssertEqual(obj["label"] as? String, "red circle")
        let m = try XCTUnwrap(obj["mask"] as? [String: Any])
        XCTAssertEqual(m["size"] as? [Int], [2, 3])
        XCTAssertEqual(m["counts"] as? String, "021O1")
        XCTAssertEqual(try JSONDecoder().decode(Detection.self, from: data), d)
        // uncompressed counts are read too
        let raw = #"{"label":"x","word":"x","token_index":1,"box":[1,2,3,4],"score":1,"mask":{"size":[2,3],"counts":[0,2,1,1,2]}}"#
        XCTAssertEqual(try JSONDecoder().decode(Detection.self, from: Data(raw.utf8)).mask?.decode(), mask)
    }

    func testRejectsBadInput() {
        XCTAssertThrowsError(try RLE(height: 2, width: 2, counts: [1, 2]))
        XCTAssertThrowsError(try RLE(height: 2, width: 2, compressed: "0 "))
        XCTAssertThrowsError(try RLE(height: 2, width: 2, compressed: "1"))    // sums to 1, not 4
        XCTAssertThrowsError(try BitMask(width: 2, height: 2, bits: [1]))
    }
}
