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
    }
}

/// A decoded, preprocessed image ready for the encoder (what the batch prefetcher produces).
public struct PreparedImage: @unchecked Sendable {
    public var file: String
    /// The decoded image; `BatchRunner` empties its `pixels` once `pixelValues` exist (only the size is used).
    public var image: RGBImage
    public var pixelValues: [Float]
    public var decodeMilliseconds: Double
}

@inline(__always) func milliseconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}

/// Runs images through one model: decode → preprocess → encode (batched) → generate.
/// Owns a decoding state reused across images, so one Captioner serves one thread.
public final class Captioner {
    public let model: CaptionModel
    private var state: DecoderState

    public init(model: CaptionModel, beamWidth: Int) {
        self.model = model
        state = model.makeState(beamWidth: beamWidth, maxLength: 1)  // grown to the request on first use
    }

    /// Decodes and preprocesses one file (safe to call from a prefetching thread).
    public static func prepare(file: String, model: CaptionModel, maxPixels: Int) throws -> PreparedImage {
        let start = ContinuousClock.now
        let decoded = try ImageDecoder.decode(file: file, maxPixels: maxPixels)
        // A preprocessor_config.json with do_resize false passes images through at their own size; the
        // encoder only takes its image_size, so anything else is this file's error (it used to reach the
        // encoder's size precondition and abort the whole run).
        let side = model.encoder.imageSize
        if !model.preprocessor.doResize && (decoded.image.width != side || decoded.image.height != side) {
            throw ModelError.invalidInput("\(file): image is \(decoded.image.width)x\(decoded.image.height) but the model's "
                + "preprocessor_config.json has do_resize false and the encoder takes \(side)x\(side)")
        }
        let pixels = model.pixelValues(for: decoded.image)
        return PreparedImage(file: file, image: decoded.image, pixelValues: pixels,
                             decodeMilliseconds: milliseconds(since: start))
    }

    /// Encodes several prepared images in one encoder pass, then generates for each.
    /// A generation failure (e.g. NaN logits) fails that image only.
    /// `generate[i]` false encodes image i with the others but skips its generation (a batch runner's
    /// padding image, encoded only so the batch composition stays fixed); its result is a failure.
    public func caption(_ batch: [PreparedImage], request: CaptionRequest, generate: [Bool]? = nil) -> [Result<CaptionResult, Error>] {
        guard !batch.isEmpty else { return [] }
        let start = ContinuousClock.now
        var pixels: [Float] = []
        pixels.reserveCapacity(batch.count * batch[0].pixelValues.count)
        for item in batch { pixels.append(contentsOf: item.pixelValues) }
        let states = model.encode(pixelValues: pixels, count: batch.count)
        let encodeMs = milliseconds(since: start) / Double(batch.count)

        var parameters = request.parameters
        parameters.captureAttention = request.needsAttention
        let prompt = model.decoderPrompt(request.prompt, parameters: parameters)
        let maxLength = parameters.resolvedMaxLength(promptLength: prompt.count)
        if state.beamCapacity < parameters.beamWidth || state.lengthCapacity < min(maxLength, model.decoder.maxPositions) {
            state = model.makeState(beamWidth: parameters.beamWidth, maxLength: maxLength)
        }
        return batch.enumerated().map { i, item in
            if let generate, !generate[i] { return .failure(ModelError.invalidInput("\(item.file): encoded as batch padding only")) }
            return Result {
                let genStart = ContinuousClock.now
                let view = states[index: i]
                let sequences = try model.generate(encoderStates: view, prompt: prompt, parameters: parameters, state: state)
                return CaptionResult(file: item.file, image: item.image, sequences: sequences,
                                     texts: sequences.map { model.text(of: $0) }, encoderStates: view,
                                     timing: .init(decodeMilliseconds: item.decodeMilliseconds,
                                                   encodeMilliseconds: encodeMs,
                                                   generateMilliseconds: milliseconds(since: genStart)))
            }
        }
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
