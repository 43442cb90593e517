import ArgumentParser
import Foundation
import Glimpse

struct ClassifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Label images with an image-classification model (e.g. google/vit-base-patch16-224).",
        discussion: """
        Prints the top classes of each image with their probabilities, or with --json one JSON object \
        per image (JSON Lines): {"file", "width", "height", "model", "labels": [{"label", "id", \
        "score"}], "timing_ms"}, best first. A file that fails is {"file", "error"}; the others are \
        still classified. Exit status 1 when any image failed.
        """)

    static let maxTopK = 1000

    @Argument(help: "Image files (JPEG or PNG, detected from their bytes).")
    var images: [String]
    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, parsing: .unconditional, help: "Classes per image, best first (1...\(maxTopK)).")
    var topK = 5
    @Flag(name: .long, help: "Print JSON Lines instead of text.")
    var json = false
    @Option(name: .long, parsing: .unconditional, help: "Refuse images larger than this many pixels.")
    var maxPixels = ImageDecoder.defaultMaxPixels

    func validate() throws {
        guard (1...Self.maxTopK).contains(topK) else { throw ValidationError("--top-k must be in 1...\(Self.maxTopK)") }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive") }
    }

    func run() throws {
        let model = try modelOptions.loadClassifierOrExit()
        var failed = 0
        for file in images {
            let record = model.record(file: file, topK: topK, maxPixels: maxPixels)
            if let error = record.error {
                failed += 1
                printError("glimpse: \(file): \(error)")
            }
            if json {
                print(RecordCoding.line(record))
            } else if let labels = record.labels {
                let prefix = images.count > 1 ? "\(file)\t" : ""
                for l in labels { print("\(prefix)\(l.label)\t\(String(format: "%.4f", l.score))") }
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }
}
