import XCTest
@testable import Glimpse

final class BilinearTests: XCTestCase {
    /// Equal to torch.nn.functional.interpolate(mode="bilinear", align_corners=False).
    func testMatchesTorch() throws {
        let cases = try XCTUnwrap(try headsFixture("interpolate.json") as? [[String: Any]])
        XCTAssertEqual(cases.count, 8)
        for c in cases {
            let hi = c["in_height"] as? Int ?? 0, wi = c["in_width"] as? Int ?? 0
            let ho = c["out_height"] as? Int ?? 0, wo = c["out_width"] as? Int ?? 0
            let out = Bilinear.resize(floats(c["input"]), width: wi, height: hi, toWidth: wo, height: ho)
            assertClose(out, floats(c["output"]), tolerance: 1e-5, "\(hi)x\(wi) -> \(ho)x\(wo)")
        }
    }

    func testConstantStaysConstant() {
        let out = Bilinear.resize([Float](repeating: 2, count: 9), width: 3, height: 3, toWidth: 11, height: 4)
        XCTAssertEqual(out.count, 44)
        XCTAssertTrue(out.allSatisfy { abs($0 - 2) < 1e-6 })
    }
}

final class ConnectedComponentsTests: XCTestCase {
    private func mask(_ rows: [String]) throws -> BitMask {
        try BitMask(width: rows[0].count, height: rows.count,
                    bits: rows.joined().map { $0 == "#" ? 1 : 0 })
    }

    func testLargestWithFourAndEightConnectivity() throws {
        let m = try mask([
            "##....",
            "##....",
            "..#...",
            "...##.",
            "...##.",
        ])
        // 8-connected: one component of 9 pixels (diagonal steps join them).
        XCTAssertEqual(ConnectedComponents.largest(m, connectivity: .eight)?.area, 9)
        // 4-connected: the 2×2 blocks (4 pixels each) and the single pixel; the first block wins the tie.
        let four = try XCTUnwrap(ConnectedComponents.largest(m, connectivity: .four))
        XCTAssertEqual(four.area, 4)
        XCTAssertEqual(four.boundingBox, PixelBox(x: 0, y: 0, width: 2, height: 2))
    }

    func testEmptyAndTouchingEdges() throws {
        XCTAssertNil(ConnectedComponents.largest(BitMask(width: 4, height: 3)))
        let m = try mask(["#..#", "#..#", "####"])
        let c = try XCTUnwrap(ConnectedComponents.largest(m, connectivity: .four))
        XCTAssertEqual(c.area, 8)
        XCTAssertEqual(c.boundingBox, PixelBox(x: 0, y: 0, width: 4, height: 3))
    }
}

final class AttentionGrounderTests: XCTestCase {
    private func word(_ text: String, _ index: Int) -> CaptionWord {
        CaptionWord(text: text, tokens: [index], tokenIndex: index + 1)
    }

    /// A map peaked on one patch of a 4×4 grid grounds to that patch's area of the image.
    func testPeakedMapGivesItsPatch() throws {
        var map = [Float](repeating: 0, count: 16)
        map[1 * 4 + 2] = 1          // row 1, column 2
        let grounder = AttentionGrounder()
        let (region, score) = try XCTUnwrap(grounder.region(map, grid: 4, width: 40, height: 40))
        let box = try XCTUnwrap(region.boundingBox)
        // Upsampled peak: value >= 0.5·max within half a patch around the center (25, 15).
        XCTAssertEqual(box, PixelBox(x: 20, y: 10, width: 10, height: 10))
        XCTAssertGreaterThan(score, 0.4)
        XCTAssertLessThanOrEqual(score, 1)
    }

    func testGroundsContentWordsWithLabels() throws {
        var left = [Float](repeating: 0, count: 16), right = left
        left[4] = 1; left[8] = 1            // column 0, rows 1–2
        right[7] = 1                        // column 3, row 1
        let uniform = [Float](repeating: 1 / 16, count: 16)
        let texts = ["a", "large", "red", "circle", "to", "the", "left", "of", "a", "small", "blue", "star"]
        let maps = texts.enumerated().map { i, t -> WordMap in
            WordMap(word: word(t, i), map: t == "circle" ? left : (t == "star" ? right : uniform), grid: 4)
        }
        let vocab = GroundingVocabulary(objectWords: ["circle", "star"], attributeWords: ["red", "blue"])
        let dets = AttentionGrounder(vocabulary: vocab).ground(maps, imageWidth: 80, imageHeight: 40)
        XCTAssertEqual(dets.map(\.label), ["red circle", "blue star"])
        XCTAssertEqual(dets.map(\.word), ["circle", "star"])
        XCTAssertEqual(dets.map(\.tokenIndex), [4, 12])
        XCTAssertEqual(dets[0].box, PixelBox(x: 0, y: 10, width: 20, height: 20))   // patches are 20×10 px
        XCTAssertEqual(dets[1].box, PixelBox(x: 60, y: 10, width: 20, height: 10))
        XCTAssertEqual(dets[0].mask?.decode().boundingBox, dets[0].box)

        // Without a heads config: every non-stopword, labelled by itself.
        let plain = AttentionGrounder().ground(maps, imageWidth: 80, imageHeight: 40)
        XCTAssertEqual(plain.map(\.word), ["large", "red", "circle", "small", "blue", "star"])
        XCTAssertEqual(plain.map(\.label), plain.map(\.word))
    }

    func testLabelStopsAtCommaAndPreviousObject() {
        let texts = ["a", "small", "red", "circle,", "a", "large", "purple", "star", "and", "a", "blue", "square"]
        let words = texts.enumerated().map { word($0.element, $0.offset) }
        let vocab = GroundingVocabulary(objectWords: ["circle", "star", "square"], attributeWords: ["red", "purple", "blue"])
        XCTAssertEqual(vocab.label(of: 3, in: words), "red circle")
        XCTAssertEqual(vocab.label(of: 7, in: words), "purple star")
        XCTAssertEqual(vocab.label(of: 11, in: words), "blue square")
        XCTAssertTrue(vocab.isContent(words[3]))      // "circle," matches "circle"
        XCTAssertFalse(vocab.isContent(words[2]))
    }
}
