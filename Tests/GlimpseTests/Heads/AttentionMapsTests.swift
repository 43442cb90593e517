import XCTest
@testable import Glimpse

final class AttentionMapsTests: XCTestCase {
    /// 2 layers × 2 heads × (1 CLS + 2×2 patches) per token.
    let layout = AttentionLayout(layers: 2, heads: 2, encoderRows: 5, patchRows: PatchRows(first: 1, grid: 2))

    private func sequence(_ maps: [[Float]], prompt: Int = 1) -> GeneratedSequence {
        GeneratedSequence(tokens: Array(repeating: 7, count: prompt) + (0..<maps.count).map { 10 + $0 },
                          promptLength: prompt, score: 0, crossAttention: maps)
    }

    //                 layer 0: head 0, head 1            layer 1: head 0, head 1
    let token0: [Float] = [0.2, 0.2, 0.2, 0.2, 0.2,  0.6, 0.1, 0.1, 0.1, 0.1,  0.5, 0.5, 0, 0, 0,  0.2, 0, 0, 0.8, 0]
    let token1: [Float] = [0, 1, 0, 0, 0,  0, 0, 1, 0, 0,  0.1, 0.3, 0.3, 0.3, 0,  0.1, 0, 0, 0, 0.9]

    func testAggregateIsMeanOfLastLayersHeadsOverPatchesRenormalized() throws {
        let maps = try AttentionMaps(sequence: sequence([token0, token1]), layout: layout)
        XCTAssertEqual(maps.defaultLayer, 1)
        // token 0, layer 1: patches (0.5,0,0,0) and (0,0,0.8,0): mean (0.25,0,0.4,0), sum 0.65
        assertClose(try maps.aggregate(token: 0), [0.25 / 0.65, 0, 0.4 / 0.65, 0], tolerance: 1e-6)
        // layer 0 chosen explicitly: (0.2,0.2,0.2,0.2) and (0.1,...): uniform
        assertClose(try maps.aggregate(token: 0, layer: 0), [0.25, 0.25, 0.25, 0.25], tolerance: 1e-6)
        assertClose(try maps.aggregate(token: 0, layer: -2), [0.25, 0.25, 0.25, 0.25], tolerance: 1e-6)
        assertClose(try maps.raw(token: 1, layer: 1, head: 0), [0.3 / 0.9, 0.3 / 0.9, 0.3 / 0.9, 0], tolerance: 1e-6)
        // a word of both tokens: mean of the two aggregates
        let a0 = try maps.aggregate(token: 0), a1 = try maps.aggregate(token: 1)
        assertClose(try maps.map(tokens: [0, 1]), zip(a0, a1).map { ($0 + $1) / 2 }, tolerance: 1e-6)
        XCTAssertEqual(maps.sequenceIndex(ofToken: 1), 2)
    }

    func testShapeAndIndexErrors() throws {
        XCTAssertThrowsError(try AttentionMaps(sequence: sequence([Array(token0.dropLast())]), layout: layout))
        XCTAssertThrowsError(try AttentionMaps(sequence: sequence([token0, token1], prompt: 1), layout: layout, layer: 2))
        var s = sequence([token0])
        s.crossAttention = []
        XCTAssertThrowsError(try AttentionMaps(sequence: s, layout: layout))
        let maps = try AttentionMaps(sequence: sequence([token0]), layout: layout)
        XCTAssertThrowsError(try maps.raw(token: 0, layer: 0, head: 2))
        XCTAssertThrowsError(try maps.aggregate(token: 1))
    }
}

final class WordGroupingTests: XCTestCase {
    /// A byte-level BPE vocabulary in miniature: tokens carry their leading space; id 0 is EOS.
    let vocab: [Int: String] = [0: "<|endoftext|>", 1: "a", 2: " large", 3: " re", 4: "d", 5: " circle",
                                6: ",", 7: " star", 8: " a"]

    private func decode(_ ids: [Int]) -> String { ids.filter { $0 != 0 }.compactMap { vocab[$0] }.joined() }

    func testGroupsTokensIntoWords() {
        let tokens = [1, 2, 3, 4, 5, 6, 8, 7, 0]
        let words = WordGrouping.words(tokens: tokens, firstTokenIndex: 1, decode: decode)
        XCTAssertEqual(words.map(\.text), ["a", "large", "red", "circle,", "a", "star"])
        // "," (token 5) is in the text of "circle," but not among its tokens: the word's map is the
        // attention that produced "circle" (as the learned heads were trained).
        XCTAssertEqual(words.map(\.tokens), [[0], [1], [2, 3], [4], [6], [7]])
        // token_index: position in the full sequence (decoder start token at 0)
        XCTAssertEqual(words.map(\.tokenIndex), [1, 2, 3, 5, 7, 8])
        XCTAssertEqual(words[3].normalized, "circle")
    }

    func testLeadingSpaceOnFirstTokenAndEmpty() {
        XCTAssertEqual(WordGrouping.words(tokens: [7, 5], firstTokenIndex: 3, decode: decode).map(\.text), ["star", "circle"])
        XCTAssertEqual(WordGrouping.words(tokens: [], firstTokenIndex: 1, decode: decode), [])
        XCTAssertEqual(WordGrouping.words(tokens: [0], firstTokenIndex: 1, decode: decode), [])
    }
}
