import Foundation
import XCTest
@testable import Glimpse

/// Every non-ASCII code point classified as the Rust `tokenizers` library does
/// (`Fixtures/tokenizers/unicode_classes.json`, made by `tools/make_tokenizer_fixtures.py`).
final class TokenizerUnicodeClassesTests: XCTestCase {
    var classes: JSONValue = .null

    override func setUpWithError() throws {
        let url = try TokenizerParityTests.fixturesDirectory().appendingPathComponent("unicode_classes.json")
        classes = try JSONValue.parse(try Data(contentsOf: url), file: url.path)
    }

    func set(_ key: String) -> Set<UInt32> {
        var out = Set<UInt32>()
        for run in classes[key]?.array ?? [] {
            guard let pair = run.array, pair.count == 2, let a = pair[0].int, let b = pair[1].int else { continue }
            for v in a...b { out.insert(UInt32(v)) }
        }
        return out
    }

    var scalars: [Unicode.Scalar] {
        (0x80..<0x110000).compactMap { Unicode.Scalar(UInt32($0)) }
    }

    func check(_ name: String, _ expected: Set<UInt32>, _ actual: (Unicode.Scalar) -> Bool) {
        XCTAssertFalse(expected.isEmpty, name)
        var wrong: [String] = []
        for s in scalars where actual(s) != expected.contains(s.value) {
            wrong.append(String(format: "U+%04X", s.value))
        }
        XCTAssertTrue(wrong.isEmpty, "\(name): \(wrong.count) code points differ: \(wrong.prefix(20))")
    }

    func testGPT2RegexClasses() {
        check("letter", set("gpt2_letter")) { UnicodeClasses.isLetter($0) && !UnicodeClasses.isWhitespace($0) }
        check("number", set("gpt2_number")) {
            UnicodeClasses.isNumber($0) && !UnicodeClasses.isLetter($0) && !UnicodeClasses.isWhitespace($0)
        }
        check("space", set("gpt2_space")) { UnicodeClasses.isWhitespace($0) }
    }

    func testBertPreTokenizerClasses() {
        check("punctuation", set("bert_punctuation")) { UnicodeClasses.isBertPunctuation($0) && !UnicodeClasses.isWhitespace($0) }
        check("whitespace", set("bert_pre_space")) { UnicodeClasses.isWhitespace($0) }
    }

    func testBertCleanText() {
        check("removed", set("bert_removed")) { UnicodeClasses.isBertControl($0) }
        check("to space", set("bert_to_space")) { !UnicodeClasses.isBertControl($0) && UnicodeClasses.isWhitespace($0) }
    }

    func checkMapping(_ key: String, _ options: WordPieceTokenizer.Normalization, skip: (UInt32) -> Bool) {
        var expected: [UInt32: String] = [:]
        for (k, v) in classes[key]?.object ?? [] {
            if let cp = UInt32(k), let s = v.string { expected[cp] = s }
        }
        XCTAssertFalse(expected.isEmpty, key)
        var wrong: [String] = []
        for s in scalars where !skip(s.value) {
            let category = s.properties.generalCategory
            if expected[s.value] == nil, category == .unassigned || category == .privateUse { continue }
            let actual = WordPieceTokenizer.normalize([s], options)
            let want = expected[s.value].map { Array($0.unicodeScalars) } ?? [s]
            if actual != want { wrong.append(String(format: "U+%04X", s.value)) }
        }
        XCTAssertTrue(wrong.isEmpty, "\(key): \(wrong.count) code points differ: \(wrong.prefix(20))")
    }

    func testBertStripAccents() {
        let options = WordPieceTokenizer.Normalization(cleanText: false, handleChineseChars: false,
                                                       stripAccents: true, lowercase: false)
        checkMapping("bert_strip_accents", options) {
            (0xAC00...0xD7A3).contains($0) || (0xF900...0xFAFF).contains($0) || (0x2F800...0x2FA1F).contains($0)
        }
    }

    func testBertLowercase() {
        let options = WordPieceTokenizer.Normalization(cleanText: false, handleChineseChars: false,
                                                       stripAccents: false, lowercase: true)
        checkMapping("bert_lowercase", options) { _ in false }
    }
}
