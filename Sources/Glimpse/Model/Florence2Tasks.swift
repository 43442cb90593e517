import Foundation

// Florence-2's task prompts and the parsing of what it generates, as transformers 5.24's
// `Florence2Processor._construct_prompts`, `Florence2Processor.post_process_generation` and
// `Florence2PostProcessor` (models/florence2/processing_florence2.py) do them.
//
// Python strings are sequences of code points and Swift's `String` compares by canonical
// equivalence, so all matching here runs on `[Unicode.Scalar]`: "é" and "e\u{301}" stay
// different, as in Python. The fixed regular expressions are hand-written scanners that follow
// Python `re`'s backtracking exactly (each one says why its shortcut is exact); only a custom OCR
// `PATTERN` from the config goes through ICU (`NSRegularExpression`), translated first.

typealias Scalars = [Unicode.Scalar]

// MARK: - Tasks and prompts

/// One of Florence-2's task tokens, in the order of the processor's tables (the order
/// `_construct_prompts` tries them in).
public enum Florence2Task: String, CaseIterable, Sendable {
    // `task_prompts_without_inputs`: the token must be the whole prompt.
    case ocr = "<OCR>"
    case ocrWithRegion = "<OCR_WITH_REGION>"
    case caption = "<CAPTION>"
    case detailedCaption = "<DETAILED_CAPTION>"
    case moreDetailedCaption = "<MORE_DETAILED_CAPTION>"
    case objectDetection = "<OD>"
    case denseRegionCaption = "<DENSE_REGION_CAPTION>"
    case regionProposal = "<REGION_PROPOSAL>"
    // `task_prompts_with_input`: the text after the token fills `{input}`.
    case captionToPhraseGrounding = "<CAPTION_TO_PHRASE_GROUNDING>"
    case referringExpressionSegmentation = "<REFERRING_EXPRESSION_SEGMENTATION>"
    case regionToSegmentation = "<REGION_TO_SEGMENTATION>"
    case openVocabularyDetection = "<OPEN_VOCABULARY_DETECTION>"
    case regionToCategory = "<REGION_TO_CATEGORY>"
    case regionToDescription = "<REGION_TO_DESCRIPTION>"
    case regionToOCR = "<REGION_TO_OCR>"

    /// The task token, as the model's tokenizer and `--task` spell it.
    public var token: String { rawValue }

    /// Whether the task reads text after its token (`task_prompts_with_input`).
    public var takesInput: Bool {
        switch self {
        case .ocr, .ocrWithRegion, .caption, .detailedCaption, .moreDetailedCaption, .objectDetection,
             .denseRegionCaption, .regionProposal: return false
        default: return true
        }
    }

    /// The processor's prompt for the task: a fixed question, or a template with `{input}`.
    public var promptTemplate: String {
        switch self {
        case .ocr: return "What is the text in the image?"
        case .ocrWithRegion: return "What is the text in the image, with regions?"
        case .caption: return "What does the image describe?"
        case .detailedCaption: return "Describe in detail what is shown in the image."
        case .moreDetailedCaption: return "Describe with a paragraph what is shown in the image."
        case .objectDetection: return "Locate the objects with category name in the image."
        case .denseRegionCaption: return "Locate the objects in the image, with their descriptions."
        case .regionProposal: return "Locate the region proposals in the image."
        case .captionToPhraseGrounding: return "Locate the phrases in the caption: {input}"
        case .referringExpressionSegmentation: return "Locate {input} in the image with mask"
        case .regionToSegmentation: return "What is the polygon mask of region {input}"
        case .openVocabularyDetection: return "Locate {input} in the image."
        case .regionToCategory: return "What is the region {input}?"
        case .regionToDescription: return "What does the region {input} describe?"
        case .regionToOCR: return "What text is in the region {input}?"
        }
    }

    /// How the generated text is parsed (`tasks_answer_post_processing_type`).
    public var answerType: Florence2AnswerType {
        switch self {
        case .ocr, .caption, .detailedCaption, .moreDetailedCaption, .regionToCategory, .regionToDescription,
             .regionToOCR: return .pureText
        case .ocrWithRegion: return .ocr
        case .objectDetection, .denseRegionCaption: return .descriptionWithBboxes
        case .regionProposal: return .bboxes
        case .captionToPhraseGrounding: return .phraseGrounding
        case .referringExpressionSegmentation, .regionToSegmentation: return .polygons
        case .openVocabularyDetection: return .descriptionWithBboxesOrPolygons
        }
    }

    /// The task whose token is exactly `token` (code point for code point, as a Python dict lookup).
    public init?(token: String) {
        guard let task = Self.allCases.first(where: { $0.rawValue.unicodeScalars.elementsEqual(token.unicodeScalars) }) else {
            return nil
        }
        self = task
    }

    /// The answer type post-processing uses for `task`; a string that is no task token is
    /// parsed as pure text (`tasks_answer_post_processing_type.get(task, "pure_text")`).
    public static func answerType(forTask task: String) -> Florence2AnswerType {
        Florence2Task(token: task)?.answerType ?? .pureText
    }

    /// The prompt the model sees for one processor text input (`_construct_prompts` on one string).
    ///
    /// A token of a task without input must be the whole text; the first token of a task with input
    /// (in table order) is removed everywhere and the stripped rest fills the template; text with
    /// no task token passes through unchanged.
    public static func prompt(_ text: String) throws -> String {
        var prompt = Scalars(text.unicodeScalars)
        for task in allCases where !task.takesInput {
            let token = Scalars(task.rawValue.unicodeScalars)
            guard prompt.firstIndex(of: token, from: 0) != nil else { continue }
            guard prompt == token else { throw Florence2Error.taskTokenNotAlone(task.rawValue) }
            prompt = Scalars(task.promptTemplate.unicodeScalars)
            break
        }
        for task in allCases where task.takesInput {
            let token = Scalars(task.rawValue.unicodeScalars)
            guard prompt.firstIndex(of: token, from: 0) != nil else { continue }
            let input = prompt.replacing(token, with: []).strippingPythonWhitespace()
            // str.format(input=...): the templates hold no other braces, and the input is not re-read.
            prompt = Scalars(task.promptTemplate.unicodeScalars).replacing(Scalars("{input}".unicodeScalars), with: input)
            break
        }
        return String(scalars: prompt)
    }

    /// The prompt for a task and its optional text, as a caller of the processor passes them
    /// (`text=task + input`): `prompt(task: "<OD>", text: "a dog")` fails as transformers does,
    /// since `<OD>` takes no input.
    public static func prompt(task: String, text: String?) throws -> String {
        try prompt(task + (text ?? ""))
    }

    /// The location tokens of a region given in pixels ("<loc_x0><loc_y0><loc_x1><loc_y1>"), for the
    /// region tasks' input; quantized as `Florence2PostProcessor.quantize` does.
    public static func locationTokens(box: (x0: Float, y0: Float, x1: Float, y1: Float),
                                      imageSize: (width: Int, height: Int)) throws -> String {
        let bins = [try Florence2PostProcessor.quantize(box.x0, size: imageSize.width),
                    try Florence2PostProcessor.quantize(box.y0, size: imageSize.height),
                    try Florence2PostProcessor.quantize(box.x1, size: imageSize.width),
                    try Florence2PostProcessor.quantize(box.y1, size: imageSize.height)]
        return bins.map { "<loc_\($0)>" }.joined()
    }
}

/// The keys of `post_processor_config`: how a task's generated text is parsed.
public enum Florence2AnswerType: String, CaseIterable, Sendable {
    case pureText = "pure_text"
    case ocr
    case phraseGrounding = "phrase_grounding"
    case descriptionWithBboxes = "description_with_bboxes"
    /// No task uses it, but the config lists it and `post_process_generation` shapes it.
    case descriptionWithPolygons = "description_with_polygons"
    case polygons
    case bboxes
    case descriptionWithBboxesOrPolygons = "description_with_bboxes_or_polygons"
}

/// What went wrong building a Florence-2 prompt or parsing its answer. The two that transformers
/// raises as `ValueError` read as its messages.
public enum Florence2Error: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// A task without input was given with other text.
    case taskTokenNotAlone(String)
    /// `post_processor_config` has no entry for the task's answer type.
    case unsupportedParseTask(String)
    /// A location that has no coordinate: an integer beyond int64 (torch's "Overflow when
    /// unpacking long long"), a coordinate beyond int32 (torch's `.int()` is undefined there), or a
    /// custom pattern's group that is no integer (Python's `int()` fails).
    case invalidLocation(String)
    /// A custom OCR `PATTERN` that does not compile or whose groups are not text then coordinate pairs.
    case invalidPattern(pattern: String, detail: String)
    /// A generated sequence without tokens (transformers fails reading its first id).
    case emptySequence

    public var description: String {
        switch self {
        case .taskTokenNotAlone(let token): return "Task token \(token) should be the only content in the prompt."
        case .unsupportedParseTask(let type): return "Unsupported parse task: \(type)"
        case .invalidLocation(let what): return "Florence-2 answer: \(what)"
        case .invalidPattern(let pattern, let detail): return "Florence-2 OCR PATTERN '\(pattern)': \(detail)"
        case .emptySequence: return "Florence-2 answer: the generated sequence is empty"
        }
    }
    public var errorDescription: String? { description }
}

// MARK: - Answers

/// A parsed answer, shaped as the value `post_process_generation` returns under the task's key.
public enum Florence2Answer: Equatable, Sendable, Encodable {
    /// pure_text: the text without `<s>`, `</s>` and surrounding whitespace.
    case text(String)
    /// description_with_bboxes, bboxes, phrase_grounding: `{"bboxes": [[x0, y0, x1, y1]...], "labels"}`.
    /// transformers adds "scores" only if its parser gives them, which none does.
    case boxes(bboxes: [[Int]], labels: [String], scores: [Double]? = nil)
    /// ocr: `{"quad_boxes": [[x0, y0, ... x3, y3]...], "labels"}`.
    case quadBoxes(quadBoxes: [[Int]], labels: [String])
    /// polygons, description_with_polygons: `{"polygons": [[[x, y, x, y...]...]...], "labels"}`,
    /// each label's list of polygons.
    case polygons(polygons: [[[Int]]], labels: [String])
    /// description_with_bboxes_or_polygons: all four keys, always.
    case boxesAndPolygons(bboxes: [[Int]], bboxesLabels: [String], polygons: [[[Int]]], polygonsLabels: [String])

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Keys in transformers' dict order.
    public func encode(to encoder: Encoder) throws {
        switch self {
        case .text(let text):
            var container = encoder.singleValueContainer()
            try container.encode(text)
        case .boxes(let bboxes, let labels, let scores):
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(bboxes, forKey: Key("bboxes"))
            try container.encode(labels, forKey: Key("labels"))
            if let scores { try container.encode(scores, forKey: Key("scores")) }
        case .quadBoxes(let boxes, let labels):
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(boxes, forKey: Key("quad_boxes"))
            try container.encode(labels, forKey: Key("labels"))
        case .polygons(let polygons, let labels):
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(polygons, forKey: Key("polygons"))
            try container.encode(labels, forKey: Key("labels"))
        case .boxesAndPolygons(let bboxes, let bboxesLabels, let polygons, let polygonsLabels):
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(bboxes, forKey: Key("bboxes"))
            try container.encode(bboxesLabels, forKey: Key("bboxes_labels"))
            try container.encode(polygons, forKey: Key("polygons"))
            try container.encode(polygonsLabels, forKey: Key("polygons_labels"))
        }
    }

    /// Compact JSON in transformers' key order, for Glimpse's hand-written JSON lines; the same
    /// text as Python's `json.dumps(answer, ensure_ascii=False, separators=(",", ":"))`.
    public var jsonText: String {
        func ints(_ list: [Int]) -> String { "[" + list.map(String.init).joined(separator: ",") + "]" }
        func boxes(_ list: [[Int]]) -> String { "[" + list.map(ints).joined(separator: ",") + "]" }
        func polygons(_ list: [[[Int]]]) -> String { "[" + list.map(boxes).joined(separator: ",") + "]" }
        func strings(_ list: [String]) -> String { "[" + list.map { JSONText.quoted($0) }.joined(separator: ",") + "]" }
        switch self {
        case .text(let text): return JSONText.quoted(text)
        case .boxes(let bboxes, let labels, let scores):
            var out = "{\"bboxes\":\(boxes(bboxes)),\"labels\":\(strings(labels))"
            if let scores { out += ",\"scores\":[" + scores.map { RecordCoding.number($0) }.joined(separator: ",") + "]" }
            return out + "}"
        case .quadBoxes(let quads, let labels):
            return "{\"quad_boxes\":\(boxes(quads)),\"labels\":\(strings(labels))}"
        case .polygons(let list, let labels):
            return "{\"polygons\":\(polygons(list)),\"labels\":\(strings(labels))}"
        case .boxesAndPolygons(let bboxes, let bboxesLabels, let list, let polygonsLabels):
            return "{\"bboxes\":\(boxes(bboxes)),\"bboxes_labels\":\(strings(bboxesLabels)),"
                + "\"polygons\":\(polygons(list)),\"polygons_labels\":\(strings(polygonsLabels))}"
        }
    }
}

// MARK: - Post-processor

/// Parses Florence-2's generated text into boxes, quads, polygons or text, as transformers'
/// `Florence2Processor.post_process_generation` with its `Florence2PostProcessor`.
public struct Florence2PostProcessor: Sendable {
    /// processor_config.json's `post_processor_config`; nil parses nothing (transformers' `{}`).
    public let config: JSONConfig?
    /// `banned_grounding_tokens`: phrases phrase grounding drops, compared code point for code point.
    let bannedGroundingPhrases: Set<Scalars>
    /// The tokenizer's `all_special_tokens`: kept verbatim when a sequence is turned into text.
    let specialTokens: Set<Scalars>
    /// transformers' `quantize_bins`.
    public static let bins = 1000

    /// Reads `banned_grounding_tokens` now, as transformers' constructor does; every other key is
    /// read when an answer needs it, so a malformed entry fails only the tasks that use it.
    public init(config: JSONConfig?, specialTokens: Set<String> = []) throws {
        self.config = config
        self.specialTokens = Set(specialTokens.map { Scalars($0.unicodeScalars) })
        var banned: Set<Scalars> = []
        if let config, let grounding = config.values["phrase_grounding"] {
            let file = "\(config.file) [phrase_grounding]"
            guard let object = grounding as? [String: Any] else {
                throw ModelError.invalidConfig(file: config.file, detail: "key 'phrase_grounding' is not an object")
            }
            if let list = object["banned_grounding_tokens"] {
                guard let items = list as? [Any] else {
                    throw ModelError.invalidConfig(file: file, detail: "key 'banned_grounding_tokens' is not a list of strings")
                }
                for item in items {
                    guard let phrase = item as? String else {
                        throw ModelError.invalidConfig(file: file, detail: "key 'banned_grounding_tokens' is not a list of strings")
                    }
                    banned.insert(Scalars(phrase.unicodeScalars))
                }
            }
        }
        bannedGroundingPhrases = banned
    }

    /// `post_process_generation(text=text, task=task, image_size=imageSize)[task]`.
    public func answer(text: String, task: String, imageSize: (width: Int, height: Int)) throws -> Florence2Answer {
        try answer(text: text, type: Florence2Task.answerType(forTask: task), imageSize: imageSize)
    }

    /// The answer for an answer type directly (what `post_process_generation` does once it has the type).
    public func answer(text: String, type: Florence2AnswerType, imageSize: (width: Int, height: Int)) throws -> Florence2Answer {
        let entry = try self.entry(type)
        let raw = Scalars(text.unicodeScalars)
        let dequantizer = Dequantizer(size: imageSize)
        switch type {
        case .pureText:
            // No <pad> removal here, unlike the parsers.
            let text = raw.replacing(Self.bos, with: []).replacing(Self.eos, with: []).strippingPythonWhitespace()
            return .text(String(scalars: text))
        case .ocr:
            let pattern = try entry.string("PATTERN")
            // Read per match, as transformers compares it inside its loop: a bad value fails only with matches.
            let threshold = Result { try Self.areaThreshold(entry) }
            let found = try parseOCR(raw, pattern: pattern, threshold: threshold, imageSize: imageSize, dequantizer: dequantizer)
            return .quadBoxes(quadBoxes: found.map(\.box), labels: found.map(\.label))
        case .phraseGrounding:
            let found = try parseBoxes(raw, allowEmptyPhrase: false, banned: bannedGroundingPhrases, dequantizer: dequantizer)
            return .boxes(bboxes: found.map(\.box), labels: found.map(\.label))
        case .descriptionWithBboxes, .bboxes:
            let found = try parseBoxes(raw, allowEmptyPhrase: type == .bboxes, banned: [], dequantizer: dequantizer)
            return .boxes(bboxes: found.map(\.box), labels: found.map(\.label))
        case .descriptionWithPolygons, .polygons:
            let found = try parsePolygons(raw, allowEmptyPhrase: type == .polygons, dequantizer: dequantizer)
            return .polygons(polygons: found.map(\.polygons), labels: found.map(\.label))
        case .descriptionWithBboxesOrPolygons:
            // Decided on the text before <s>/</s>/<pad> are removed, as transformers does.
            if raw.firstIndex(of: Self.polyStart, from: 0) != nil {
                let found = try parsePolygons(raw, allowEmptyPhrase: false, dequantizer: dequantizer)
                return .boxesAndPolygons(bboxes: [], bboxesLabels: [], polygons: found.map(\.polygons), polygonsLabels: found.map(\.label))
            }
            let found = try parseBoxes(raw, allowEmptyPhrase: false, banned: [], dequantizer: dequantizer)
            return .boxesAndPolygons(bboxes: found.map(\.box), bboxesLabels: found.map(\.label), polygons: [], polygonsLabels: [])
        }
    }

    /// The text of generated tokens as `decode_with_spans` builds it: special tokens verbatim, each
    /// other token through `tokenString` alone (the tokenizer's `convert_tokens_to_string([token])`).
    public func text(tokens: [String], tokenString: (String) throws -> String) rethrows -> String {
        var text = ""
        for token in tokens {
            text += specialTokens.contains(Scalars(token.unicodeScalars)) ? token : try tokenString(token)
        }
        return text
    }

    /// The text transformers parses for a generated sequence of ids (`post_process_generation(sequence=...)`):
    /// a leading BOS dropped, then `text(tokens:tokenString:)` over `token(id)` (`convert_ids_to_tokens`).
    public func text(sequence: [Int], bosTokenID: Int?, token: (Int) throws -> String,
                     tokenString: (String) throws -> String) throws -> String {
        guard let first = sequence.first else { throw Florence2Error.emptySequence }
        let ids = first == bosTokenID ? sequence.dropFirst() : sequence[...]
        return try text(tokens: ids.map(token), tokenString: tokenString)
    }

    // MARK: Quantization

    /// One pixel coordinate to its bin, as `quantize` computes it on a float32 tensor:
    /// `floor(x / (size / 1000))` clamped to 0...999, in float32.
    public static func quantize(_ x: Float, size: Int) throws -> Int {
        guard !x.isNaN else { throw Florence2Error.invalidLocation("coordinate NaN has no bin") }
        let perBin = Float(Double(size) / Double(bins))
        let q = (x / perBin).rounded(.down)
        // 0 / 0 (an image of size 0): torch's clamp keeps the NaN and `.int()` is undefined.
        guard !q.isNaN else { throw Florence2Error.invalidLocation("coordinate \(x) has no bin for size \(size)") }
        return Int(min(max(q, 0), Float(bins - 1)))
    }

    /// One bin back to a pixel coordinate, as `dequantize` computes it: the int64 bin plus 0.5 in
    /// float32, times `size / 1000` (a Python float that torch rounds to float32 before the product:
    /// checked bit for bit against torch), truncated toward zero by `.int()`.
    public static func dequantize(_ bin: Int64, size: Int) throws -> Int {
        try dequantize(bin, perBin: Float(Double(size) / Double(bins)))
    }

    static func dequantize(_ bin: Int64, perBin: Float) throws -> Int {
        let value = (Float(bin) + 0.5) * perBin
        // Beyond int32, torch's float-to-int conversion is undefined (x86 gives INT_MIN).
        guard value >= -2_147_483_648, value < 2_147_483_648 else {
            throw Florence2Error.invalidLocation("location \(bin) is beyond int32 once dequantized")
        }
        return Int(Int32(value))
    }

    struct Dequantizer {
        let perBinWidth: Float, perBinHeight: Float
        init(size: (width: Int, height: Int)) {
            perBinWidth = Float(Double(size.width) / Double(Florence2PostProcessor.bins))
            perBinHeight = Float(Double(size.height) / Double(Florence2PostProcessor.bins))
        }
        /// Bins as (x, y) pairs (`reshape(-1, 2)` or the four columns of a box).
        func points(_ bins: [Int64]) throws -> [Int] {
            try bins.enumerated().map { i, bin in
                try Florence2PostProcessor.dequantize(bin, perBin: i % 2 == 0 ? perBinWidth : perBinHeight)
            }
        }
    }

    // MARK: Config

    /// The config entry of an answer type: missing is transformers' "Unsupported parse task"; an
    /// entry that is not an object fails as `config.get` would.
    private func entry(_ type: Florence2AnswerType) throws -> JSONConfig {
        guard let config, let value = config.values[type.rawValue] else {
            throw Florence2Error.unsupportedParseTask(type.rawValue)
        }
        guard let object = value as? [String: Any] else {
            throw ModelError.invalidConfig(file: config.file, detail: "key '\(type.rawValue)' is not an object")
        }
        return JSONConfig(values: object, file: "\(config.file) [\(type.rawValue)]")
    }

    /// `config.get("AREA_THRESHOLD", 0.0)`: absent is 0; null fails, as `None > 0` does in Python.
    private static func areaThreshold(_ entry: JSONConfig) throws -> Double {
        guard let value = entry.values["AREA_THRESHOLD"] else { return 0 }
        guard !(value is NSNull), let threshold = try entry.double("AREA_THRESHOLD") else {
            throw ModelError.invalidConfig(file: entry.file, detail: "key 'AREA_THRESHOLD' is not a number")
        }
        return threshold
    }

    // MARK: Parsers

    static let bos = Scalars("<s>".unicodeScalars)
    static let eos = Scalars("</s>".unicodeScalars)
    static let pad = Scalars("<pad>".unicodeScalars)
    static let polyStart = Scalars("<poly>".unicodeScalars)
    static let polyEnd = Scalars("</poly>".unicodeScalars)
    static let sep = Scalars("<sep>".unicodeScalars)
    /// The lookahead that ends a phrase: `(?=<od>|</od>|<box>|</box>|<bbox>|</bbox>|<loc_)`.
    static let phraseEnds = ["<od>", "</od>", "<box>", "</box>", "<bbox>", "</bbox>", "<loc_"].map { Scalars($0.unicodeScalars) }
    /// The polygon parser's, which adds `<poly>`.
    static let polygonPhraseEnds = phraseEnds + [polyStart]
    /// transformers' OCR pattern, used when the config has no `PATTERN`.
    public static let defaultOCRPattern = #"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>"#

    /// The parsers' first step: `<s>`, `</s>` and `<pad>` removed, in that order.
    static func cleaned(_ text: Scalars) -> Scalars {
        text.replacing(bos, with: []).replacing(eos, with: []).replacing(pad, with: [])
    }

    /// `parse_ocr_from_text_and_spans`.
    func parseOCR(_ raw: Scalars, pattern: String?, threshold: Result<Double, Error>, imageSize: (width: Int, height: Int),
                  dequantizer: Dequantizer, forceICU: Bool = false) throws -> [(box: [Int], label: String)] {
        let text = Self.cleaned(raw)
        let matches: [(content: Scalars, coordinates: [Scalars])]
        if !forceICU, pattern == nil || pattern == Self.defaultOCRPattern {
            matches = PythonPatterns.ocrMatches(text).map { match in
                (Scalars(text[match.content]), match.locations.map { Scalars(text[$0]) })
            }
        } else {
            let pattern = pattern ?? Self.defaultOCRPattern
            let regex = try PythonRegex(pattern)
            let all = regex.findAll(String(scalars: text))
            // transformers fails on such groups only once something matched (unpacking, reshape(-1, 2)).
            if !all.isEmpty {
                guard regex.groupCount >= 2 else {
                    throw Florence2Error.invalidPattern(pattern: pattern, detail: "needs a text group and coordinate groups, has \(regex.groupCount) groups")
                }
                guard (regex.groupCount - 1) % 2 == 0 else {
                    throw Florence2Error.invalidPattern(pattern: pattern, detail: "\(regex.groupCount - 1) coordinate groups do not make (x, y) pairs")
                }
            }
            matches = all.map { groups in
                (Scalars(groups[0].unicodeScalars), groups.dropFirst().map { Scalars($0.unicodeScalars) })
            }
        }
        var found: [(box: [Int], label: String)] = []
        for match in matches {
            let bins = try match.coordinates.map { try PythonPatterns.pythonInt($0) }
            let quad = try dequantizer.points(bins)
            if try threshold.get() > 0 {
                // The shoelace formula over the first three edges only (the closing edge is left
                // out), as transformers writes it; Python ints are exact, hence Int128.
                guard quad.count >= 8 else {
                    throw Florence2Error.invalidPattern(pattern: Self.describe(pattern), detail: "an area needs four points, a match has \(quad.count / 2)")
                }
                var sum: Int128 = 0
                for i in 0..<3 {
                    sum += Int128(quad[2 * i]) * Int128(quad[2 * i + 3]) - Int128(quad[2 * i + 2]) * Int128(quad[2 * i + 1])
                }
                let area = 0.5 * Double(sum.magnitude)
                if area < Double(Int128(imageSize.width) * Int128(imageSize.height)) * (try threshold.get()) { continue }
            }
            found.append((quad, String(scalars: match.content.strippingPythonWhitespace())))
        }
        return found
    }

    private static func describe(_ pattern: String?) -> String { pattern ?? defaultOCRPattern }

    /// `parse_description_with_bboxes_from_text_and_spans` and, with `banned`,
    /// `parse_phrase_grounding_from_text_and_spans` (whose per-phrase box lists
    /// `post_process_generation` flattens into the same one-label-per-box lists).
    func parseBoxes(_ raw: Scalars, allowEmptyPhrase: Bool, banned: Set<Scalars>,
                    dequantizer: Dequantizer) throws -> [(box: [Int], label: String)] {
        let text = Self.cleaned(raw)
        var found: [(box: [Int], label: String)] = []
        for range in PythonPatterns.phrases(text, allowEmptyPhrase: allowEmptyPhrase, token: PythonPatterns.locationTokenEnd) {
            // `.replace("<ground>", "", 1).replace("<obj>", "", 1)`: a phrase holds no "<" before its
            // locations, so these find nothing, but they cost nothing either.
            let phraseText = Scalars(text[range])
                .replacing(Scalars("<ground>".unicodeScalars), with: [], maxCount: 1)
                .replacing(Scalars("<obj>".unicodeScalars), with: [], maxCount: 1)
            if phraseText.isEmpty && !allowEmptyPhrase { continue }
            guard let head = PythonPatterns.leadingPhrase(phraseText, endingAt: Self.phraseEnds) else { continue }
            let phrase = Scalars(phraseText[head]).strippingPythonWhitespace()
            if banned.contains(phrase) { continue }
            let boxes = PythonPatterns.boxes(phraseText)
            if boxes.isEmpty { continue }
            let dequantized = try boxes.map { box in
                try dequantizer.points(box.map { try PythonPatterns.pythonInt(Scalars(phraseText[$0])) })
            }
            // `.encode("ascii", "ignore")`: every non-ASCII code point dropped, nothing re-stripped.
            let label = String(scalars: phrase.filter { $0.isASCII })
            for box in dequantized { found.append((box, label)) }
        }
        return found
    }

    /// `parse_description_with_polygons_from_text_and_spans` with `with_box_at_start=False`.
    func parsePolygons(_ raw: Scalars, allowEmptyPhrase: Bool,
                       dequantizer: Dequantizer) throws -> [(polygons: [[Int]], label: String)] {
        let text = Self.cleaned(raw)
        var found: [(polygons: [[Int]], label: String)] = []
        for range in PythonPatterns.phrases(text, allowEmptyPhrase: allowEmptyPhrase, token: PythonPatterns.polygonToken) {
            let phraseText = Scalars(text[range])
            // `re.sub(r"^<loc_\d+>", "", phrase_text, count=1)`
            var stripped = phraseText[...]
            if let token = PythonPatterns.locationToken(phraseText, at: 0) { stripped = phraseText[token.end...] }
            if stripped.isEmpty && !allowEmptyPhrase { continue }
            let strippedText = Scalars(stripped)
            guard let head = PythonPatterns.leadingPhrase(strippedText, endingAt: Self.polygonPhraseEnds) else { continue }
            // Not ASCII-filtered, unlike the box parsers' labels.
            let label = String(scalars: Scalars(strippedText[head]).strippingPythonWhitespace())

            let instances: [Range<Int>]
            if phraseText.firstIndex(of: Self.polyStart, from: 0) != nil, phraseText.firstIndex(of: Self.polyEnd, from: 0) != nil {
                instances = PythonPatterns.polygonInstances(phraseText)
            } else {
                instances = [0..<phraseText.count]
            }
            for instance in instances {
                let part = Scalars(phraseText[instance])
                let runs = PythonPatterns.polygonRuns(part)
                if runs.isEmpty { continue }
                var polygons: [[Int]] = []
                for run in runs {
                    var bins = try PythonPatterns.locations(in: part, run).map { try PythonPatterns.pythonInt(Scalars(part[$0])) }
                    // An odd count loses its last bin; a single bin leaves an empty polygon.
                    if bins.count % 2 == 1 { bins.removeLast() }
                    polygons.append(try dequantizer.points(bins))
                }
                found.append((polygons, label))
            }
        }
        return found
    }
}

// MARK: - Python `re` semantics for the fixed patterns

/// Scanners equal to the fixed regular expressions of transformers' Florence-2 post-processor under
/// Python `re`: `\d` is any Unicode decimal digit (`str.isdecimal`), `\s` is `str.isspace`, `.` is
/// anything but "\n", `$` is the end or before a final "\n".
enum PythonPatterns {
    /// Python's `str.isspace()` (and `\s`, and what `str.strip()` removes): Unicode White_Space
    /// differs (it lacks U+001C...U+001F), so the set is spelled out, as CPython 3.11 has it.
    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default: return false
        }
    }

    /// `\d` (Python: `str.isdecimal`, general category Nd) and its value for `int()`.
    static func decimalValue(_ s: Unicode.Scalar) -> Int? {
        if s.value < 0x80 { return s.value >= 0x30 && s.value <= 0x39 ? Int(s.value - 0x30) : nil }
        guard s.properties.numericType == .decimal, let value = s.properties.numericValue else { return nil }
        return Int(value)
    }

    static let locPrefix = Scalars("<loc_".unicodeScalars)

    /// `<loc_(\d+)>` at `i`: its end and the digits. `\d+` is greedy and must meet ">", so there is
    /// one way to match or none.
    static func locationToken(_ s: Scalars, at i: Int) -> (end: Int, digits: Range<Int>)? {
        guard s.hasPrefix(locPrefix, at: i) else { return nil }
        var j = i + locPrefix.count
        while j < s.count, decimalValue(s[j]) != nil { j += 1 }
        guard j > i + locPrefix.count, j < s.count, s[j] == ">" else { return nil }
        return (j + 1, (i + locPrefix.count)..<j)
    }

    static func locationTokenEnd(_ s: Scalars, at i: Int) -> Int? { locationToken(s, at: i)?.end }

    /// `<loc_\d+>|<sep>|<poly>|</poly>` at `i` (no alternative is a prefix of another).
    static func polygonToken(_ s: Scalars, at i: Int) -> Int? {
        if let end = locationToken(s, at: i)?.end { return end }
        for token in [Florence2PostProcessor.sep, Florence2PostProcessor.polyStart, Florence2PostProcessor.polyEnd]
        where s.hasPrefix(token, at: i) { return i + token.count }
        return nil
    }

    /// `re.findall` of `([^<]+(?:TOKEN){4,})` or, allowing an empty phrase, `(?:(?:TOKEN){4,})`.
    ///
    /// `[^<]+` can only end where a "<" follows, so from a start it takes the whole run up to the
    /// next "<"; every start inside a run that fails fails alike, and scanning resumes past the "<".
    /// `{4,}` is greedy with nothing after it: the longest run of tokens.
    static func phrases(_ s: Scalars, allowEmptyPhrase: Bool, token: (Scalars, Int) -> Int?) -> [Range<Int>] {
        func tokens(from start: Int) -> (end: Int, count: Int) {
            var end = start, count = 0
            while let next = token(s, end) { end = next; count += 1 }
            return (end, count)
        }
        var found: [Range<Int>] = []
        var p = 0
        while p < s.count {
            if allowEmptyPhrase {
                let run = tokens(from: p)
                if run.count >= 4 { found.append(p..<run.end); p = run.end } else { p += 1 }
                continue
            }
            if s[p] == "<" { p += 1; continue }
            var q = p
            while q < s.count, s[q] != "<" { q += 1 }
            guard q < s.count else { break }
            let run = tokens(from: q)
            if run.count >= 4 { found.append(p..<run.end); p = run.end } else { p = q + 1 }
        }
        return found
    }

    /// `re.search(r"^\s*(.*?)(?=END|END...)", s)`: the match (group 0) as a range from 0, or nil.
    ///
    /// `\s*` takes the leading whitespace, then the lazy `.*?` stops at the first position where an
    /// ending starts, unless a "\n" comes first. Giving whitespace back to `.*?` cannot help: it
    /// meets the same "\n" (or a "\n" inside the whitespace) and no ending starts with whitespace.
    static func leadingPhrase(_ s: Scalars, endingAt ends: [Scalars]) -> Range<Int>? {
        var k = 0
        while k < s.count, isSpace(s[k]) { k += 1 }
        while true {
            if ends.contains(where: { s.hasPrefix($0, at: k) }) { return 0..<k }
            if k == s.count || s[k] == "\n" { return nil }
            k += 1
        }
    }

    /// `re.finditer(r"<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>", s)`: the digits of each box.
    static func boxes(_ s: Scalars) -> [[Range<Int>]] {
        var found: [[Range<Int>]] = []
        var p = 0
        while p < s.count {
            var end = p
            var digits: [Range<Int>] = []
            while digits.count < 4, let token = locationToken(s, at: end) { digits.append(token.digits); end = token.end }
            if digits.count == 4 { found.append(digits); p = end } else { p += 1 }
        }
        return found
    }

    /// `re.findall` of transformers' default OCR pattern
    /// `(.+?)<loc_(\d+)>` × 8: the text and the eight bins' digits of each match.
    ///
    /// The lazy `.+?` takes the shortest text (at least one code point, no "\n") that eight location
    /// tokens follow. When a start fails, its scan reached a "\n" or the end having tried every later
    /// position before it, so every start up to that "\n" fails too.
    static func ocrMatches(_ s: Scalars) -> [(content: Range<Int>, locations: [Range<Int>])] {
        func eight(at start: Int) -> (end: Int, digits: [Range<Int>])? {
            var end = start
            var digits: [Range<Int>] = []
            while digits.count < 8 {
                guard let token = locationToken(s, at: end) else { return nil }
                digits.append(token.digits)
                end = token.end
            }
            return (end, digits)
        }
        var found: [(content: Range<Int>, locations: [Range<Int>])] = []
        var p = 0
        scan: while p < s.count {
            var q = p + 1
            while q <= s.count, s[q - 1] != "\n" {
                if let quad = eight(at: q) {
                    found.append((p..<q, quad.digits))
                    p = quad.end
                    continue scan
                }
                q += 1
            }
            // Failed at p: q - 1 is the "\n" (or q is past the end).
            p = q
        }
        return found
    }

    /// `[m.group(1) for m in re.finditer(r"<poly>(.*?)</poly>", s)]`: the lazy `.*?` ends at the
    /// first "</poly>" unless a "\n" comes first (then this start fails).
    static func polygonInstances(_ s: Scalars) -> [Range<Int>] {
        let start = Florence2PostProcessor.polyStart, end = Florence2PostProcessor.polyEnd
        var found: [Range<Int>] = []
        var p = 0
        scan: while p < s.count {
            if s.hasPrefix(start, at: p) {
                var k = p + start.count
                while true {
                    if s.hasPrefix(end, at: k) {
                        found.append((p + start.count)..<k)
                        p = k + end.count
                        continue scan
                    }
                    if k == s.count || s[k] == "\n" { break }
                    k += 1
                }
            }
            p += 1
        }
        return found
    }

    /// `re.finditer(r"((?:<loc_\d+>)+)(?:<sep>|$)", s)`: the range of group 1 of each match.
    /// Fewer tokens than the longest run would leave `<loc_` next, which is neither `<sep>` nor the end.
    static func polygonRuns(_ s: Scalars) -> [Range<Int>] {
        var found: [Range<Int>] = []
        var p = 0
        while p < s.count {
            var end = p
            while let next = locationToken(s, at: end)?.end { end = next }
            if end > p {
                if s.hasPrefix(Florence2PostProcessor.sep, at: end) {
                    found.append(p..<end)
                    p = end + Florence2PostProcessor.sep.count
                    continue
                }
                // `$` without MULTILINE: the end, or just before a final "\n".
                if end == s.count || (end == s.count - 1 && s[end] == "\n") {
                    found.append(p..<end)
                    p = end
                    continue
                }
            }
            p += 1
        }
        return found
    }

    /// The digits of each `<loc_(\d+)>` of a run of location tokens.
    static func locations(in s: Scalars, _ run: Range<Int>) -> [Range<Int>] {
        var found: [Range<Int>] = []
        var p = run.lowerBound
        while p < run.upperBound, let token = locationToken(s, at: p) { found.append(token.digits); p = token.end }
        return found
    }

    /// Python's `int(text)` for base 10 (whitespace around, a sign, Unicode decimal digits, single
    /// underscores between digits), limited to int64 as `torch.tensor` is.
    static func pythonInt(_ text: Scalars) throws -> Int64 {
        let digitsText = text.strippingPythonWhitespace()
        func fail(_ why: String) -> Florence2Error {
            .invalidLocation("'\(String(scalars: text))' \(why)")
        }
        var i = 0
        var negative = false
        if i < digitsText.count, digitsText[i] == "+" || digitsText[i] == "-" { negative = digitsText[i] == "-"; i += 1 }
        guard i < digitsText.count else { throw fail("is not an integer") }
        // Accumulated negatively so that int64's minimum fits.
        var value: Int64 = 0
        var lastWasDigit = false
        while i < digitsText.count {
            if digitsText[i] == "_", lastWasDigit, i + 1 < digitsText.count, decimalValue(digitsText[i + 1]) != nil {
                lastWasDigit = false
                i += 1
                continue
            }
            guard let digit = decimalValue(digitsText[i]) else { throw fail("is not an integer") }
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = times.subtractingReportingOverflow(Int64(digit))
            guard !o1, !o2 else { throw fail("does not fit in int64") }
            value = next
            lastWasDigit = true
            i += 1
        }
        if negative { return value }
        guard value != .min else { throw fail("does not fit in int64") }
        return -value
    }
}

// MARK: - A custom OCR pattern through ICU

/// A Python regular expression run by ICU (`NSRegularExpression`), for `re.findall` of a custom OCR
/// `PATTERN`. What differs is translated: `.` and `$` see only "\n" as a line end (ICU's
/// UNIX_LINES; by default ICU also stops at "\r", U+0085, U+2028, U+2029); `\s`, `\S`, `\w`, `\W`
/// get Python's classes; `\Z` is ICU's `\z`; `(?P<name>`, `(?P=name)` are renamed; a `{` that is
/// no quantifier and `[`, `&` inside a class are literal, as in Python. Left as ICU has them: `\b`
/// (ICU's word characters), Unicode versions, and an empty match followed by a non-empty one at the
/// same place (Python finds both; with a text group and coordinate groups, an empty match fails
/// `int("")` in Python anyway).
struct PythonRegex {
    let pattern: String
    let regex: NSRegularExpression
    var groupCount: Int { regex.numberOfCaptureGroups }

    /// CPython's `str.isspace()` set as ICU class members.
    static let spaceMembers = #"\t\n\x{0B}\f\r\x{1C}-\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"#
    /// Python's `\w`: `str.isalnum()` or "_".
    static let wordMembers = #"\p{L}\p{N}_"#

    init(_ pattern: String) throws {
        self.pattern = pattern
        let translated = try Self.icuPattern(pattern)
        do {
            regex = try NSRegularExpression(pattern: translated, options: [.useUnixLineSeparators])
        } catch {
            throw Florence2Error.invalidPattern(pattern: pattern, detail: "does not compile (\(error.localizedDescription))")
        }
    }

    /// `re.findall` with groups: each match's groups, "" for a group that took no part.
    func findAll(_ text: String) -> [[String]] {
        let all = NSRange(location: 0, length: text.utf16.count)
        return regex.matches(in: text, options: [], range: all).map { match in
            (1...max(groupCount, 1)).map { i in
                let index = groupCount == 0 ? 0 : i
                guard let range = Range(match.range(at: index), in: text) else { return "" }
                return String(text[range])
            }
        }
    }

    static func icuPattern(_ pattern: String) throws -> String {
        let s = Scalars(pattern.unicodeScalars)
        var out = ""
        var i = 0
        var inClass = false
        var classFirst = false
        func fail(_ detail: String) -> Florence2Error { .invalidPattern(pattern: pattern, detail: detail) }
        while i < s.count {
            let c = s[i]
            if c == "\\" {
                guard i + 1 < s.count else { throw fail("ends with a backslash") }
                let escaped = s[i + 1]
                switch escaped {
                case "s": out += inClass ? spaceMembers : "[\(spaceMembers)]"
                case "S": out += "[^\(spaceMembers)]"  // ICU nests sets inside a class
                case "w": out += inClass ? wordMembers : "[\(wordMembers)]"
                case "W": out += "[^\(wordMembers)]"
                case "Z" where !inClass: out += "\\z"
                default: out += "\\"; out.unicodeScalars.append(escaped)
                }
                classFirst = false
                i += 2
                continue
            }
            if inClass {
                if c == "]" && !classFirst {
                    inClass = false
                    out += "]"
                } else if c == "[" || c == "&" || c == "]" {
                    out += "\\"; out.unicodeScalars.append(c)
                } else {
                    out.unicodeScalars.append(c)
                }
                classFirst = false
                i += 1
                continue
            }
            switch c {
            case "[":
                inClass = true
                classFirst = true
                out += "["
                i += 1
                if i < s.count, s[i] == "^" { out += "^"; i += 1 }
            case "(" where s.hasPrefix(Scalars("(?P<".unicodeScalars), at: i):
                out += "(?<"
                i += 4
            case "(" where s.hasPrefix(Scalars("(?P=".unicodeScalars), at: i):
                guard let close = s[(i + 4)...].firstIndex(of: ")") else { throw fail("unterminated (?P=") }
                out += "\\k<" + String(scalars: Scalars(s[(i + 4)..<close])) + ">"
                i = close + 1
            case "{":
                // Python's quantifier: {m}, {m,}, {,n}, {m,n}, {,}; anything else is a literal "{".
                var j = i + 1
                var low = "", high = ""
                while j < s.count, s[j].isASCII, s[j].properties.numericType == .decimal { low.unicodeScalars.append(s[j]); j += 1 }
                var comma = false
                if j < s.count, s[j] == "," {
                    comma = true
                    j += 1
                    while j < s.count, s[j].isASCII, s[j].properties.numericType == .decimal { high.unicodeScalars.append(s[j]); j += 1 }
                }
                if j < s.count, s[j] == "}", !(low.isEmpty && !comma) {
                    out += "{" + (low.isEmpty ? "0" : low) + (comma ? "," + high : "") + "}"
                    i = j + 1
                } else {
                    out += "\\{"
                    i += 1
                }
            case "}":
                out += "\\}"
                i += 1
            default:
                out.unicodeScalars.append(c)
                i += 1
            }
        }
        return out
    }
}

// MARK: - Code-point string helpers

extension Array where Element == Unicode.Scalar {
    func hasPrefix(_ prefix: Scalars, at i: Int) -> Bool {
        guard i >= 0, i + prefix.count <= count else { return false }
        for k in 0..<prefix.count where self[i + k] != prefix[k] { return false }
        return true
    }

    func firstIndex(of needle: Scalars, from start: Int) -> Int? {
        guard !needle.isEmpty else { return start }
        var i = start
        while i + needle.count <= count {
            if hasPrefix(needle, at: i) { return i }
            i += 1
        }
        return nil
    }

    /// Python's `str.replace(old, new[, count])` for a non-empty `old`: left to right, not overlapping.
    func replacing(_ old: Scalars, with new: Scalars, maxCount: Int = .max) -> Scalars {
        var out: Scalars = []
        out.reserveCapacity(count)
        var i = 0, replaced = 0
        while i < count {
            if replaced < maxCount, hasPrefix(old, at: i) {
                out += new
                i += old.count
                replaced += 1
            } else {
                out.append(self[i])
                i += 1
            }
        }
        return out
    }

    /// Python's `str.strip()`.
    func strippingPythonWhitespace() -> Scalars {
        guard let first = firstIndex(where: { !PythonPatterns.isSpace($0) }),
              let last = lastIndex(where: { !PythonPatterns.isSpace($0) }) else { return [] }
        return Scalars(self[first...last])
    }
}

extension String {
    init<S: Sequence>(scalars: S) where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self.init(view)
    }
}
