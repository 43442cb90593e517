import Foundation

/// What to do with each image.
public struct CaptionRequest: Sendable {
    public var parameters: GenerationParameters
    public var prompt: String?
    public var detect = false
    public var segment = false
    /// Include per-token aggregate attention maps in the record (`--attention`).
    public var includeAttention = false
    /// Which grounding produces detections (learned heads when present, by default).
    public var grounding = Grounding.Method.auto
    public var maxPixels = 100_000_000

    public init(parameters: GenerationParameters) { self.parameters = parameters }

    /// Whether generation must keep cross-attention maps.
    public var needsAttention: Bool { detect || segment || includeAttention }
}

/// One image's result, before it becomes a JSON record.
public struct CaptionResult: @unchecked Sendable {
    public var file: String
    public var image: RGBImage
    public var sequences: [GeneratedSequence]
    public var texts: [String]
    /// Encoder hidden states of this image [sequenceLength, hiddenSize] (the heads pool them).
    public var encoderStates: Tensor
    public var timing: Timing

    public struct Timing: Sendable {
        public var decodeMilliseconds = 0.0
        public var encodeMilliseconds = 0.0
        public var generateMilliseconds = 0.0

        public init(decodeMilliseconds: Double = 0, encodeMilliseconds: Double = 0, generateMilliseconds: Double = 0) {
            self.decodeMilliseconds = decodeMilliseconds
            self.encodeMilliseconds = encodeMilliseconds
            self.generateMilliseconds = generateMilliseconds
        }
    }

    public init(file: String, image: RGBImage, sequences: [GeneratedSequence], texts: [String], encoderStates: Tensor, timing: Timing) {
        self.file = file
        self.image = image
        self.sequences = sequences
        self.texts = texts
        self.encoderStates = encoderStates
        self.timing = timing
    }
}

/// A decoded, preprocessed image ready for the encoder (what the batch prefetcher produces).
public struct PreparedImage: @unchecked Sendable {
    public var file: String
    /// The decoded image; `RecordPipeline.shed` empties its `pixels` once `pixelValues` exist when the
    /// record needs only the size.
    public var image: RGBImage
    public var pixelValues: [Float]
    public var decodeMilliseconds: Double
}

@inline(__always) func milliseconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}

/// Runs images through one model: decode → preprocess → encode (batched) → generate (batched:
/// several images' beams advance through the decoder together, `DecodeBatch`).
/// Owns a decode batch reused across calls, so one Captioner serves one thread.
public final class Captioner {
    public let model: CaptionModel
    /// Images decoded together (bounded by `DecodeBatch.maximumCapacity` and its memory budget).
    public let decodeBatchSize: Int
    private var decoding: DecodeScheduler?

    /// `beamWidth` is kept for source compatibility (the batch is sized from each request).
    public init(model: CaptionModel, beamWidth: Int = 1, decodeBatchSize: Int = 8) {
        self.model = model
        self.decodeBatchSize = min(max(1, decodeBatchSize), DecodeBatch.maximumCapacity)
    }

    /// Decodes and preprocesses one file (safe to call from a prefetching thread).
    public static func prepare(file: String, model: CaptionModel, maxPixels: Int) throws -> PreparedImage {
        let start = ContinuousClock.now
        return try prepare(try ImageDecoder.decode(file: file, maxPixels: maxPixels), file: file, model: model, start: start)
    }

    /// Decodes and preprocesses an image held in memory (an upload); `name` stands for its file in messages and records.
    public static func prepare(data: Data, name: String, model: CaptionModel, maxPixels: Int) throws -> PreparedImage {
        let start = ContinuousClock.now
        return try prepare(try ImageDecoder.decode(data: data, name: name, maxPixels: maxPixels), file: name, model: model, start: start)
    }

    private static func prepare(_ decoded: DecodedImage, file: String, model: CaptionModel,
                                start: ContinuousClock.Instant) throws -> PreparedImage {
        let pixels = try model.preprocessor.pixelValues(decoded, file: file, encoderSide: model.encoder.imageSize)
        return PreparedImage(file: file, image: decoded.image, pixelValues: pixels,
                             decodeMilliseconds: milliseconds(since: start))
    }

    /// Encodes prepared images in one encoder pass with the encoder prompt `prompt` (`Generation.encoderPrompt`):
    /// their hidden states, and the pass's time per image.
    public static func encode(_ batch: [PreparedImage], model: CaptionModel, prompt: [Int] = []) -> (states: Tensor, millisecondsPerImage: Double) {
        let start = ContinuousClock.now
        var pixels: [Float] = []
        pixels.reserveCapacity(batch.count * (batch.first?.pixelValues.count ?? 0))
        for item in batch { pixels.append(contentsOf: item.pixelValues) }
        let states = model.encode(pixelValues: pixels, count: batch.count, prompt: prompt)
        return (states, milliseconds(since: start) / Double(max(batch.count, 1)))
    }

    /// What a request asks of the model: generation parameters, the decoder's prompt and the
    /// encoder's (empty unless the encoder reads text, as Florence-2's does).
    public struct Generation: Sendable {
        public var parameters: GenerationParameters
        public var decoderPrompt: [Int]
        public var encoderPrompt: [Int]
    }

    /// The generation of `request`; throws for a prompt the model's family refuses.
    public static func generation(_ request: CaptionRequest, model: CaptionModel) throws -> Generation {
        var parameters = request.parameters
        parameters.captureAttention = request.needsAttention
        return Generation(parameters: parameters, decoderPrompt: model.decoderPrompt(request.prompt, parameters: parameters),
                          encoderPrompt: try model.encoderPrompt(request.prompt))
    }

    /// Encodes several prepared images in one encoder pass, then generates for them together.
    /// A generation failure (e.g. NaN logits) fails that image only.
    public func caption(_ batch: [PreparedImage], request: CaptionRequest) -> [Result<CaptionResult, Error>] {
        guard !batch.isEmpty else { return [] }
        let generation: Generation
        do { generation = try Self.generation(request, model: model) } catch { return batch.map { _ in .failure(error) } }
        let (parameters, prompt) = (generation.parameters, generation.decoderPrompt)
        let (states, encodeMs) = Self.encode(batch, model: model, prompt: generation.encoderPrompt)
        var results = batch.map { item -> Result<CaptionResult, Error> in
            .failure(ModelError.invalidInput("\(item.file): internal: image left the decode batch without a result"))
        }
        let decoding: DecodeScheduler
        do { decoding = try scheduler(parameters: parameters, promptLength: prompt.count) } catch {
            return batch.map { _ in .failure(error) }
        }
        for i in batch.indices {
            decoding.submit(.init(id: i, encoderStates: states[index: i], prompt: prompt, parameters: parameters))
        }
        decoding.drain { outcome in
            let i = outcome.id
            results[i] = outcome.result.map { sequences in
                CaptionResult(file: batch[i].file, image: batch[i].image, sequences: sequences,
                              texts: sequences.map { self.model.text(of: $0) }, encoderStates: states[index: i],
                              timing: .init(decodeMilliseconds: batch[i].decodeMilliseconds, encodeMilliseconds: encodeMs,
                                            generateMilliseconds: outcome.generateMilliseconds))
            }
        }
        return results
    }

    /// The decode scheduler, made on first use (it remakes its batch when a request does not fit).
    private func scheduler(parameters: GenerationParameters, promptLength: Int) throws -> DecodeScheduler {
        if let decoding { return decoding }
        let made = try DecodeScheduler(model: model, parameters: parameters, promptLength: promptLength, capacity: decodeBatchSize)
        decoding = made
        return made
    }

    /// Captions one file end to end.
    public func caption(file: String, request: CaptionRequest) -> Result<CaptionResult, Error> {
        do {
            let prepared = try Self.prepare(file: file, model: model, maxPixels: request.maxPixels)
            return caption([prepared], request: request)[0]
        } catch {
            return .failure(error)
        }
    }
}
