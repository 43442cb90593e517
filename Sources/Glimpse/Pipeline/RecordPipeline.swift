import Foundation

/// Turns captioning results into output-contract records: captions, detections from the heads
/// (learned when the model directory has them, training-free otherwise), timing. One place, used
/// by `caption`, `batch` and `overlay`, so every command reports the same thing.
public final class RecordPipeline {
    public let model: CaptionModel
    public let request: CaptionRequest

    /// The model directory's learned heads (loaded once; nil when it has none or detection is off).
    public let heads: LearnedHeads?

    public convenience init(model: CaptionModel, request: CaptionRequest) throws {
        try Self.check(model: model, request: request)
        // Loaded for the attention path too: its object/attribute words choose and label the grounded words.
        try self.init(model: model, request: request, heads: request.detect ? try model.loadHeads() : nil)
    }

    /// A pipeline with heads loaded once by the caller (a service builds one pipeline per request).
    public init(model: CaptionModel, request: CaptionRequest, heads: LearnedHeads?) throws {
        try Self.check(model: model, request: request)
        self.model = model
        self.request = request
        self.heads = request.detect ? heads : nil
    }

    /// Drops what a queued image's record will not need: its decoded pixels, unless learned heads
    /// refine masks from them (and the image is small enough to be refined). A queue then holds model
    /// inputs, not full decodes (300 MB for 100 MP). Used by `batch` and `serve` alike.
    public func shed(_ prepared: inout PreparedImage) {
        let refines = request.grounding != .attention
            && heads?.refinesMasks(width: prepared.image.width, height: prepared.image.height) == true
        if !refines { prepared.image.pixels = [] }
    }

    /// Options are checked, and memory budgeted, before any image.
    private static func check(model: CaptionModel, request: CaptionRequest) throws {
        try request.parameters.validate()
        _ = try model.encoderPrompt(request.prompt)
        try model.checkResources(request.parameters, captureAttention: request.needsAttention)
    }

    /// The record for one result; errors become `{"file", "error"}` records.
    public func record(for result: Result<CaptionResult, Error>, file: String) -> CaptionRecord {
        switch result {
        case .failure(let error):
            return CaptionRecord(file: file, error: Self.cause(of: error, file: file))
        case .success(let r):
            var groundMs = 0.0
            var record = CaptionRecord(
                file: file, width: r.image.width, height: r.image.height, model: model.directory.path,
                captions: zip(r.sequences, r.texts).map { seq, text in
                    .init(text: text, score: Double(seq.score), tokens: seq.tokens)
                })
            if let best = r.sequences.first {
                // A task-prompted family's answer (Florence-2): its regions are the record's detections.
                if let parser = model.taskParser, let task = parser.task(of: request.prompt) {
                    do {
                        let answer = try parser.answer(tokens: best.tokens, task: task, width: r.image.width, height: r.image.height)
                        record.task = answer.task
                        record.answer = answer.value
                        if !answer.detections.isEmpty { record.detections = answer.detections }
                    } catch {
                        return CaptionRecord(file: file, error: "task answer failed: \(Self.describe(error))")
                    }
                }
                do {
                    // A task answer's regions are the detections; grounding words would replace them.
                    if request.detect && record.detections == nil {
                        let start = ContinuousClock.now
                        record.detections = try model.detections(
                            for: best, encoderStates: r.encoderStates, imageWidth: r.image.width, imageHeight: r.image.height,
                            image: r.image, heads: heads, method: request.grounding, masks: request.segment)
                        groundMs = milliseconds(since: start)
                    }
                    if request.includeAttention { record.attention = try attentionRecord(best) }
                } catch {
                    return CaptionRecord(file: file, error: "grounding failed: \(Self.describe(error))")
                }
            }
            record.timingMilliseconds = [
                "decode": Self.round(r.timing.decodeMilliseconds, 2),
                "encode": Self.round(r.timing.encodeMilliseconds, 2),
                "generate": Self.round(r.timing.generateMilliseconds, 2),
            ]
            if request.detect { record.timingMilliseconds?["ground"] = Self.round(groundMs, 2) }
            // Model load time (once per process; repeated on each record so every line stands alone).
            record.timingMilliseconds?["load"] = Self.round(model.loadMilliseconds, 2)
            return record
        }
    }

    /// Each generated token's aggregate map (mean over heads of the last layer), 4 decimals.
    func attentionRecord(_ sequence: GeneratedSequence) throws -> AttentionRecord {
        let maps = try model.attentionMaps(for: sequence)
        let layout = model.attentionLayout(for: sequence)
        return AttentionRecord(grid: [layout.grid, layout.grid], layer: layout.layers - 1,
                               tokens: Array(sequence.generatedTokens),
                               maps: try (0..<sequence.crossAttention.count).map { t in
                                   try maps.aggregate(token: t).map { Float(($0 * 1e4).rounded() / 1e4) }
                               })
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

    /// The cause alone, for a record that already names `file` (typed errors start with the file).
    public static func cause(of error: Error, file: String) -> String {
        let text = describe(error)
        return text.hasPrefix(file + ": ") ? String(text.dropFirst(file.count + 2)) : text
    }
}
