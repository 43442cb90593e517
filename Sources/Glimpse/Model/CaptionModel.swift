import Foundation

/// An immutable, thread-shareable captioning model loaded from a Hugging Face model directory.
/// Per-image mutable state (KV caches, scratch) lives in `DecoderState`, made by `makeState`.
public final class CaptionModel: @unchecked Sendable {
    public let directory: URL
    /// The family that recognized config.json and loaded the layers (`ModelFamilies.all`).
    public let family: any CaptionFamily
    public let encoder: ImageEncoder
    public let decoder: TextDecoder
    public let tokenizer: any Tokenizer
    /// The checkpoint's image processor (preprocessor_config.json).
    public let preprocessor: ImagePreprocessor
    /// Generation defaults from the checkpoint (generation_config.json / config.json).
    public let defaults: GenerationParameters
    /// Checkpoint tensors no layer asked for (legacy buffers such as `attn.bias`), reported, not fatal.
    public let unusedTensors: [String]
    /// Checkpoint names of the layer weight matrices and their layout (what `glimpse quantize` converts).
    public let matrixTensors: [String: WeightMatrix.Layout]
    /// The element types of those matrices as stored, e.g. "I8 ×74" (`--verbose`).
    public let weightElements: String
    /// Bytes the decoder's weight matrices take as stored over their fp32 size (1, 0.5, ~0.25): scales
    /// the decoder's fp32 `stepWeightBytes` to the bytes a step really reads.
    public let decoderWeightByteRatio: Double
    public let loadMilliseconds: Double
    /// A task-prompted family's answer parser (Florence-2's post-processing); nil for plain captioners.
    public let taskParser: (any TaskParser)?
    private let weightFiles: [SafeTensorsFile]

    /// Loads `directory`; with `checkWeights`, every tensor is scanned for NaN/Inf first.
    public init(directory: URL, checkWeights: Bool = false) throws {
        let clock = ContinuousClock.now
        self.directory = directory
        try ModelDirectory.check(directory)
        let config = try JSONConfig(contentsOf: directory.appendingPathComponent("config.json"))
        family = try ModelFamilies.captionFamily(for: config)
        let file = try ModelDirectory.weights(in: directory, checkFinite: checkWeights)
        if checkWeights {
            // The learned heads are weights too: a NaN there would reach every detection.
            let heads = directory.appendingPathComponent("heads.safetensors")
            if FileManager.default.fileExists(atPath: heads.path) { try SafeTensorsFile(url: heads).checkFinite() }
        }
        weightFiles = [file]
        let weights = try WeightLoader(files: weightFiles)
        (encoder, decoder) = try family.load(config: config, weights: weights)
        unusedTensors = (weights.unusedTensorNames() + file.skippedTensors).filter { [family] in !family.expectsUnused($0) }
        matrixTensors = weights.matrixLayouts()
        var counts: [String: Int] = [:]
        for name in matrixTensors.keys { if let info = file.info(name) { counts[info.dtype.rawValue, default: 0] += 1 } }
        var stored = 0.0, fp32 = 0.0
        for name in matrixTensors.keys where name.hasPrefix(family.decoderPrefix) {
            guard let info = file.info(name) else { continue }
            stored += Double(info.byteRange.count + (file.info(name + "_scale")?.byteRange.count ?? 0))
            fp32 += Double(info.count * 4)
        }
        decoderWeightByteRatio = fp32 > 0 ? stored / fp32 : 1
        weightElements = counts.keys.sorted().map { "\($0) ×\(counts[$0] ?? 0)" }.joined(separator: ", ")
        preprocessor = try ModelDirectory.preprocessor(in: directory, imageSize: encoder.imageSize, channels: encoder.channels)
        tokenizer = try TokenizerLoader.load(directory: directory)
        // Ids the model can emit past the tokenizer's end would decode to nothing or to garbage. One
        // exception: an embedding padded to the next multiple of 64 (published Florence-2 checkpoints
        // are), whose rows past the tokenizer were never trained and are not generated.
        let padded = (tokenizer.vocabularySize + 63) / 64 * 64
        guard tokenizer.vocabularySize >= decoder.vocabularySize || decoder.vocabularySize == padded else {
            throw ModelError.invalidConfig(file: directory.path, detail: "the tokenizer has \(tokenizer.vocabularySize) tokens but the "
                + "decoder's vocabulary (vocab_size in config.json) has \(decoder.vocabularySize): they were not made for each other")
        }
        defaults = try family.generationDefaults(GenerationParameters(modelDirectory: directory, config: config), config: config)
        taskParser = try family.taskParser(directory: directory, tokenizer: tokenizer)
        loadMilliseconds = milliseconds(since: clock)
    }

    /// A decoding state sized for `beamWidth` beams (reuse it across images of a batch).
    /// `maxLength` bounds the cached positions (prompt + new tokens); the caches are sized to it,
    /// not to the decoder's n_positions, so a 20-token caption does not reserve 1024 positions.
    public func makeState(beamWidth: Int, maxLength: Int? = nil) -> DecoderState {
        decoder.makeState(beamCapacity: max(beamWidth, 1), lengthCapacity: min(maxLength ?? decoder.maxPositions, decoder.maxPositions))
    }

    /// Pixel values [3, S, S] for one decoded image, as the checkpoint's image processor makes them.
    public func pixelValues(for image: RGBImage) -> [Float] {
        preprocessor.pixelValues(image)
    }

    /// Pixel values for a decoded file (its transparent colour matters to processors with do_convert_rgb).
    public func pixelValues(for decoded: DecodedImage) -> [Float] {
        preprocessor.pixelValues(decoded)
    }

    /// Encoder hidden states [count, rows, hiddenSize] for `count` images' pixel values and the
    /// encoder prompt `prompt` (`encoderPrompt`; rows = sequenceLength + prompt.count).
    public func encode(pixelValues: [Float], count: Int, prompt: [Int] = []) -> Tensor {
        precondition(pixelValues.count == count * 3 * encoder.imageSize * encoder.imageSize, "pixel values of the wrong size")
        return pixelValues.withUnsafeBufferPointer { encoder.encode(pixelValues: $0.baseAddress!, count: count, prompt: prompt) }
    }

    /// Token ids the encoder reads with each image for an optional text prompt (empty unless the
    /// family's encoder reads text, as Florence-2's does); throws for a prompt the family refuses.
    public func encoderPrompt(_ text: String?) throws -> [Int] {
        let ids = try family.encoderPrompt(text, tokenizer: tokenizer)
        guard ids.count <= encoder.maxPromptLength || ids.isEmpty else {
            throw ModelError.invalidInput("the prompt is \(ids.count) tokens; this model's encoder takes at most \(encoder.maxPromptLength) "
                + "after the image's \(encoder.sequenceLength) (max_position_embeddings)")
        }
        return ids
    }

    /// A request's prompt from the front ends' options (the CLI's --prompt / --task / --text, the service's
    /// prompt / task / text): `prompt` alone, or for a task-prompted family `task` followed by `text`
    /// (as Florence2Processor receives them). One rule for every caller; errors name the option.
    public func prompt(task: String?, text: String?, prompt: String?) throws -> String? {
        func refuse(_ option: String, _ message: String) -> PromptOptionError { PromptOptionError(option: option, message: message) }
        guard let task else {
            if text != nil { throw refuse("text", "text is the input of a task: give a task too") }
            return prompt
        }
        let tokens = family.taskTokens
        guard !tokens.isEmpty else {
            throw refuse("task", "this model (\(family.displayName)) takes no task prompts; task and text are for task-prompted families such as Florence-2")
        }
        guard prompt == nil else { throw refuse("prompt", "give a task (and its text) or a prompt, not both") }
        guard tokens.contains(task) else { throw refuse("task", "unknown task '\(task)' (tasks: \(tokens.joined(separator: " ")))") }
        let full = task + (text ?? "")
        do { _ = try encoderPrompt(full) } catch { throw refuse(text == nil ? "task" : "text", "\(error)") }
        return full
    }

    /// Encoder rows per image for an encoder prompt of `promptLength` tokens.
    public func encoderRows(promptLength: Int) -> Int { encoder.sequenceLength + promptLength }

    /// Decoder input ids for an optional text prompt, as transformers builds them for this family.
    public func decoderPrompt(_ text: String?, parameters: GenerationParameters) -> [Int] {
        family.decoderPrompt(text, tokenizer: tokenizer, parameters: parameters)
    }

    /// Generates captions for one image from its encoder states (a view [sequenceLength, hiddenSize]).
    public func generate(encoderStates: Tensor, prompt: [Int], parameters: GenerationParameters,
                         state: DecoderState) throws -> [GeneratedSequence] {
        decoder.setEncoderStates(encoderStates.data, rows: encoderStates.count / encoder.hiddenSize, state: state)
        return try Generator(decoder: decoder, parameters: parameters).generate(prompt: prompt, state: state)
    }

    /// A decode batch for `parameters` with up to `capacity` images at once (fewer when their caches
    /// would exceed `memoryBudget` bytes); images join it with `join(model:...)`.
    public func makeDecodeBatch(parameters: GenerationParameters, promptLength: Int, capacity: Int, encoderPromptLength: Int = 0,
                                memoryBudget: Int = DecodeBatch.defaultMemoryBudget) throws -> DecodeBatch {
        try DecodeBatch(decoder: decoder, encoderRows: encoderRows(promptLength: encoderPromptLength), beamCapacity: max(parameters.beamWidth, 1),
                        lengthCapacity: min(parameters.resolvedMaxLength(promptLength: promptLength), decoder.maxPositions),
                        capacity: capacity, memoryBudget: memoryBudget)
    }

    /// Generates captions for several images (each a view [sequenceLength, hiddenSize]) with up to
    /// `batchSize` of them advancing through the decoder together; results are in input order and
    /// equal `generate(encoderStates:prompt:parameters:state:)` for each image (see `DecodeBatch`).
    /// One image's failure (e.g. NaN logits) fails that image only.
    public func generate(encoderStates: [Tensor], prompt: [Int], parameters: GenerationParameters,
                         batchSize: Int) throws -> [Result<[GeneratedSequence], Error>] {
        let scheduler = try DecodeScheduler(model: self, parameters: parameters, promptLength: prompt.count, capacity: batchSize)
        for (i, states) in encoderStates.enumerated() {
            scheduler.submit(.init(id: i, encoderStates: states, prompt: prompt, parameters: parameters))
        }
        var results = [Result<[GeneratedSequence], Error>?](repeating: nil, count: encoderStates.count)
        scheduler.drain { results[$0.id] = $0.result }
        return results.map { $0 ?? .failure(ModelError.invalidInput("internal: image left the decode batch without a result")) }
    }

    /// Caption text of a generated sequence (special tokens skipped, cleaned up as transformers decodes).
    public func text(of sequence: GeneratedSequence) -> String {
        tokenizer.decode(Array(sequence.tokens), skipSpecialTokens: true)
    }
}

/// A prompt option that cannot be used: which option, and why.
public struct PromptOptionError: Error, CustomStringConvertible, LocalizedError {
    public var option: String
    public var message: String
    public var description: String { message }
    public var errorDescription: String? { message }
}

extension DecodeBatch {
    /// Joins one image of `model` (encoder states [sequenceLength, hiddenSize]) to the batch.
    public func join(model: CaptionModel, id: Int, encoderStates: Tensor, prompt: [Int], parameters: GenerationParameters) throws {
        let width = model.encoder.hiddenSize, rows = encoderStates.count / width
        guard encoderStates.count == rows * width, rows >= model.encoder.sequenceLength else {
            throw ModelError.invalidInput("encoder states of \(encoderStates.count) floats; the model's encoder gives at least \(model.encoder.sequenceLength) rows × \(width)")
        }
        try join(id: id, encoderStates: encoderStates.data, encoderRows: rows, prompt: prompt, parameters: parameters)
    }
}
