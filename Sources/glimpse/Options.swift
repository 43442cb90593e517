import ArgumentParser
import Foundation
import Glimpse

/// Where the model comes from: --model, $GLIMPSE_MODEL, or the default model beside the executable.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model directory (Hugging Face layout) or Hub ID (OWNER/NAME[@REVISION], found in or pulled into the Hugging Face cache). Default: $GLIMPSE_MODEL, else the default model installed or built beside glimpse.")
    var model: String?

    @Option(name: .long, help: "Hub revision (branch, tag or commit) of a Hub model ID.")
    var revision: String?

    @Option(name: .long, help: "Hugging Face token for gated or private models (default: $HF_TOKEN). Never printed.")
    var token: String?

    @Flag(name: .long, help: "Scan every weight for NaN/Inf while loading.")
    var checkWeights = false

    @Flag(name: .long, help: "Print the matrix-product kernels chosen (OpenBLAS core, Glimpse path) and why, on stderr.")
    var verbose = false

    /// The model directory: --model, $GLIMPSE_MODEL, or the default model beside the executable
    /// (`DefaultModel`); nil when none of them gives one.
    func resolvedDirectory() -> URL? {
        if let model { return URL(fileURLWithPath: model) }
        if let env = ProcessInfo.processInfo.environment["GLIMPSE_MODEL"], !env.isEmpty { return URL(fileURLWithPath: env) }
        return DefaultModel.locate()
    }

    /// --model, else a non-empty $GLIMPSE_MODEL; nil means the built-in default.
    var spec: String? {
        if let model { return model }
        if let env = ProcessInfo.processInfo.environment["GLIMPSE_MODEL"], !env.isEmpty { return env }
        return nil
    }

    /// Whether the built-in default model (models/default) is the one in use.
    var usesBuiltInDefault: Bool { spec == nil }

    /// The directory to load: a --model/$GLIMPSE_MODEL spec goes through `ModelLocator` (a directory, or a
    /// Hub ID found in or pulled into the cache); without one, the shipped default.
    func modelDirectory() throws -> URL {
        guard let spec else {
            if revision != nil { throw ValidationError("--revision needs --model OWNER/NAME") }
            guard let directory = resolvedDirectory() else {
                throw ModelError.invalidInput("no model given and no default model found (looked in "
                    + DefaultModel.candidates().map(\.path).joined(separator: ", ") + ")")
            }
            return directory
        }
        var locator = ModelLocator(token: token)
        locator.progress = DownloadProgress.standardError
        return try locator.directory(for: spec, revision: revision)
    }

    func load() throws -> CaptionModel {
        if verbose { for line in KernelReport.lines() { printError("glimpse: \(line)") } }
        let model = try CaptionModel(directory: modelDirectory(), checkWeights: checkWeights)
        if verbose { printError("glimpse: model \(model.directory.path): weights \(model.weightElements)") }
        Self.noteUnused(model.unusedTensors)
        let notImplemented = GenerationParameters.notImplemented(inModelDirectory: model.directory)
        if !notImplemented.isEmpty {
            printError("glimpse: note: generation_config.json sets \(notImplemented.joined(separator: ", ")), which Glimpse does not implement (ignored)")
        }
        return model
    }
}

/// Generation flags; unset flags keep the checkpoint's defaults (generation_config.json).
struct GenerationOptions: ParsableArguments {
    @Option(name: .long, parsing: .unconditional, help: "Beam width (num_beams, 1...\(GenerationParameters.maxBeams)).")
    var beams: Int?
    @Option(name: .long, parsing: .unconditional, help: "Maximum new tokens (max_new_tokens, 1...\(GenerationParameters.maxTokens)).")
    var maxTokens: Int?
    @Option(name: .long, parsing: .unconditional, help: "Minimum new tokens before EOS is allowed (min_new_tokens).")
    var minTokens: Int?
    @Option(name: .long, parsing: .unconditional, help: "Length penalty exponent (length_penalty; negative favours short captions).")
    var lengthPenalty: Float?
    @Option(name: .long, parsing: .unconditional, help: "Ban repeated n-grams of this size (no_repeat_ngram_size).")
    var noRepeatNgram: Int?
    @Option(name: .long, parsing: .unconditional, help: "Repetition penalty (repetition_penalty).")
    var repetitionPenalty: Float?
    @Option(name: .long, parsing: .unconditional, help: "Number of captions to return, best first (num_return_sequences; without --beams the beam widens to it).")
    var nBest: Int?
    @Option(name: .long, help: "Beam stopping rule: true, false or never (early_stopping).")
    var earlyStopping: String?
    @Option(name: .long, help: "Text prefix the caption continues (conditional captioning); for Florence-2 the whole task prompt.")
    var prompt: String?
    @Option(name: .long, help: "Florence-2 task, e.g. '<OD>' or '<CAPTION_TO_PHRASE_GROUNDING>' (default '<CAPTION>'; `glimpse models` lists them).")
    var task: String?
    @Option(name: .long, help: "The task's text input (the phrase to ground, the region as <loc_x1><loc_y1><loc_x2><loc_y2>, ...).")
    var text: String?
    @Option(name: .long, help: "Images decoded together, their beams batched through the decoder (1-256; fewer when their caches would pass 512 MiB).")
    var decodeBatch = 8

    /// --decode-batch, checked.
    func validatedDecodeBatch() throws -> Int {
        guard (1...DecodeBatch.maximumCapacity).contains(decodeBatch) else {
            throw ValidationError("--decode-batch must be between 1 and \(DecodeBatch.maximumCapacity) (got \(decodeBatch))")
        }
        return decodeBatch
    }

    /// The request's prompt from --prompt / --task / --text (`CaptionModel.prompt(task:text:prompt:)`).
    func resolvedPrompt(model: CaptionModel) throws -> String? {
        do { return try model.prompt(task: task, text: text, prompt: prompt) } catch let invalid as PromptOptionError {
            throw ValidationError("--\(invalid.option): \(invalid.message)")
        }
    }

    /// The checkpoint's `defaults` with the flags given (`GenerationOverrides`, shared with `serve`).
    func parameters(defaults: GenerationParameters) throws -> GenerationParameters {
        var o = GenerationOverrides()
        o.beams = beams; o.maxTokens = maxTokens; o.minTokens = minTokens
        o.lengthPenalty = lengthPenalty; o.noRepeatNgram = noRepeatNgram; o.repetitionPenalty = repetitionPenalty
        o.nBest = nBest; o.earlyStopping = earlyStopping
        do { return try o.applied(to: defaults) } catch let invalid as GenerationOverrides.Invalid {
            throw ValidationError("--" + invalid.message)
        }
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
    @Option(name: .long, parsing: .unconditional, help: "Refuse images larger than this many pixels (checked from the header, before decoding).")
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
    /// Loads the model or exits with status 2 and a message naming the directory and how to choose one.
    func loadOrExit() throws -> CaptionModel { try orExit(load) }

    /// Loads an image classifier (`glimpse classify`, `overlay` on a classifier), or exits as `loadOrExit`.
    func loadClassifierOrExit() throws -> ClassificationModel {
        try orExit {
            if verbose { for line in KernelReport.lines() { printError("glimpse: \(line)") } }
            let model = try ClassificationModel(directory: modelDirectory(), checkWeights: checkWeights)
            Self.noteUnused(model.unusedTensors)
            return model
        }
    }

    /// Whether the chosen model is an image classifier (its config.json read, nothing loaded).
    func isClassifier() throws -> Bool {
        try orExit { try ModelFamilies.family(directory: modelDirectory()) is any ClassifierFamily }
    }

    private func orExit<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch {
            let dir = spec ?? resolvedDirectory()?.path
            printError("glimpse: cannot load model\(dir.map { " \($0)" } ?? ""): \(error)\nglimpse: \(DefaultModel.howToChoose)")
            throw ExitCode(2)
        }
    }

    /// Published checkpoints carry buffers inference never reads (attn.bias, the ViT pooler, ...).
    static func noteUnused(_ names: [String]) {
        guard !names.isEmpty else { return }
        let listed = names.prefix(4).joined(separator: ", ") + (names.count > 4 ? ", ..." : "")
        printError("glimpse: note: \(names.count) tensor(s) in the checkpoint are not used and were ignored (\(listed))")
    }
}
