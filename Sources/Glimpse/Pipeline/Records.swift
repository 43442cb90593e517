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
    public var timingMilliseconds: [String: Double]?
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case file, width, height, model, captions, detections, attention
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

/// Compact per-token attention: each token's aggregate map, rounded to 4 decimals.
public struct AttentionRecord: Codable, Sendable {
    public var grid: [Int]
    public var layer: Int
    public var tokens: [Int]
    public var maps: [[Float]]
}

public enum RecordCoding {
    /// One compact JSON line (no trailing newline).
    public static func line(_ record: CaptionRecord) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? encoder.encode(record), let text = String(data: data, encoding: .utf8) else {
            return #"{"file":"\#(record.file)","error":"could not encode the record"}"#
        }
        return text
    }

    public static func record(from line: Substring) -> CaptionRecord? {
        try? JSONDecoder().decode(CaptionRecord.self, from: Data(line.utf8))
    }
}
