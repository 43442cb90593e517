import Foundation
import XCTest
@testable import Glimpse

/// Spot checks that read as documentation; parity with transformers is in TokenizerParityTests.
final class TokenizerBehaviourTests: XCTestCase {
    func pieces(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var out: [String] = []
        ByteLevel.preTokenize(scalars, 0..<scalars.count) { out.append(String(String.UnicodeScalarView(scalars[$0]))) }
        return out
    }

    func testGPT2PreTokenizerSplits() {
        XCTAssertEqual(pieces("Hello world"), ["Hello", " world"])
        XCTAssertEqual(pieces("it's they're I'M"), ["it", "'s", " they", "'re", " I", "'", "M"])
        XCTAssertEqual(pieces("a   b"), ["a", "  ", " b"])
        XCTAssertEqual(pieces("a\tb"), ["a", "\t", "b"])
        XCTAssertEqual(pieces("end   "), ["end", "   "])
        XCTAssertEqual(pieces("x 123 4.5!!"), ["x", " 123", " 4", ".", "5", "!!"])
        XCTAssertEqual(pieces("e\u{301}"), ["e", "\u{301}"])
        XCTAssertEqual(pieces(""), [])
    }

    func testByteToUnicodeTable() {
        XCTAssertEqual(ByteLevel.byteToScalar[Int(UInt8(ascii: " "))], "\u{120}")  // "Ġ"
        XCTAssertEqual(ByteLevel.byteToScalar[Int(UInt8(ascii: "\n"))], "\u{10A}")  // "Ċ"
        XCTAssertEqual(ByteLevel.byteToScalar[Int(UInt8(ascii: "A"))], "A")
        XCTAssertEqual(Set(ByteLevel.byteToScalar.map(\.value)).count, 256)
    }

    func fixture(_ name: String) throws -> any Tokenizer {
        try TokenizerLoader.load(directory: try TokenizerParityTests.fixturesDirectory().appendingPathComponent(name))
    }

    func testRoundTripAndUnknownIdsAreDropped() throws {
        let bpe = try fixture("gpt2-tokenizer-json")
        let text = "A photo of 2 cats 🐱 — naïve!"
        XCTAssertEqual(bpe.decode(bpe.encode(text), skipSpecialTokens: false), text)
        XCTAssertEqual(bpe.decode([-1, 1_000_000] + bpe.encode("hi"), skipSpecialTokens: true), "hi")
        XCTAssertEqual(bpe.tokenID("<|endoftext|>"), bpe.specialTokens.eos)
        XCTAssertNil(bpe.tokenID("no such token"))
    }

    func testBLIPStyleSpecialTokens() throws {
        let bert = try fixture("bert-vocab-txt")
        let s = bert.specialTokens
        XCTAssertEqual(bert.tokenID("[DEC]"), s.bos)
        XCTAssertNotNil(s.sep)
        XCTAssertNil(s.eos)
        // BLIP's decoder input starts with bos ([DEC]) and generation stops at [SEP].
        let ids = [try XCTUnwrap(s.bos)] + bert.encode("A picture of a cat.") + [try XCTUnwrap(s.sep)]
        XCTAssertEqual(bert.decode(ids, skipSpecialTokens: true), "a picture of a cat.")
        XCTAssertEqual(bert.decode(ids, skipSpecialTokens: false), "[DEC] a picture of a cat. [SEP]")
    }

    func testConcurrentEncodingIsSafe() throws {
        let bpe = try fixture("gpt2-vocab-merges")
        let texts = (0..<64).map { "caption number \($0): a small orange triangle, \($0 * 7) pixels wide" }
        let expected = texts.map { bpe.encode($0) }
        let results = UnsafeMutableBufferPointer<[Int]>.allocate(capacity: texts.count)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: texts.count) { i in results[i] = bpe.encode(texts[i]) }
        XCTAssertEqual(Array(results), expected)
    }
}
