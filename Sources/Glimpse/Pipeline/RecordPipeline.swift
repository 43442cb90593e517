import Foundation

/// Turns captioning results into output-contract records: captions, detections from the heads
/// (learned when the model directory has them, training-free otherwise), timing. One place, used
/// by `caption`, `batch` and `overlay`, so every command reports the same thing.
public final class RecordPipeline {
    public let model: CaptionModel
    public let request: CaptionRequest

    public init(model: CaptionModel, request: CaptionRequest) throws {
        self.model = model
        self.request = request
    }

    /// The record for one result; errors become `{"file", "error"}` records.
    public func record(for result: Result<CaptionResult, Error>, file: String) -> CaptionRecord {
        switch result {
        case .failure(let error):
            return CaptionRecord(file: file, error: Self.describe(error))
        case .success(let r):
            var record = CaptionRecord(
                file: file, width: r.image.width, height: r.image.height, model: model.directory.path,
                captions: zip(r.sequences, r.texts).map { seq, text in
                    .init(text: text, score: Double(seq.score), tokens: seq.tokens)
                })
            record.timingMilliseconds = [
                "decode": Self.round(r.timing.decodeMilliseconds, 2),
                "encode": Self.round(r.timing.encodeMilliseconds, 2),
                "generate": Self.round(r.timing.generateMilliseconds, 2),
            ]
            return record
        }
    }

    static func round(_ v: Double, _ digits: Int) -> Double {
        let f = pow(10, Double(digits))
        return (v * f).rounded() / f
    }

    /// A one-line description of an error (typed errors carry file and cause).
    public static func describe(_ error: Error) -> String {
        let text = String(describing: error)
        return text.replacingOccurrences(of: "\n", with: " ")
    }
}
