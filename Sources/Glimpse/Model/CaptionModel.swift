import Foundation

/// `preprocessor_config.json` (ViTImageProcessor / BlipImageProcessor): how pixels become model input.
public struct PreprocessingConfig: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// PIL resample filter id: 2 bilinear, 3 bicubic.
    public var resample: Int
    public var doResize: Bool
    public var rescaleFactor: Float
    public var doRescale: Bool
    public var doNormalize: Bool
    public var mean: [Float]
    public var std: [Float]

    public init(_ c: JSONConfig, imageSize: Int) throws {
        var w = imageSize, h = imageSize
        if let size = try? c.object("size") {
            if let hh = try size.int("height"), let ww = try size.int("width") { h = hh; w = ww }
            else if let s = try size.int("shortest_edge") { h = s; w = s }
        } else if let s = try c.int("size") { h = s; w = s }
        width = w; height = h
        resample = try c.int("resample", default: 2)
        doResize = try c.bool("do_resize", default: true)
        rescaleFactor = Float(try c.double("rescale_factor", default: 1.0 / 255.0))
        doRescale = try c.bool("do_rescale", default: true)
        doNormalize = try c.bool("do_normalize", default: true)
        mean = (try c.doubles("image_mean") ?? [0.5, 0.5, 0.5]).map(Float.init)
        std = (try c.doubles("image_std") ?? [0.5, 0.5, 0.5]).map(Float.init)
        if mean.count == 1 { mean = Array(repeating: mean[0], count: 3) }
        if std.count == 1 { std = Array(repeating: std[0], count: 3) }
        guard mean.count == 3, std.count == 3, !std.contains(0) else {
            throw ModelError.invalidConfig(file: c.file, detail: "image_mean/image_std must hold 3 values (std non-zero)")
        }
        guard w == imageSize && h == imageSize else {
            throw ModelError.invalidConfig(file: c.file, detail: "size \(w)x\(h) differs from the encoder's image_size \(imageSize) (interpolated position embeddings are not supported)")
        }
        guard [0, 1, 2, 3].contains(resample) else {
            throw ModelError.invalidConfig(file: c.file, detail: "resample \(resample) is not supported (0 nearest, 2 bilinear, 3 bicubic)")
        }
    }
}

/// The model families Glimpse runs, chosen from config.json's `architectures` / `model_type`.
public enum ModelFamily: String, Sendable {
    case visionEncoderDecoder = "vision-encoder-decoder"
    case blip

    static func detect(_ config: JSONConfig) throws -> ModelFamily {
        let architectures = (try? config.strings("architectures")) ?? nil
        let type = try config.string("model_type")
        if architectures?.contains("VisionEncoderDecoderModel") == true || type == "vision-encoder-decoder" { return .visionEncoderDecoder }
        if architectures?.contains("BlipForConditionalGeneration") == true || type == "blip" { return .blip }
        let named = architectures?.joined(separator: ", ") ?? type ?? "(no architectures or model_type)"
        throw ModelError.unsupportedArchitecture("'\(named)' in \(config.file)")
    }
}

/// An immutable, thread-shareable captioning model loaded from a Hugging Face model directory.
/// Per-image mutable state (KV caches, scratch) lives in `DecoderState`, made by `makeState`.
public final class CaptionModel: @unchecked Sendable {
    public let directory: URL
    public let family: ModelFamily
    public let encoder: ImageEncoder
    public let decoder: TextDecoder
    public let tokenizer: any Tokenizer
    public let preprocessing: PreprocessingConfig
    /// Generation defaults from the checkpoint (generation_config.json / config.json).
    public let defaults: GenerationParameters
    /// Checkpoint tensors no layer asked for (legacy buffers such as `attn.bias`), reported, not fatal.
    public let unusedTensors: [String]
    public let loadMilliseconds: Double
    private let weightFiles: [SafeTensorsFile]

    /// Loads `directory`; with `checkWeights`, every tensor is scanned for NaN/Inf first.
    public init(directory: URL, checkWeights: Bool = false) throws {
        let clock = ContinuousClock.now
        self.directory = directory
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw ModelError.missingFile(directory)
        }
        let config = try JSONConfig(contentsOf: directory.appendingPathComponent("config.json"))
        family = try ModelFamily.detect(config)
        let weightsURL = directory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw ModelError.invalidConfig(file: directory.path, detail: "no model.safetensors (convert a pytorch_model.bin with tools/convert_hf.py)")
        }
        let file = try SafeTensorsFile(url: weightsURL)
        if checkWeights { try file.checkFinite() }
        weightFiles = [file]
        let weights = try WeightLoader(files: weightFiles)
        switch family {
        case .visionEncoderDecoder: (encoder, decoder) = try VisionEncoderDecoder.load(config: config, weights: weights)
        case .blip: (encoder, decoder) = try BLIP.load(config: config, weights: weights)
        }
        unusedTensors = weights.unusedTensorNames()
        let pre = directory.appendingPathComponent("preprocessor_config.json")
        preprocessing = try PreprocessingConfig(FileManager.default.fileExists(atPath: pre.path)
                                                ? JSONConfig(contentsOf: pre) : JSONConfig(values: [:], file: pre.path),
                                                imageSize: encoder.imageSize)
        tokenizer = try TokenizerLoader.load(directory: directory)
        var defaults = try GenerationParameters(modelDirectory: directory, config: config)
        if family == .blip { try BLIP.adjustDefaults(&defaults, config: config) }
        self.defaults = defaults
        loadMilliseconds = Double((ContinuousClock.now - clock).components.attoseconds) / 1e15
            + Double((ContinuousClock.now - clock).components.seconds) * 1000
    }

    /// A decoding state sized for `beamWidth` beams (reuse it across images of a batch).
    public func makeState(beamWidth: Int) -> DecoderState {
        decoder.makeState(beamCapacity: max(beamWidth, 1), lengthCapacity: decoder.maxPositions)
    }

    /// Pixel values [3, S, S] for one decoded image, as the checkpoint's image processor makes them.
    public func pixelValues(for image: RGBImage) -> [Float] {
        let p = preprocessing
        let filter: ResampleFilter = p.resample == 3 ? .bicubic : (p.resample == 0 ? .nearest : .bilinear)
        return ImagePreprocessor(width: p.width, height: p.height, resample: filter,
                                 rescaleFactor: p.doRescale ? p.rescaleFactor : 1,
                                 mean: p.doNormalize ? p.mean : [0, 0, 0],
                                 std: p.doNormalize ? p.std : [1, 1, 1]).pixelValues(image)
    }

    /// Encoder hidden states [count, sequenceLength, hiddenSize] for `count` images' pixel values.
    public func encode(pixelValues: [Float], count: Int) -> Tensor {
        precondition(pixelValues.count == count * 3 * encoder.imageSize * encoder.imageSize, "pixel values of the wrong size")
        return pixelValues.withUnsafeBufferPointer { encoder.encode(pixelValues: $0.baseAddress!, count: count) }
    }

    /// Decoder input ids for an optional text prompt, as transformers builds them for this family.
    public func decoderPrompt(_ text: String?, parameters: GenerationParameters) -> [Int] {
        switch family {
        case .visionEncoderDecoder:
            // transformers: decoder_input_ids = [decoder_start_token_id] + tokenizer(prompt, add_special_tokens=False)
            return [parameters.decoderStartTokenId] + (text.map { tokenizer.encode($0) } ?? [])
        case .blip:
            return BLIP.decoderPrompt(text, encode: tokenizer.encode, bosTokenId: parameters.decoderStartTokenId)
        }
    }

    /// Generates captions for one image from its encoder states (a view [sequenceLength, hiddenSize]).
    public func generate(encoderStates: Tensor, prompt: [Int], parameters: GenerationParameters,
                         state: DecoderState) throws -> [GeneratedSequence] {
        decoder.setEncoderStates(encoderStates.data, rows: encoder.sequenceLength, state: state)
        return try Generator(decoder: decoder, parameters: parameters).generate(prompt: prompt, state: state)
    }

    /// Caption text of a generated sequence (special tokens skipped, cleaned up as transformers decodes).
    public func text(of sequence: GeneratedSequence) -> String {
        tokenizer.decode(Array(sequence.tokens), skipSpecialTokens: true)
    }
}
