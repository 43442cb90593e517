import Foundation
import XCTest
@testable import Glimpse

/// Florence-2's prompts and answer parsing against what transformers' Florence2Processor does
/// (Fixtures/florence2/tasks.json, made by tools/make_florence2_task_fixtures.py).
final class Florence2TasksTests: XCTestCase {
    /// The fixture twice: as `JSONValue` (strings code point for code point, keys in order) and as
    /// Foundation objects (for `JSONConfig`).
    struct Fixture {
        let json: JSONValue
        let configs: [String: Any]

        init() throws {
            let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/florence2/tasks", withExtension: "json"))
            let data = try Data(contentsOf: url)
            json = try JSONValue.parse(data, file: url.path)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            configs = try XCTUnwrap(object["configs"] as? [String: Any])
        }

        func list(_ key: String) throws -> [JSONValue] { try XCTUnwrap(json[key]?.array, "tasks.json lacks \(key)") }

        /// A post-processor for a named config (JSON null: none), with the stand-in's special tokens.
        func postProcessor(_ name: String) throws -> Florence2PostProcessor {
            let special = Set(try list("special_tokens").map { try XCTUnwrap($0.string) })
            let value = try XCTUnwrap(configs[name], "no config \(name)")
            let config = (value as? [String: Any]).map { JSONConfig(values: $0, file: "tasks.json [\(name)]") }
            if config == nil { XCTAssertTrue(value is NSNull, "config \(name)") }
            return try Florence2PostProcessor(config: config, specialTokens: special)
        }
    }

    /// Python's `json.dumps(value, ensure_ascii=False, separators=(",", ":"))` of a fixture value.
    static func pythonJSON(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : "\(d)"
        case .string(let s): return JSONText.quoted(s)
        case .array(let items): return "[" + items.map(pythonJSON).joined(separator: ",") + "]"
        case .object(let pairs): return "{" + pairs.map { JSONText.quoted($0.key) + ":" + pythonJSON($0.value) }.joined(separator: ",") + "}"
        }
    }

    /// The fixture's name for an error.
    static func kind(_ error: Error) -> String {
        switch error {
        case Florence2Error.taskTokenNotAlone: return "task_token_not_alone"
        case Florence2Error.unsupportedParseTask: return "unsupported_parse_task"
        case Florence2Error.invalidLocation: return "invalid_location"
        case Florence2Error.invalidPattern: return "invalid_pattern"
        case ModelError.invalidConfig: return "invalid_config"
        default: return "unexpected \(error)"
        }
    }

    static func same(_ a: String, _ b: String) -> Bool { a.unicodeScalars.elementsEqual(b.unicodeScalars) }

    /// The answer of one fixture task; "<DESCRIPTION_WITH_POLYGONS>" is the fixture's stand-in task
    /// for the description_with_polygons type, which no real task has.
    static func answer(_ processor: Florence2PostProcessor, text: String, task: String, size: (width: Int, height: Int)) throws -> Florence2Answer {
        if task == "<DESCRIPTION_WITH_POLYGONS>" { return try processor.answer(text: text, type: .descriptionWithPolygons, imageSize: size) }
        return try processor.answer(text: text, task: task, imageSize: size)
    }

    /// Compares an outcome with the fixture's answer or error; returns whether it matched.
    @discardableResult
    static func check(_ outcome: () throws -> String, expected: JSONValue, _ what: String,
                      file: StaticString = #filePath, line: UInt = #line) -> Bool {
        let expectedError = expected.object != nil ? expected["error"]?.string : nil
        do {
            let got = try outcome()
            if let expectedError {
                XCTFail("\(what): expected \(expectedError) (\(expected["message"]?.string ?? "")), got \(got)", file: file, line: line)
                return false
            }
            let want = pythonJSON(expected)
            guard same(got, want) else {
                XCTFail("\(what):\n  got  \(got)\n  want \(want)", file: file, line: line)
                return false
            }
            return true
        } catch {
            guard let expectedError else {
                XCTFail("\(what): unexpected error \(error)", file: file, line: line)
                return false
            }
            XCTAssertEqual(kind(error), expectedError, "\(what): \(error)", file: file, line: line)
            // transformers' own ValueErrors read the same.
            if ["task_token_not_alone", "unsupported_parse_task"].contains(expectedError) {
                XCTAssertEqual("\(error)", expected["message"]?.string, what, file: file, line: line)
            }
            return kind(error) == expectedError
        }
    }

    func testPromptsEqualTransformers() throws {
        let fixture = try Fixture()
        let prompts = try fixture.list("prompts")
        XCTAssertGreaterThan(prompts.count, 50)
        for (i, entry) in prompts.enumerated() {
            let text = try XCTUnwrap(entry["text"]?.string)
            let expected: JSONValue = entry["prompt"] ?? entry
            Self.check({ JSONText.quoted(try Florence2Task.prompt(text)) }, expected: expected, "prompt \(i) \(JSONText.quoted(text))")
        }
    }

    func testTaskTableEqualsTransformers() throws {
        let fixture = try Fixture()
        let tasks = try fixture.list("tasks")
        for entry in tasks {
            let task = try XCTUnwrap(entry["task"]?.string)
            XCTAssertEqual(Florence2Task.answerType(forTask: task).rawValue, entry["type"]?.string, task)
        }
        XCTAssertEqual(Florence2Task.allCases.map(\.token), tasks.prefix(15).compactMap { $0["task"]?.string })
        XCTAssertEqual(Florence2Task.allCases.filter(\.takesInput).count, 7)
        XCTAssertEqual(Florence2PostProcessor.defaultOCRPattern, fixture.json["default_ocr_pattern"]?.string)
    }

    func testAnswersEqualTransformers() throws {
        let fixture = try Fixture()
        var processors: [String: Florence2PostProcessor] = [:]
        var answers = 0, failures = 0
        for (i, entry) in try fixture.list("cases").enumerated() {
            let name = try XCTUnwrap(entry["config"]?.string)
            if processors[name] == nil { processors[name] = try fixture.postProcessor(name) }
            let processor = try XCTUnwrap(processors[name])
            let text = try XCTUnwrap(entry["text"]?.string)
            let size = try XCTUnwrap(entry["image_size"]?.array?.compactMap(\.int))
            for (task, expected) in try XCTUnwrap(entry["answers"]?.object) {
                answers += 1
                let ok = Self.check({ try Self.answer(processor, text: text, task: task, size: (size[0], size[1])).jsonText },
                                    expected: expected, "case \(i) [\(name)] \(task) size \(size) text \(JSONText.quoted(text))")
                if !ok { failures += 1 }
                if failures > 20 { return XCTFail("stopping after 20 failures") }
            }
        }
        XCTAssertGreaterThan(answers, 1500)
    }

    /// transformers' default OCR pattern run through the ICU path (translated, UNIX_LINES) gives
    /// the same answers as the scanner on every OCR text of the fixture.
    func testICUPathEqualsScannerOnOCRTexts() throws {
        let fixture = try Fixture()
        let processor = try fixture.postProcessor("published")
        var checked = 0
        for entry in try fixture.list("cases") {
            guard entry["config"]?.string == "published", let text = entry["text"]?.string,
                  let size = entry["image_size"]?.array?.compactMap(\.int) else { continue }
            let dequantizer = Florence2PostProcessor.Dequantizer(size: (size[0], size[1]))
            let raw = Scalars(text.unicodeScalars)
            do {
                let scanner = try processor.parseOCR(raw, pattern: nil, threshold: .success(0), imageSize: (size[0], size[1]), dequantizer: dequantizer)
                let icu = try processor.parseOCR(raw, pattern: nil, threshold: .success(0), imageSize: (size[0], size[1]), dequantizer: dequantizer, forceICU: true)
                XCTAssertEqual(scanner.map(\.box), icu.map(\.box), JSONText.quoted(text))
                XCTAssertEqual(scanner.map { Array($0.label.unicodeScalars) }, icu.map { Array($0.label.unicodeScalars) }, JSONText.quoted(text))
                checked += 1
            } catch {
                XCTAssertThrowsError(try processor.parseOCR(raw, pattern: nil, threshold: .success(0), imageSize: (size[0], size[1]),
                                                            dequantizer: dequantizer, forceICU: true), JSONText.quoted(text))
            }
        }
        XCTAssertGreaterThan(checked, 300)
    }

    func testSequencesEqualDecodeWithSpans() throws {
        let fixture = try Fixture()
        let vocabulary = try fixture.list("vocabulary").map { try XCTUnwrap($0.string) }
        let processor = try fixture.postProcessor("published")
        let sequences = try fixture.list("sequences")
        XCTAssertFalse(sequences.isEmpty)
        for entry in sequences {
            let ids = try XCTUnwrap(entry["ids"]?.array?.compactMap(\.int))
            let task = try XCTUnwrap(entry["task"]?.string)
            let text = try processor.text(sequence: ids, bosTokenID: 0, token: { vocabulary[$0] },
                                          tokenString: { String(scalars: $0.unicodeScalars.map { $0 == "Ġ" ? " " : $0 }) })
            XCTAssertTrue(Self.same(text, try XCTUnwrap(entry["text"]?.string)), "\(ids): \(JSONText.quoted(text))")
            Self.check({ try processor.answer(text: text, task: task, imageSize: (640, 480)).jsonText },
                       expected: try XCTUnwrap(entry["answer"]), "sequence \(ids) \(task)")
        }
        XCTAssertThrowsError(try processor.text(sequence: [], bosTokenID: 0, token: { _ in "" }, tokenString: { $0 })) {
            XCTAssertEqual($0 as? Florence2Error, .emptySequence)
        }
    }

    func testDequantizeEqualsTorchBitForBit() throws {
        let fixture = try Fixture()
        var checked = 0
        for entry in try fixture.list("dequantize") {
            let size = try XCTUnwrap(entry["size"]?.int)
            let bins = try XCTUnwrap(entry["bins"]?.array?.compactMap(\.int))
            let values = try XCTUnwrap(entry["values"]?.array?.compactMap(\.int))
            XCTAssertEqual(bins.count, values.count)
            for (bin, value) in zip(bins, values) {
                XCTAssertEqual(try Florence2PostProcessor.dequantize(Int64(bin), size: size), value, "bin \(bin) size \(size)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 7000)
    }

    func testQuantizeEqualsTorch() throws {
        let fixture = try Fixture()
        for entry in try fixture.list("quantize") {
            let size = try XCTUnwrap(entry["size"]?.int)
            let values = try XCTUnwrap(entry["values"]?.array)
            let bins = try XCTUnwrap(entry["bins"]?.array?.compactMap(\.int))
            for (value, bin) in zip(values, bins) {
                guard case .number(let x) = value else { return XCTFail("not a number") }
                XCTAssertEqual(try Florence2PostProcessor.quantize(Float(x), size: size), bin, "\(x) size \(size)")
            }
        }
    }

    func testConstructorRejectsWhatTransformersRejects() throws {
        let fixture = try Fixture()
        XCTAssertEqual(fixture.json["bad_grounding"]?["error"]?.string, "invalid_config")
        XCTAssertThrowsError(try fixture.postProcessor("bad_grounding")) { XCTAssertEqual(Self.kind($0), "invalid_config") }
        XCTAssertThrowsError(try Florence2PostProcessor(config: JSONConfig(values: ["phrase_grounding": ["banned_grounding_tokens": [1]]], file: "x"))) {
            XCTAssertEqual(Self.kind($0), "invalid_config")
        }
    }

    // MARK: Hand-written

    func testKnownBoxes() throws {
        let processor = try Florence2PostProcessor(config: JSONConfig(values: ["description_with_bboxes": [String: Any](), "bboxes": [String: Any]()], file: "test"))
        // (52 + 0.5) * 0.64 = 33.6, (333 + 0.5) * 0.48 = 160.08, 596.8, 371.76: truncated.
        let answer = try processor.answer(text: "</s><s>car<loc_52><loc_333><loc_932><loc_774></s>", task: "<OD>", imageSize: (640, 480))
        XCTAssertEqual(answer, .boxes(bboxes: [[33, 160, 596, 371]], labels: ["car"]))
        XCTAssertEqual(answer.jsonText, #"{"bboxes":[[33,160,596,371]],"labels":["car"]}"#)
        // float32 as torch: (312 + 0.5) * 0.144 is 45 exactly, 44.99999 in float32; 0.688 rounds up instead.
        XCTAssertEqual(try Florence2PostProcessor.dequantize(312, size: 144), 44)
        XCTAssertEqual(try Florence2PostProcessor.dequantize(312, size: 688), 215)
        XCTAssertEqual(try Florence2PostProcessor.dequantize(999, size: 1), 0)
        XCTAssertEqual(try Florence2PostProcessor.dequantize(999, size: 4000), 3998)
        // Two boxes for one phrase; a tag fragment stays in the label; non-ASCII is dropped.
        XCTAssertEqual(try processor.answer(text: "a <od>dog</od><loc_0><loc_0><loc_999><loc_999><loc_1><loc_1><loc_2><loc_2>café<loc_1><loc_2><loc_3><loc_4>",
                                            task: "<DENSE_REGION_CAPTION>", imageSize: (1000, 1000)),
                       .boxes(bboxes: [[0, 0, 999, 999], [1, 1, 2, 2], [1, 2, 3, 4]], labels: ["/od>", "/od>", "caf"]))
        // A region proposal has empty labels.
        XCTAssertEqual(try processor.answer(text: "<loc_0><loc_0><loc_999><loc_999>", task: "<REGION_PROPOSAL>", imageSize: (2000, 2000)),
                       .boxes(bboxes: [[1, 1, 1999, 1999]], labels: [""]))
        // Not in the config: transformers' ValueError.
        XCTAssertThrowsError(try processor.answer(text: "x", task: "<CAPTION>", imageSize: (1, 1))) {
            XCTAssertEqual($0 as? Florence2Error, .unsupportedParseTask("pure_text"))
            XCTAssertEqual("\($0)", "Unsupported parse task: pure_text")
        }
        // Beyond int64: torch cannot build the tensor.
        XCTAssertThrowsError(try processor.answer(text: "a<loc_99999999999999999999><loc_1><loc_2><loc_3>", task: "<OD>", imageSize: (9, 9)))
        // Beyond int32 once dequantized: undefined in torch, an error here.
        XCTAssertThrowsError(try Florence2PostProcessor.dequantize(9_000_000_000, size: 1000))
    }

    func testPolygonsAndText() throws {
        let config = JSONConfig(values: ["polygons": [String: Any](), "pure_text": [String: Any](), "description_with_bboxes_or_polygons": [String: Any]()], file: "test")
        let processor = try Florence2PostProcessor(config: config)
        // An odd run loses its last bin; a lone bin leaves an empty polygon.
        XCTAssertEqual(try processor.answer(text: "<loc_1><loc_2><loc_3><loc_4><sep><loc_5><loc_6><loc_7><sep><loc_9>",
                                            task: "<REFERRING_EXPRESSION_SEGMENTATION>", imageSize: (1000, 1000)),
                       .polygons(polygons: [[[1, 2, 3, 4], [5, 6], []]], labels: [""]))
        XCTAssertEqual(try processor.answer(text: "é car<poly><loc_10><loc_20><loc_30><loc_40></poly>", task: "<OPEN_VOCABULARY_DETECTION>", imageSize: (1000, 1000)).jsonText,
                       #"{"bboxes":[],"bboxes_labels":[],"polygons":[[[10,20,30,40]]],"polygons_labels":["é car"]}"#)
        // pure_text keeps <pad> and strips Python's whitespace (\x1c...\x1f included).
        XCTAssertEqual(try processor.answer(text: "</s><s>\u{1C} a <pad>cat\u{3000}</s>", task: "<MORE_DETAILED_CAPTION>", imageSize: (1, 1)),
                       .text("a <pad>cat"))
        XCTAssertEqual(try processor.answer(text: " x ", task: "not a task", imageSize: (1, 1)), .text("x"))
    }

    func testGroundingBansPhrasesExactly() throws {
        let config = JSONConfig(values: ["phrase_grounding": ["banned_grounding_tokens": ["the image", "é"]]], file: "test")
        let processor = try Florence2PostProcessor(config: config)
        let answer = try processor.answer(text: " the image <loc_1><loc_2><loc_3><loc_4>The image<loc_1><loc_2><loc_3><loc_4>e\u{301}<loc_5><loc_6><loc_7><loc_8>é<loc_5><loc_6><loc_7><loc_8>",
                                          task: "<CAPTION_TO_PHRASE_GROUNDING>", imageSize: (1000, 1000))
        // "e" + U+0301 is not the banned "é" to Python (code points), and loses its accent to the ASCII filter.
        XCTAssertEqual(answer, .boxes(bboxes: [[1, 2, 3, 4], [5, 6, 7, 8]], labels: ["The image", "e"]))
    }

    func testPromptConvenience() throws {
        XCTAssertEqual(try Florence2Task.prompt(task: "<OD>", text: nil), "Locate the objects with category name in the image.")
        XCTAssertEqual(try Florence2Task.prompt(task: "<OPEN_VOCABULARY_DETECTION>", text: "  a dog "), "Locate a dog in the image.")
        XCTAssertThrowsError(try Florence2Task.prompt(task: "<OD>", text: "a dog")) {
            XCTAssertEqual($0 as? Florence2Error, .taskTokenNotAlone("<OD>"))
            XCTAssertEqual("\($0)", "Task token <OD> should be the only content in the prompt.")
        }
        XCTAssertEqual(try Florence2Task.prompt("just text"), "just text")
        XCTAssertEqual(Florence2Task(token: "<OD>"), .objectDetection)
        XCTAssertNil(Florence2Task(token: "<od>"))
        XCTAssertEqual(try Florence2Task.locationTokens(box: (33.6, 160.08, 596.8, 371.76), imageSize: (640, 480)),
                       "<loc_52><loc_333><loc_932><loc_774>")
        XCTAssertEqual(try Florence2PostProcessor.quantize(-5, size: 640), 0)
        XCTAssertEqual(try Florence2PostProcessor.quantize(1e9, size: 640), 999)
        XCTAssertThrowsError(try Florence2PostProcessor.quantize(0, size: 0))
    }

    /// Where ICU and Python `re` differ, the translated pattern behaves as Python's.
    func testPythonRegexTranslation() throws {
        func findAll(_ pattern: String, _ text: String) throws -> [[String]] { try PythonRegex(pattern).findAll(text) }
        // `.` crosses "\r", U+0085 and U+2028 (ICU's default line ends) but not "\n".
        XCTAssertEqual(try findAll("(.+)(x)", "a\rb\u{85}c\u{2028}x"), [["a\rb\u{85}c\u{2028}", "x"]])
        XCTAssertEqual(try findAll("(.+)(x)", "a\nbx"), [["b", "x"]])
        // `$` before a final "\n" only.
        XCTAssertEqual(try findAll("(a)(b)$", "ab\n"), [["a", "b"]])
        XCTAssertEqual(try findAll("(a)(b)$", "ab\r"), [])
        XCTAssertEqual(try findAll("(a)(b)\\Z", "ab\n"), [])
        // `\s` is str.isspace: U+001C...U+001F are spaces, U+180E is not; `\S` and `\s` in a class.
        XCTAssertEqual(try findAll("(\\s+)(\\S)", "\u{1C}\u{1F} x"), [["\u{1C}\u{1F} ", "x"]])
        XCTAssertEqual(try findAll("([\\s]+)([^\\s])", "\u{180E}\u{1D}y"), [["\u{1D}", "y"]])
        // `\d` is any decimal digit, as ICU's.
        XCTAssertEqual(try findAll("(\\d)(\\d)", "٣𝟗"), [["٣", "𝟗"]])
        // Python's literal braces, `{,n}`, named groups and their back references.
        XCTAssertEqual(try findAll("(a{,2})({)", "aaa{"), [["aa", "{"]])
        XCTAssertEqual(try findAll("(?P<w>x)(?P=w)(y)", "xxy"), [["x", "y"]])
        XCTAssertEqual(try findAll("([[a])(&)", "[&"), [["[", "&"]])
        XCTAssertThrowsError(try PythonRegex("(a"))
    }

    func testEncodableShape() throws {
        let encoder = JSONEncoder()
        func object(_ answer: Florence2Answer) throws -> NSDictionary {
            try XCTUnwrap(JSONSerialization.jsonObject(with: encoder.encode(answer)) as? NSDictionary)
        }
        XCTAssertEqual(try object(.boxes(bboxes: [[1, 2, 3, 4]], labels: ["a"])), ["bboxes": [[1, 2, 3, 4]], "labels": ["a"]])
        XCTAssertEqual(try object(.boxes(bboxes: [], labels: [], scores: [0.5])), ["bboxes": [], "labels": [], "scores": [0.5]])
        XCTAssertEqual(try object(.quadBoxes(quadBoxes: [[1, 2, 3, 4, 5, 6, 7, 8]], labels: ["t"])),
                       ["quad_boxes": [[1, 2, 3, 4, 5, 6, 7, 8]], "labels": ["t"]])
        XCTAssertEqual(try object(.polygons(polygons: [[[1, 2]]], labels: [""])), ["polygons": [[[1, 2]]], "labels": [""]])
        XCTAssertEqual(try object(.boxesAndPolygons(bboxes: [], bboxesLabels: [], polygons: [[[1, 2]]], polygonsLabels: ["x"])),
                       ["bboxes": [], "bboxes_labels": [], "polygons": [[[1, 2]]], "polygons_labels": ["x"]])
        XCTAssertEqual(String(decoding: try encoder.encode(Florence2Answer.text("a \"b\"")), as: UTF8.self), #""a \"b\"""#)
    }
}
