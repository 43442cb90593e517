import Foundation
import XCTest
@testable import Glimpse

/// Malformed tokenizer files fail with errors that name the file and the offending key or token.
final class TokenizerErrorTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("glimpse-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    /// A byte-level vocabulary with every byte token plus a few merges' results.
    func byteVocab(extra: [String] = ["he", "ll", "hell", "hello"]) -> String {
        var tokens = ByteLevel.byteToScalar.map { String(Character($0)) }
        tokens += extra
        let entries = tokens.enumerated().map { index, token -> String in
            let escaped = token.unicodeScalars.map { s -> String in
                s == "\"" || s == "\\" ? "\\\(s)" : String(s)
            }.joined()
            return "\"\(escaped)\": \(index)"
        }
        return "{" + entries.joined(separator: ", ") + "}"
    }

    func expectError(_ check: (TokenizerError) -> Bool, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws -> Any) {
        do {
            _ = try body()
            XCTFail("expected an error", file: file, line: line)
        } catch let error as TokenizerError {
            XCTAssertTrue(check(error), "unexpected error: \(error)", file: file, line: line)
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
    }

    func testValidByteLevelFilesLoad() throws {
        try write("vocab.json", byteVocab())
        try write("merges.txt", "#version: 0.2\nh e\nl l\nhe ll\nhell o\n")
        let tokenizer = try TokenizerLoader.load(directory: directory)
        XCTAssertEqual(tokenizer.encode("hello"), [tokenizer.tokenID("hello")].compactMap { $0 })
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("hello hi"), skipSpecialTokens: true), "hello hi")
    }

    func testRepeatedMergeKeepsLastRank() throws {
        // As in `tokenizers` (checked with 0.23): merges a b, b c, a b -> "abc" is [a, bc].
        try write("vocab.json", byteVocab(extra: ["ab", "bc"]))
        try write("merges.txt", "a b\nb c\na b\n")
        let tokenizer = try TokenizerLoader.load(directory: directory)
        XCTAssertEqual(tokenizer.encode("abc"), [tokenizer.tokenID("a"), tokenizer.tokenID("bc")].compactMap { $0 })
    }

    func testMergeWithTokenMissingFromVocabularyNamesMergesFile() throws {
        try write("vocab.json", byteVocab())
        try write("merges.txt", "#version: 0.2\nh e\nl x\n")
        expectError({ error in
            guard case .invalidMerge(let file, let line, let merge, _) = error else { return false }
            return file.hasSuffix("merges.txt") && line == 3 && merge == "l x" && error.description.contains("merges.txt")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testMergeWhoseResultIsMissingNamesMergesFile() throws {
        try write("vocab.json", byteVocab(extra: []))
        try write("merges.txt", "h e\n")
        expectError({ error in
            guard case .invalidMerge(let file, 1, "h e", let reason) = error else { return false }
            return file.hasSuffix("merges.txt") && reason.contains("'he'")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testMalformedMergeLine() throws {
        try write("vocab.json", byteVocab())
        try write("merges.txt", "h e\nl l x\n")
        expectError({ error in
            guard case .invalidMerge(let file, 2, _, _) = error else { return false }
            return file.hasSuffix("merges.txt")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testBadVocabularyJSONNamesFile() throws {
        try write("vocab.json", "{\"a\": 0, \"b\": }")
        try write("merges.txt", "")
        expectError({ error in
            guard case .invalidJSON(let file, _) = error else { return false }
            return file.hasSuffix("vocab.json")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testVocabularyWithNonIntegerIdNamesToken() throws {
        try write("vocab.json", "{\"a\": 0, \"b\": \"one\"}")
        try write("merges.txt", "")
        expectError({ error in
            guard case .invalidVocabulary(let file, "b", _) = error else { return false }
            return file.hasSuffix("vocab.json")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testBadTokenizerJSONNamesFile() throws {
        try write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [")
        expectError({ error in
            guard case .invalidJSON(let file, _) = error else { return false }
            return file.hasSuffix("tokenizer.json")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testTokenizerJSONMergeWithUnknownTokenNamesFileAndIndex() throws {
        try write("tokenizer.json", """
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"], ["a", "c"]]}}
            """)
        expectError({ error in
            guard case .invalidMerge(let file, 1, "a c", let reason) = error else { return false }
            return file.hasSuffix("tokenizer.json") && reason.contains("'c'")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testTokenizerJSONMissingVocabularyNamesKey() throws {
        try write("tokenizer.json", "{\"model\": {\"type\": \"WordPiece\"}}")
        expectError({ error in
            guard case .invalidValue(let file, "model.vocab", _) = error else { return false }
            return file.hasSuffix("tokenizer.json")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testUnsupportedModelTypeIsRefused() throws {
        try write("tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}")
        expectError({ error in
            guard case .unsupportedTokenizer(let file, let reason) = error else { return false }
            return file.hasSuffix("tokenizer.json") && reason.contains("Unigram")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testUnsupportedTokenizerClassIsRefused() throws {
        try write("tokenizer_config.json", "{\"tokenizer_class\": \"T5Tokenizer\"}")
        try write("vocab.txt", "[UNK]\na\n")
        expectError({ error in
            guard case .unsupportedTokenizer(let file, let reason) = error else { return false }
            return file.hasSuffix("tokenizer_config.json") && reason.contains("T5Tokenizer")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testVocabTxtLinesAsTransformersReadsThem() throws {
        // Checked with transformers 5.24: CRLF and trailing spaces trimmed, empty lines are tokens,
        // missing [SEP]/[CLS]/[MASK] are added after the vocabulary in that order.
        let text = "[PAD]\r\n[UNK]\r\nhello\r\nwor \r\n##ld\r\nx\n\ny\n"
        try text.write(to: directory.appendingPathComponent("vocab.txt"), atomically: true, encoding: .utf8)
        try write("tokenizer_config.json", "{\"tokenizer_class\": \"BertTokenizer\"}")
        let tokenizer = try TokenizerLoader.load(directory: directory)
        XCTAssertEqual(tokenizer.encode("hello world x y"), [2, 3, 4, 5, 7])
        XCTAssertEqual(tokenizer.vocabularySize, 11)
        let s = tokenizer.specialTokens
        XCTAssertEqual([s.pad, s.unk, s.sep, s.cls, s.mask], [0, 1, 8, 9, 10])
        XCTAssertEqual(tokenizer.decode([8, 2, 3, 4, 9, 10, 6], skipSpecialTokens: false), "[SEP] hello world [CLS] [MASK] ")
    }

    func testWordPieceWithoutUnknownTokenNamesFile() throws {
        try write("vocab.txt", "[PAD]\nhello\n")
        expectError({ error in
            guard case .unknownToken(let file, "unk_token", "[UNK]") = error else { return false }
            return file.hasSuffix("vocab.txt")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testBadConfigJSONNamesFile() throws {
        try write("vocab.txt", "[UNK]\nhello\n")
        try write("tokenizer_config.json", "{\"do_lower_case\": tru}")
        expectError({ error in
            guard case .invalidJSON(let file, _) = error else { return false }
            return file.hasSuffix("tokenizer_config.json")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testBadSpecialTokenValueNamesKey() throws {
        try write("vocab.txt", "[UNK]\nhello\n")
        try write("special_tokens_map.json", "{\"bos_token\": 3}")
        expectError({ error in
            guard case .invalidValue(let file, "bos_token", _) = error else { return false }
            return file.hasSuffix("special_tokens_map.json")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }

    func testEmptyDirectoryNamesExpectedFiles() throws {
        expectError({ error in
            guard case .fileNotReadable(let file) = error else { return false }
            return file.contains("tokenizer.json")
        }) { try TokenizerLoader.load(directory: self.directory) }
    }
}
