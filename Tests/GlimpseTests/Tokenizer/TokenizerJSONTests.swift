import Foundation
import XCTest
@testable import Glimpse

/// The small JSON reader used for tokenizer files.
final class TokenizerJSONTests: XCTestCase {
    func parse(_ text: String) throws -> JSONValue {
        try JSONValue.parse(Data(text.utf8), file: "test.json")
    }

    func testValuesEscapesAndOrder() throws {
        let v = try parse(#"{"b": 1, "a": [true, false, null, -2.5e1, 0], "s": "x\"\\\/\n\t\u00e9\ud83d\ude00", "é": 3, "e\u0301": 4}"#)
        XCTAssertEqual(v.object?.map(\.key), ["b", "a", "s", "é", "e\u{301}"])
        XCTAssertEqual(v["b"]?.int, 1)
        XCTAssertEqual(v["a"]?.array?.count, 5)
        XCTAssertEqual(v["a"]?.array?[3], .number(-25))
        XCTAssertEqual(v["s"]?.string.map { Array($0.unicodeScalars) }, Array("x\"\\/\n\té😀".unicodeScalars))
        // Keys that are canonically equivalent stay distinct.
        XCTAssertEqual(v["é"]?.int, 3)
        XCTAssertEqual(v["e\u{301}"]?.int, 4)
    }

    func testErrorsNameTheFile() {
        for bad in ["{", "{\"a\" 1}", "[1,]", "\"abc", "{\"a\": tru}", "1 2", "{\"a\": }", ""] {
            XCTAssertThrowsError(try parse(bad), bad) { error in
                guard case TokenizerError.invalidJSON(let file, _)? = error as? TokenizerError else {
                    return XCTFail("\(bad): \(error)")
                }
                XCTAssertEqual(file, "test.json")
            }
        }
    }
}

extension JSONValue: Equatable {
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return x.utf8.elementsEqual(y.utf8)
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key.utf8.elementsEqual($1.key.utf8) && $0.value == $1.value }
        default: return false
        }
    }
}
