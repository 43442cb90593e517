import ArgumentParser
import Foundation
import Glimpse

struct OverlayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overlay",
        abstract: "Export where the model looked: one heatmap PNG per caption word and a contact sheet.",
        discussion: """
        For the best caption of IMAGE, writes NN-word.png (the word's cross-attention map upsampled \
        over the image with the viridis colormap, more opaque where the word's attention is higher) \
        for every word in reading order, and contact-sheet.png: the caption as its title, the \
        original image, every word's tile with the word under it, boxes and mask outlines from the \
        heads, and the colour scale. By default a word's map is the mean over heads of the last decoder \
        layer; --layer/--head select a raw map instead. Prints the caption and the files written. \
        With an image classifier (glimpse classify), writes 00-rollout.png instead: the class token's \
        attention rollout (Abnar & Zuidema 2020) over the image, and the contact sheet titled with the \
        top class.
        """)

    @Argument(help: "Image file.")
    var image: String
    @Option(name: .long, help: "Output directory.")
    var out: String
    @Option(name: .long, parsing: .unconditional, help: "Decoder layer of the maps (0-based; negative counts from the end). Default: last.")
    var layer: Int?
    @Option(name: .long, parsing: .unconditional, help: "Attention head (raw map of --layer). Default: mean over heads.")
    var head: Int?
    @Flag(name: .long, help: "Skip boxes and mask outlines.")
    var noDetections = false

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var generation: GenerationOptions
    @Option(name: .long, parsing: .unconditional, help: "Refuse images larger than this many pixels.")
    var maxPixels = 100_000_000

    func run() throws {
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive") }
        if try modelOptions.isClassifier() { return try runClassifier() }
        let model = try modelOptions.loadOrExit()
        var request = CaptionRequest(parameters: try generation.parameters(defaults: model.defaults))
        request.prompt = try generation.resolvedPrompt(model: model)
        request.detect = !noDetections
        request.segment = !noDetections
        request.includeAttention = true
        request.maxPixels = maxPixels
        let pipeline = try RecordPipeline(model: model, request: request)
        let result = Captioner(model: model, beamWidth: request.parameters.beamWidth).caption(file: image, request: request)
        let record = pipeline.record(for: result, file: image)
        if let error = record.error {
            printError("glimpse: \(image): \(error)")
            throw ExitCode(1)
        }
        guard case .success(let r) = result, let best = r.sequences.first else { throw ExitCode(1) }
        do {
            let words = try model.wordMaps(for: best, layer: layer, head: head)
            let files = try OverlayExporter.export(image: r.image, words: words, detections: record.detections ?? [],
                                                   caption: r.texts.first ?? "", to: URL(fileURLWithPath: out))
            print(r.texts.first ?? "")
            for f in files { print(f.path) }
        } catch let error as RenderError {
            printError("glimpse: \(error)")        // names the output file and the problem
            throw ExitCode(1)
        } catch {
            printError("glimpse: \(image): \(error)")
            throw ExitCode(1)
        }
    }
}

extension OverlayCommand {
    /// The class token's attention rollout of a classifier over the image.
    func runClassifier() throws {
        guard layer == nil, head == nil else {
            throw ValidationError("--layer and --head select a decoder's cross-attention map; a classifier's overlay is the attention rollout over all layers and heads")
        }
        let model = try modelOptions.loadClassifierOrExit()
        do {
            let decoded = try ImageDecoder.decode(file: image, maxPixels: maxPixels)
            let pixels = try model.pixelValues(for: decoded, file: image)
            let result = model.probabilities(pixelValues: pixels, count: 1, rollout: true)
            guard let best = model.top(1, of: result.probabilities[0]).first, let rollout = result.rollouts.first else { throw ExitCode(1) }
            let total = rollout.reduce(0, +)
            let map = WordMap(word: CaptionWord(text: "rollout", tokens: [], tokenIndex: 0),
                              map: total > 0 ? rollout.map { $0 / total } : rollout, grid: model.classifier.patches.grid)
            let title = "\(best.label) (\(String(format: "%.3f", best.score)))"
            let files = try OverlayExporter.export(image: decoded.image, words: [map], caption: title, to: URL(fileURLWithPath: out))
            print(title)
            for f in files { print(f.path) }
        } catch let error as RenderError {
            printError("glimpse: \(error)")        // names the output file and the problem
            throw ExitCode(1)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            printError("glimpse: \(image): \(RecordPipeline.cause(of: error, file: image))")
            throw ExitCode(1)
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a static HTML gallery (no network) of a batch's JSON Lines results.",
        discussion: """
        Pages of 48 records, images lazy-loaded, boxes and masks drawn; error records shown as errors. \
        Lines that are not JSON records are counted on the page and on stderr. An index.html in the \
        output directory that glimpse report did not write is never replaced.
        """)

    @Argument(help: "Results (JSON Lines from `glimpse batch` or `glimpse caption --json`).")
    var results: String
    @Option(name: .long, help: "Output directory (index.html is written there).")
    var out: String
    @Option(name: .long, help: "Directory of overlays, one folder per image stem (from `glimpse overlay`).")
    var overlays: String?

    func run() throws {
        do {
            let writer = ReportWriter(overlaysDirectory: overlays.map { URL(fileURLWithPath: $0) })
            let report = try writer.write(records: URL(fileURLWithPath: results), to: URL(fileURLWithPath: out))
            if !report.skippedLines.isEmpty {
                let n = report.skippedLines.count
                let listed = report.skippedLines.prefix(10).map(String.init).joined(separator: ", ") + (n > 10 ? ", ..." : "")
                printError("glimpse: note: \(results): \(n) line\(n == 1 ? " is" : "s are") not a JSON record and \(n == 1 ? "was" : "were") skipped (line \(listed))")
            }
            print(report.index.path)
        } catch {
            printError("glimpse: \(error)")
            throw ExitCode(1)
        }
    }
}
