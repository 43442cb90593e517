import Foundation

/// One line of `--json` / batch JSONL output, following the output contract in shared/README.md.
/// A failed file is `{"file": ..., "error": ...}` and nothing else.
public struct CaptionRecord: Codable, Sendable {
    public struct Caption: Codable, Sendable {
        public var text: String
        public var score: Double
        public var tokens: [Int]
    }

    public var file: String
    public var width: Int?
    public var height: Int?
    public var model: String?
    public var captions: [Caption]?
    public var detections: [Detection]?
    /// Per generated token (best caption): the aggregate cross-attention map over the patch grid (`--attention`).
    public var attention: AttentionRecord?
    /// Task-prompted families (Florence-2): the task token and transformers' post-processed answer.
    public var task: String?
    public var answer: AnswerValue?
    public var timingMilliseconds: [String: Double]?
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case file, width, height, model, captions, detections, attention, task, answer
        case timingMilliseconds = "timing_ms"
        case error
    }

    public init(file: String, error: String) {
        self.file = file
        self.error = error
    }

    public init(file: String, width: Int, height: Int, model: String, captions: [Caption]) {
        self.file = file
        self.width = width
        self.height = height
        self.model = model
        self.captions = captions
    }

    public var isError: Bool { error != nil }
}

/// One line of `glimpse classify --json`: file, width, height, model, labels (best first), timing_ms;
/// a failed file is `{"file": ..., "error": ...}` and nothing else.
public struct ClassificationRecord: Sendable {
    public var file: String
    public var width: Int?
    public var height: Int?
    public var model: String?
    public var labels: [ClassificationModel.Label]?
    public var timingMilliseconds: [String: Double]?
    public var error: String?

    public init(file: String, error: String) {
        self.file = file
        self.error = error
    }

    public init(file: String, width: Int, height: Int, model: String, labels: [ClassificationModel.Label],
                timingMilliseconds: [String: Double]) {
        self.file = file
        self.width = width
        self.height = height
        self.model = model
        self.labels = labels
        self.timingMilliseconds = timingMilliseconds
    }
}

/// Compact per-token attention: each token's aggregate map, rounded to 4 decimals.
public struct AttentionRecord: Codable, Sendable {
    public var grid: [Int]
    public var layer: Int
    public var tokens: [Int]
    public var maps: [[Float]]
}

public enum RecordCoding {
    /// One compact JSON line (no trailing newline), keys in the contract's order:
    /// file, width, height, model, captions, detections, task, answer, attention, timing_ms — or file, error.
    public static func line(_ record: CaptionRecord) -> String {
        var out = head(file: record.file, error: record.error, width: record.width, height: record.height, model: record.model)
        if record.error != nil { return out }
        if let captions = record.captions {
            out += ",\"captions\":[" + captions.map { c in
                "{\"text\":\(JSONText.quoted(c.text)),\"score\":\(number(c.score)),\"tokens\":[\(c.tokens.map(String.init).joined(separator: ","))]}"
            }.joined(separator: ",") + "]"
        }
        if let detections = record.detections {
            out += ",\"detections\":[" + detections.map { d in
                var o = "{\"label\":\(JSONText.quoted(d.label)),\"word\":\(JSONText.quoted(d.word)),\"token_index\":\(d.tokenIndex)"
                o += ",\"box\":[\(d.box.x),\(d.box.y),\(d.box.width),\(d.box.height)],\"score\":\(number(d.score))"
                if let mask = d.mask {
                    o += ",\"mask\":{\"size\":[\(mask.height),\(mask.width)],\"counts\":\(JSONText.quoted(mask.compressedString))}"
                }
                if let polygons = d.polygons {
                    o += ",\"polygons\":[" + polygons.map { "[" + $0.map { number($0) }.joined(separator: ",") + "]" }.joined(separator: ",") + "]"
                }
                if let quad = d.quad { o += ",\"quad\":[" + quad.map { number($0) }.joined(separator: ",") + "]" }
                return o + "}"
            }.joined(separator: ",") + "]"
        }
        if let task = record.task { out += ",\"task\":\(JSONText.quoted(task))" }
        if let answer = record.answer { out += ",\"answer\":\(answer.jsonText)" }
        if let a = record.attention {
            out += ",\"attention\":{\"grid\":[\(a.grid.map(String.init).joined(separator: ","))],\"layer\":\(a.layer)"
            out += ",\"tokens\":[\(a.tokens.map(String.init).joined(separator: ","))],\"maps\":["
            out += a.maps.map { "[" + $0.map { number(Double($0)) }.joined(separator: ",") + "]" }.joined(separator: ",") + "]}"
        }
        if let timing = record.timingMilliseconds { out += self.timing(timing) }
        return out + "}"
    }

    /// One compact JSON line of a classification: file, width, height, model, labels, timing_ms — or file, error.
    public static func line(_ record: ClassificationRecord) -> String {
        var out = head(file: record.file, error: record.error, width: record.width, height: record.height, model: record.model)
        if record.error != nil { return out }
        if let labels = record.labels {
            out += ",\"labels\":[" + labels.map {
                "{\"label\":\(JSONText.quoted($0.label)),\"id\":\($0.id),\"score\":\(number(Double($0.score)))}"
            }.joined(separator: ",") + "]"
        }
        if let timing = record.timingMilliseconds { out += self.timing(timing) }
        return out + "}"
    }

    /// What every record starts with: file, width, height, model; or the whole error record
    /// (`{"file", "error"}`, closed). Raw bytes of a name that is not UTF-8 are written as \udcXX (see RawPath).
    private static func head(file: String, error: String?, width: Int?, height: Int?, model: String?) -> String {
        var out = "{\"file\":" + RawPath.jsonQuoted(file)
        if let error { return out + ",\"error\":" + JSONText.quoted(error) + "}" }
        if let width { out += ",\"width\":\(width)" }
        if let height { out += ",\"height\":\(height)" }
        if let model { out += ",\"model\":" + JSONText.quoted(model) }
        return out
    }

    /// `,"timing_ms":{...}`: the stages in pipeline order, then any others by name.
    private static func timing(_ timing: [String: Double]) -> String {
        let order = ["decode", "encode", "generate", "ground", "load"]
        let keys = order.filter { timing[$0] != nil } + timing.keys.filter { !order.contains($0) }.sorted()
        return ",\"timing_ms\":{" + keys.map { "\(JSONText.quoted($0)):\(number(timing[$0] ?? 0))" }.joined(separator: ",") + "}"
    }


    /// A JSON number (shortest round-trip form); non-finite values become null.
    static func number(_ v: Double) -> String {
        guard v.isFinite else { return "null" }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int(v)) }
        // Scores and maps are Float32 values: print their shortest Float32 form, not Double noise.
        let f = Float(v)
        return Double(f) == v ? "\(f)" : "\(v)"
    }

    public static func record(from line: Substring) -> CaptionRecord? {
        if let record = try? JSONDecoder().decode(CaptionRecord.self, from: Data(line.utf8)) { return record }
        // A raw-byte name (`\udcXX`, see RawPath) makes Foundation reject the line: read the file with
        // RawPath, decode the rest with a placeholder name.
        let bytes = Array(line.utf8), prefix = Array("{\"file\":".utf8)
        guard bytes.starts(with: prefix),
              let (file, end) = bytes.withUnsafeBufferPointer({ RawPath.parseJSONString($0, from: prefix.count) }) else { return nil }
        guard var record = try? JSONDecoder().decode(CaptionRecord.self, from: Data(prefix + Array("\"\"".utf8) + bytes[end...])) else {
            return nil
        }
        record.file = file
        return record
    }
}
