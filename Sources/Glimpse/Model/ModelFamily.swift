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
    /// Token ids the encoder reads after the image for an optional text prompt (Florence-2's BART
    /// encoder: "<s>" + the task's prompt + "</s>"); empty for a vision-only encoder.
    func encoderPrompt(_ text: String?, tokenizer: any Tokenizer) throws -> [Int]
    /// The task tokens a task-prompted family takes (Florence-2's "<OD>", ...); empty for plain captioners.
    var taskTokens: [String] { get }
    /// What the family makes of a generated sequence beyond its text (Florence-2's post-processed
    /// task answer), read from the model directory once at load; nil when it has nothing to add.
    func taskParser(directory: URL, tokenizer: any Tokenizer) throws -> (any TaskParser)?
}

/// A task-prompted family's reading of one generated sequence: transformers' post-processed answer
/// (`post_process_generation`) and its regions as output-contract detections.
public protocol TaskParser: Sendable {
    /// The task of a request's prompt (the default task without one); nil for a prompt of no task.
    func task(of prompt: String?) -> String?
    /// The answer of `tokens` (the full generated sequence, special tokens included) for `task`
    /// on an image of `width` × `height` pixels.
    func answer(tokens: [Int], task: String, width: Int, height: Int) throws -> TaskAnswer
}

/// transformers' answer to a task (as JSON, in its own shape) and the regions it names.
public struct TaskAnswer: Sendable, Equatable {
    public var task: String
    /// `post_process_generation(...)[task]`, e.g. {"bboxes": [[x0, y0, x1, y1]], "labels": ["car"]} or a string.
    public var value: AnswerValue
    public var detections: [Detection]

    public init(task: String, value: AnswerValue, detections: [Detection]) {
        self.task = task
        self.value = value
        self.detections = detections
    }
}

/// A JSON value (a task answer), encoded and decoded as itself.
public indirect enum AnswerValue: Sendable, Equatable, Codable {
    case string(String)
    case int(Int)
    case double(Double)
    case array([AnswerValue])
    case object([String: AnswerValue])
    case null

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Int.self) { self = .int(v) }
        else if let v = try? c.decode(Double.self) { self = .double(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([AnswerValue].self) { self = .array(v) }
        else { self = .object(try c.decode([String: AnswerValue].self)) }
    }

    /// Compact JSON with object keys in transformers' order for the answers it returns (`bboxes` before
    /// `labels`, ...), other keys after them by name: what `RecordCoding` writes.
    public var jsonText: String {
        switch self {
        case .string(let v): return JSONText.quoted(v)
        case .int(let v): return String(v)
        case .double(let v): return RecordCoding.number(v)
        case .null: return "null"
        case .array(let v): return "[" + v.map(\.jsonText).joined(separator: ",") + "]"
        case .object(let v):
            let rank = { (key: String) in Self.keyOrder.firstIndex(of: key) ?? Self.keyOrder.count }
            let keys = v.keys.sorted { (rank($0), $0) < (rank($1), $1) }
            return "{" + keys.map { JSONText.quoted($0) + ":" + (v[$0] ?? .null).jsonText }.joined(separator: ",") + "}"
        }
    }

    /// post_process_generation's keys in the order its dicts hold them.
    static let keyOrder = ["quad_boxes", "bboxes", "bboxes_labels", "polygons", "polygons_labels", "labels", "scores"]

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let v): try c.encode(v)
        case .int(let v): try c.encode(v)
        case .double(let v): try c.encode(v)
        case .array(let v): try c.encode(v)
        case .object(let v): try c.encode(v)
        case .null: try c.encodeNil()
        }
    }
}

extension CaptionFamily {
    public var tasks: [String] { ["caption"] }
    public func encoderPrompt(_ text: String?, tokenizer: any Tokenizer) throws -> [Int] { [] }
    public var taskTokens: [String] { [] }
    public func taskParser(directory: URL, tokenizer: any Tokenizer) throws -> (any TaskParser)? { nil }
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
        Florence2(),
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
