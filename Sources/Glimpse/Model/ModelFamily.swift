import Foundation

/// One kind of checkpoint Glimpse runs: how its config.json is recognized and how it is named. A
/// family is one file implementing a refinement of this (`CaptionFamily`: an image encoder and a
/// text decoder; an image classifier would add its own) plus one line in `ModelFamilies.all`
/// (mlx-swift-examples' type registry); nothing else in Glimpse names a family.
public protocol ModelFamily: Sendable {
    /// Short, stable id (`glimpse models`, `glimpse bench`): "vision-encoder-decoder", "blip".
    var name: String { get }
    /// How errors and listings name it: "VisionEncoderDecoder (ViT + GPT-2)".
    var displayName: String { get }
    /// What its models do, as the CLI lists them ("caption").
    var tasks: [String] { get }
    /// Whether config.json (its `architectures` and `model_type`) describes a checkpoint of this family.
    func recognizes(architectures: [String], modelType: String?) -> Bool
    /// Checkpoint tensors this family never reads and transformers drops without a word (its
    /// `_keys_to_ignore_on_load_unexpected`; mlx-swift-examples' `sanitize`): not worth a note.
    func expectsUnused(_ tensorName: String) -> Bool
}

extension ModelFamily {
    public func expectsUnused(_ tensorName: String) -> Bool { false }
}

/// A family whose models caption: an image encoder and a text decoder with cross-attention, and the
/// rules transformers applies around them (generation defaults, prompt). `CaptionModel` runs these.
public protocol CaptionFamily: ModelFamily {
    /// Checkpoint prefix of the text decoder's tensors ("decoder."): their stored size over fp32
    /// scales the bytes a decoding step reads (`CaptionModel.decoderWeightByteRatio`).
    var decoderPrefix: String { get }
    /// The image encoder and text decoder of a checkpoint, weights by their checkpoint names.
    func load(config: JSONConfig, weights: WeightLoader) throws -> (ImageEncoder, TextDecoder)
    /// The generation defaults transformers uses for this family, given what the checkpoint's
    /// generation_config.json / config.json say (`checkpoint`); flags override the result.
    func generationDefaults(_ checkpoint: GenerationParameters, config: JSONConfig) throws -> GenerationParameters
    /// Decoder input ids for an optional text prompt, as transformers' processor and generate build them.
    func decoderPrompt(_ text: String?, tokenizer: any Tokenizer, parameters: GenerationParameters) -> [Int]
    /// Decoder input ids for the `input_ids` / `decoder_input_ids` a caller passed to transformers'
    /// `generate` (nil: none), as generate turns them into the decoder's prompt (parity fixtures).
    func decoderPrompt(generateInputIds: [Int]?, parameters: GenerationParameters) throws -> [Int]
}

extension CaptionFamily {
    public var tasks: [String] { ["caption"] }
    public func generationDefaults(_ checkpoint: GenerationParameters, config: JSONConfig) throws -> GenerationParameters { checkpoint }
}

/// A family whose models label a whole image with one of a fixed set of classes (`glimpse classify`).
public protocol ClassifierFamily: ModelFamily {
    /// The image classifier of a checkpoint, weights by their checkpoint names.
    func load(config: JSONConfig, weights: WeightLoader) throws -> any ImageClassifier
}

extension ClassifierFamily {
    public var tasks: [String] { ["classify"] }
}

/// The families Glimpse runs. The CLI, `ModelError`'s list and the parity tests read this list.
public enum ModelFamilies {
    /// Every family, tried in this order against config.json. A new family is one line here.
    public static let all: [any ModelFamily] = [
        VisionEncoderDecoder(),
        BLIP(),
        ViTImageClassification(),
    ]

    /// The family of a parsed config.json; an error naming what it found and what is supported otherwise.
    public static func family(for config: JSONConfig) throws -> any ModelFamily {
        let architectures = (try? config.strings("architectures")) ?? nil
        let type = try config.string("model_type")
        if let family = all.first(where: { $0.recognizes(architectures: architectures ?? [], modelType: type) }) { return family }
        let named = architectures?.joined(separator: ", ") ?? type ?? "(no architectures or model_type)"
        throw ModelError.unsupportedArchitecture("'\(named)' in \(config.file)")
    }

    /// The captioning family of a parsed config.json; a family that does not caption is an error saying what it does.
    public static func captionFamily(for config: JSONConfig) throws -> any CaptionFamily {
        let family = try family(for: config)
        guard let captioning = family as? any CaptionFamily else {
            throw ModelError.unsupported("model \(config.file): \(family.displayName) does not caption (its tasks: \(family.tasks.joined(separator: ", ")))")
        }
        return captioning
    }

    /// The classifying family of a parsed config.json; a family that does not classify is an error saying what it does.
    public static func classifierFamily(for config: JSONConfig) throws -> any ClassifierFamily {
        let family = try family(for: config)
        guard let classifying = family as? any ClassifierFamily else {
            throw ModelError.unsupported("model \(config.file): \(family.displayName) does not classify images (its tasks: \(family.tasks.joined(separator: ", ")); use glimpse caption)")
        }
        return classifying
    }

    /// The family of the model directory `directory` from its config.json (listing models without loading them).
    public static func family(directory: URL) throws -> any ModelFamily {
        try family(for: JSONConfig(contentsOf: directory.appendingPathComponent("config.json")))
    }

    /// "VisionEncoderDecoder (ViT + GPT-2), BLIP (BlipForConditionalGeneration)" for messages.
    public static var supportedList: String { all.map(\.displayName).joined(separator: ", ") }
}
