import Foundation
import XCTest
@testable import Glimpse

/// Encode/decode parity with transformers on the corpus in `Fixtures/tokenizers/parity.json`
/// (made by `tools/make_tokenizer_fixtures.py`).
final class TokenizerParityTests: XCTestCase {
    static func fixturesDirectory() throws -> URL {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "Fixtures resource missing from the test bundle"])
        }
        return url.appendingPathComponent("tokenizers")
    }

    static func parity() throws -> JSONValue {
        let url = try fixturesDirectory().appendingPathComponent("parity.json")
        return try JSONValue.parse(try Data(contentsOf: url), file: url.path)
    }

    /// Exact comparison (Swift's `==` on strings ignores normalization differences).
    func assertExactlyEqual(_ a: String, _ b: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        if !Array(a.unicodeScalars).elementsEqual(Array(b.unicodeScalars)) {
            XCTFail("\(message): \(a.debugDescription) != \(b.debugDescription)", file: file, line: line)
        }
    }

    func ids(_ value: JSONValue?) -> [Int] { value?.array?.compactMap(\.int) ?? [] }

    func checkParity(_ name: String, load: (URL) throws -> any Tokenizer) throws {
        let directory = try Self.fixturesDirectory().appendingPathComponent(name)
        let tokenizer = try load(directory)
        let all = try Self.parity()["tokenizers"]
        guard var reference = all?[name] else {
            return XCTFail("parity.json has no entry for \(name)")
        }
        if let other = reference["same_as"]?.string, let shared = all?[other] { reference = shared }
        check(tokenizer, against: reference, name: name, minimumCases: 40)
    }

    func check(_ tokenizer: any Tokenizer, against reference: JSONValue, name: String, minimumCases: Int) {
        XCTAssertEqual(tokenizer.vocabularySize, reference["vocab_size"]?.int, "\(name) vocabulary size")
        let special = reference["special"]
        let s = tokenizer.specialTokens
        XCTAssertEqual(s.bos, special?["bos"]?.int, "\(name) bos")
        XCTAssertEqual(s.eos, special?["eos"]?.int, "\(name) eos")
        XCTAssertEqual(s.pad, special?["pad"]?.int, "\(name) pad")
        XCTAssertEqual(s.unk, special?["unk"]?.int, "\(name) unk")
        XCTAssertEqual(s.sep, special?["sep"]?.int, "\(name) sep")
        XCTAssertEqual(s.cls, special?["cls"]?.int, "\(name) cls")
        XCTAssertEqual(s.mask, special?["mask"]?.int, "\(name) mask")
        XCTAssertEqual(s.all.sorted(), ids(reference["special_added_ids"]), "\(name) special ids")

        let cases = reference["encode"]?.array ?? []
        XCTAssertGreaterThanOrEqual(cases.count, minimumCases)
        for item in cases {
            let text = item["text"]?.string ?? ""
            let expected = ids(item["ids"])
            let actual = tokenizer.encode(text)
            if actual != expected {
                XCTFail("\(name) encode \(text.debugDescription): \(actual) != \(expected)")
            }
        }
        let decodes = reference["decode"]?.array ?? []
        XCTAssertGreaterThanOrEqual(decodes.count, minimumCases)
        for item in decodes {
            let input = ids(item["ids"])
            assertExactlyEqual(tokenizer.decode(input, skipSpecialTokens: true), item["skip_special"]?.string ?? "",
                               "\(name) decode(skip) \(input.prefix(20))")
            let keep = item["keep_special"]?.string ?? item["skip_special"]?.string ?? ""
            assertExactlyEqual(tokenizer.decode(input, skipSpecialTokens: false), keep,
                               "\(name) decode(keep) \(input.prefix(20))")
        }
    }

    func testBytePairFromVocabAndMerges() throws {
        try checkParity("gpt2-vocab-merges") { dir in
            try BytePairTokenizer(vocabularyFile: dir.appendingPathComponent("vocab.json"),
                                  mergesFile: dir.appendingPathComponent("merges.txt"))
        }
    }

    func testBytePairFromTokenizerJSON() throws {
        try checkParity("gpt2-tokenizer-json") { dir in
            try BytePairTokenizer(tokenizerFile: dir.appendingPathComponent("tokenizer.json"))
        }
    }

    func testWordPieceFromVocabTxt() throws {
        try checkParity("bert-vocab-txt") { dir in
            try WordPieceTokenizer(vocabularyFile: dir.appendingPathComponent("vocab.txt"))
        }
    }

    func testWordPieceFromTokenizerJSON() throws {
        try checkParity("bert-tokenizer-json") { dir in
            try WordPieceTokenizer(tokenizerFile: dir.appendingPathComponent("tokenizer.json"))
        }
    }

    /// Config variants (class defaults, null tokens, special_tokens_map.json, add_prefix_space,
    /// casing, clean-up flags) over the fixture vocabularies.
    func testConfigVariants() throws {
        let variants = try Self.parity()["variants"]?.array ?? []
        XCTAssertGreaterThanOrEqual(variants.count, 8)
        let root = try Self.fixturesDirectory()
        for (index, variant) in variants.enumerated() {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-variant-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let base = variant["base"]?.string ?? ""
            for file in variant["files"]?.array?.compactMap(\.string) ?? [] {
                try FileManager.default.copyItem(at: root.appendingPathComponent(base).appendingPathComponent(file),
                                                 to: directory.appendingPathComponent(file))
            }
            for (file, content) in variant["configs"]?.object ?? [] {
                try Self.serialize(content).write(to: directory.appendingPathComponent(file), atomically: true, encoding: .utf8)
            }
            let tokenizer = try TokenizerLoader.load(directory: directory)
            check(tokenizer, against: variant["expected"] ?? .null, name: "variant \(index) \(base)", minimumCases: 5)
        }
    }

    static func serialize(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d): return d.rounded() == d ? String(Int(d)) : String(d)
        case .string(let s):
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
                default: out.unicodeScalars.append(u)
                }
            }
            return out + "\""
        case .array(let items): return "[" + items.map(serialize).joined(separator: ",") + "]"
        case .object(let pairs):
            return "{" + pairs.map { serialize(.string($0.key)) + ":" + serialize($0.value) }.joined(separator: ",") + "}"
        }
    }

    func testLoaderChoosesByFiles() throws {
        let root = try Self.fixturesDirectory()
        for name in ["gpt2-vocab-merges", "gpt2-tokenizer-json"] {
            XCTAssertTrue(try TokenizerLoader.load(directory: root.appendingPathComponent(name)) is BytePairTokenizer, name)
            try checkParity(name) { try TokenizerLoader.load(directory: $0) }
        }
        for name in ["bert-vocab-txt", "bert-tokenizer-json"] {
            XCTAssertTrue(try TokenizerLoader.load(directory: root.appendingPathComponent(name)) is WordPieceTokenizer, name)
            try checkParity(name) { try TokenizerLoader.load(directory: $0) }
        }
    }
}
