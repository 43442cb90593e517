import ArgumentParser
import Foundation
import Glimpse

/// Where the model comes from: --model, $GLIMPSE_MODEL, or the shipped models/default.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model directory (Hugging Face layout). Default: $GLIMPSE_MODEL or models/default.")
    var model: String?

    @Flag(name: .long, help: "Scan every weight for NaN/Inf while loading.")
    var checkWeights = false

    @Flag(name: .long, help: "Print the matrix-product kernels chosen (OpenBLAS core, Glimpse path) and why, on stderr.")
    var verbose = false

    /// The model directory, searched relative to the working directory and then to the executable.
    func resolvedDirectory() -> URL {
        if let model { return URL(fileURLWithPath: model) }
        if let env = ProcessInfo.processInfo.environment["GLIMPSE_MODEL"], !env.isEmpty { return URL(fileURLWithPath: env) }
        let local = URL(fileURLWithPath: "models/default")
        if FileManager.default.fileExists(atPath: local.appendingPathComponent("config.json").path) { return local }
        // .build/release/glimpse -> <repo>/models/default
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("models/default")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("config.json").path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return local
    }

    func load() throws -> CaptionModel {
        if verbose { for line in KernelReport.lines() { printError("glimpse: \(line)") } }
        let model = try CaptionModel(directory: resolvedDirectory(), checkWeights: checkWeights)
        if verbose { printError("glimpse: model \(model.directory.path): weights \(model.weightElements)") }
        if !model.unusedTensors.isEmpty {
            // Published checkpoints carry buffers captioning never reads (attn.bias, the ViT pooler, ...).
            let names = model.unusedTensors.prefix(4).joined(separator: ", ") + (model.unusedTensors.count > 4 ? ", ..." : "")
            printError("glimpse: note: \(model.unusedTensors.count) tensor(s) in the checkpoint are not used and were ignored (\(names))")
        }
        return model
    }
}

/// Generation flags; unset flags keep the checkpoint's defaults (generation_config.json).
struct GenerationOptions: ParsableArguments {
    @Option(name: .long, help: "Beam width (num_beams).")
    var beams: Int?
    @Option(name: .long, help: "Maximum new tokens (max_new_tokens).")
    var maxTokens: Int?
    @Option(name: .long, help: "Minimum new tokens before EOS is allowed (min_new_tokens).")
    var minTokens: Int?
    @Option(name: .long, help: "Length penalty exponent (length_penalty).")
    var lengthPenalty: Float?
    @Option(name: .long, help: "Ban repeated n-grams of this size (no_repeat_ngram_size).")
    var noRepeatNgram: Int?
    @Option(name: .long, help: "Repetition penalty (repetition_penalty).")
    var repetitionPenalty: Float?
    @Option(name: .long, help: "Number of captions to return, best first (num_return_sequences).")
    var nBest: Int?
    @Option(name: .long, help: "Beam stopping rule: true, false or never (early_stopping).")
    var earlyStopping: String?
    @Option(name: .long, help: "Text prefix the caption continues (conditional captioning).")
    var prompt: String?

    func parameters(defaults: GenerationParameters) throws -> GenerationParameters {
        var p = defaults
        if let beams { p.beamWidth = beams }
        if let maxTokens { p.maxNewTokens = maxTokens }
        if let minTokens { p.minNewTokens = minTokens }
        if let lengthPenalty { p.lengthPenalty = lengthPenalty }
        if let noRepeatNgram { p.noRepeatNgramSize = noRepeatNgram }
        if let repetitionPenalty { p.repetitionPenalty = repetitionPenalty }
        if let nBest {
            p.returnCount = nBest
            if beams == nil && p.beamWidth < nBest { p.beamWidth = nBest }
        }
        if p.returnCount > p.beamWidth { p.returnCount = p.beamWidth }
        switch earlyStopping?.lowercased() {
        case nil: break
        case "true": p.earlyStopping = .stopWhenFull
        case "false": p.earlyStopping = .heuristic
        case "never": p.earlyStopping = .never
        case let other?: throw ValidationError("--early-stopping must be true, false or never (got '\(other)')")
        }
        try p.validate()
        return p
    }
}

/// Writes a line to stderr.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Grounding flags shared by caption and batch.
struct DetectionOptions: ParsableArguments {
    @Flag(name: .long, help: "Ground each object word: boxes (learned heads when the model has them).")
    var detect = false
    @Flag(name: .long, help: "Also produce masks (implies --detect).")
    var segment = false
    @Option(name: .long, help: "Grounding: auto (learned heads when present), learned, or attention (training-free).")
    var grounding: String = "auto"
    @Option(name: .long, help: "Refuse images larger than this many pixels (checked from the header, before decoding).")
    var maxPixels = 100_000_000

    /// Applies these flags to `request`.
    func apply(to request: inout CaptionRequest) throws {
        guard let method = Grounding.Method(rawValue: grounding.lowercased()) else {
            throw ValidationError("--grounding must be auto, learned or attention (got '\(grounding)')")
        }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive") }
        request.detect = detect || segment
        request.segment = segment
        request.grounding = method
        request.maxPixels = maxPixels
    }
}

extension ModelOptions {
    /// Loads the model or exits with status 2 and a message naming the directory.
    func loadOrExit() throws -> CaptionModel {
        do { return try load() } catch {
            printError("glimpse: cannot load model \(resolvedDirectory().path): \(error)")
            throw ExitCode(2)
        }
    }
}
