import ArgumentParser
import Foundation
import Glimpse

struct CaptionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caption",
        abstract: "Caption one or more images.",
        discussion: """
        Prints one line per image (the best caption), or with --json one JSON object per image \
        (JSON Lines) following the output contract. Exit status 1 when any image failed; each \
        failure is reported on stderr with the file and the cause.
        """)

    @Argument(help: "Image files (JPEG or PNG, detected from their bytes).")
    var images: [String]

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var generation: GenerationOptions

    @OptionGroup var detection: DetectionOptions
    @Flag(name: .long, help: "Print JSON Lines instead of text.")
    var json = false
    @Flag(name: .long, help: "Include each token's aggregate attention map in the JSON.")
    var attention = false

    func run() throws {
        let model = try modelOptions.loadOrExit()
        var request = CaptionRequest(parameters: try generation.parameters(defaults: model.defaults))
        request.prompt = try generation.resolvedPrompt(model: model)
        try detection.apply(to: &request)
        request.includeAttention = attention
        let pipeline = try RecordPipeline(model: model, request: request)
        // Several images decode together (records equal one-at-a-time decoding; see DecodeBatch).
        let runner = BatchRunner(pipeline: pipeline, decodeBatch: try generation.validatedDecodeBatch())
        var failed = 0
        var note = DefaultModelNote(active: modelOptions.usesBuiltInDefault)
        do {
            _ = try runner.run(files: images, emit: { record in
                if let error = record.error {
                    failed += 1
                    printError("glimpse: \(record.file): \(error)")
                    if json { print(RecordCoding.line(record)) }
                    return
                }
                if json {
                    print(RecordCoding.line(record))
                } else {
                    print(TextFormat.lines(for: record, showFile: images.count > 1).joined(separator: "\n"))
                }
                note.check(record.captions?.first?.text, file: record.file)
            })
        } catch {
            printError("glimpse: \(error)")
            throw ExitCode(3)
        }
        if failed > 0 { throw ExitCode(1) }
    }
}

/// Plain-text rendering of a record (one line per caption; detections indented beneath).
enum TextFormat {
    static func lines(for record: CaptionRecord, showFile: Bool) -> [String] {
        let captions = record.captions ?? []
        var lines: [String] = []
        for (i, c) in captions.enumerated() {
            let prefix = showFile ? "\(record.file)\t" : ""
            // A task-prompted model's text answer (Florence-2's post-processed caption) stands for the best caption.
            var text = c.text
            if i == 0, case .string(let answer)? = record.answer { text = answer }
            lines.append(captions.count > 1 ? "\(prefix)\(text)\t\(String(format: "%.4f", c.score))" : "\(prefix)\(text)")
            if i == 0 {
                for d in record.detections ?? [] {
                    let box = "\(d.box.x), \(d.box.y), \(d.box.width), \(d.box.height)"
                    lines.append("  \(d.label)\t[\(box)]\t\(String(format: "%.2f", d.score))")
                }
            }
        }
        return lines
    }
}

/// One stderr note per run when the built-in default model captions an image outside the scene world
/// it knows (the caption is then not to be trusted), with the command that captions photos instead.
struct DefaultModelNote {
    static let photoModel = "Salesforce/blip-image-captioning-large"
    let active: Bool
    private var printed = false

    init(active: Bool) { self.active = active }

    mutating func check(_ caption: String?, file: String) {
        guard active, !printed, let caption, !SceneGrammar.matches(caption) else { return }
        printed = true
        printError("""
            glimpse: note: the built-in default model only knows the synthetic shape world it was trained on \
            (captions like "a large red circle to the left of a small blue star"), so "\(caption)" is not a real description. \
            To caption photos, use a Hub model: glimpse caption \(Self.shellQuoted(file)) --model \(Self.photoModel)
            """)
    }

    static func shellQuoted(_ s: String) -> String {
        let plain = s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_./=:,+@%".unicodeScalars.contains($0) }
        return plain && !s.isEmpty ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
