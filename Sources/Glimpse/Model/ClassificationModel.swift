import Foundation

/// An immutable, thread-shareable image classifier loaded from a Hugging Face model directory
/// (a `ClassifierFamily` checkpoint: config.json with id2label, weights, preprocessor_config.json).
public final class ClassificationModel: @unchecked Sendable {
    public let directory: URL
    public let family: any ClassifierFamily
    public let classifier: any ImageClassifier
    /// Class names by id (config.json's id2label).
    public let labels: [String]
    public let preprocessor: ImagePreprocessor
    /// Checkpoint tensors no layer asked for, reported, not fatal.
    public let unusedTensors: [String]
    public let loadMilliseconds: Double
    private let weightFile: SafeTensorsFile

    /// One scored class of an image.
    public struct Label: Sendable, Equatable {
        public var label: String
        public var id: Int
        /// Softmax probability.
        public var score: Float
    }

    public init(directory: URL, checkWeights: Bool = false) throws {
        let clock = ContinuousClock.now
        self.directory = directory
        try ModelDirectory.check(directory)
        let config = try JSONConfig(contentsOf: directory.appendingPathComponent("config.json"))
        family = try ModelFamilies.classifierFamily(for: config)
        weightFile = try ModelDirectory.weights(in: directory, checkFinite: checkWeights)
        let weights = try WeightLoader(files: [weightFile])
        classifier = try family.load(config: config, weights: weights)
        labels = try ClassLabels.names(config)
        unusedTensors = (weights.unusedTensorNames() + weightFile.skippedTensors).filter { [family] in !family.expectsUnused($0) }
        preprocessor = try ModelDirectory.preprocessor(in: directory, imageSize: classifier.imageSize, channels: classifier.channels)
        loadMilliseconds = milliseconds(since: clock)
    }

    /// Pixel values [3, S, S] of a decoded file, as the checkpoint's image processor makes them.
    public func pixelValues(for decoded: DecodedImage, file: String) throws -> [Float] {
        try preprocessor.pixelValues(decoded, file: file, encoderSide: classifier.imageSize)
    }

    /// Class probabilities [count][classes] (softmax of the logits) for `count` images' pixel values;
    /// with `rollout`, also each image's attention rollout of the class row over the patch grid
    /// (`AttentionRollout`, G×G row-major).
    public func probabilities(pixelValues: [Float], count: Int, rollout: Bool = false) -> (probabilities: [[Float]], rollouts: [[Float]]) {
        let c = classifier, n = c.sequenceLength
        precondition(pixelValues.count == count * 3 * c.imageSize * c.imageSize, "pixel values of the wrong size")
        let perImage = c.headCount * n * n
        let attentions = rollout ? Tensor(zeros: [c.layerCount, count, perImage]) : nil
        let logits = pixelValues.withUnsafeBufferPointer { c.logits(pixelValues: $0.baseAddress!, count: count, attentions: attentions?.data) }
        Kernels.softmaxRows(logits.data, rows: count, cols: c.classCount)
        let probabilities = (0..<count).map { Array(UnsafeBufferPointer(start: logits.data + $0 * c.classCount, count: c.classCount)) }
        guard let attentions else { return (probabilities, []) }
        // Image b's layer l is at (l · count + b) · perImage.
        let rollouts = (0..<count).map { b in
            AttentionRollout.map(attentions: attentions.data + b * perImage, layers: c.layerCount, heads: c.headCount,
                                 length: n, layerStride: count * perImage, patches: c.patches)
        }
        return (probabilities, rollouts)
    }

    /// The `k` most probable classes, best first (equal scores: lower id first).
    public func top(_ k: Int, of probabilities: [Float]) -> [Label] {
        let order = probabilities.indices.sorted { probabilities[$0] != probabilities[$1] ? probabilities[$0] > probabilities[$1] : $0 < $1 }
        return order.prefix(max(0, k)).map { Label(label: labels[$0], id: $0, score: probabilities[$0]) }
    }

    /// One image file's record (`glimpse classify --json`): decoded, preprocessed and classified,
    /// or the reason it could not be.
    public func record(file: String, topK: Int, maxPixels: Int = ImageDecoder.defaultMaxPixels) -> ClassificationRecord {
        do {
            let start = ContinuousClock.now
            let decoded = try ImageDecoder.decode(file: file, maxPixels: maxPixels)
            let pixels = try pixelValues(for: decoded, file: file)
            let decode = milliseconds(since: start)
            let encodeStart = ContinuousClock.now
            let scores = probabilities(pixelValues: pixels, count: 1).probabilities[0]
            return ClassificationRecord(file: file, width: decoded.image.width, height: decoded.image.height,
                                        model: directory.path, labels: top(topK, of: scores),
                                        timingMilliseconds: ["decode": decode, "encode": milliseconds(since: encodeStart)])
        } catch {
            return ClassificationRecord(file: file, error: RecordPipeline.cause(of: error, file: file))
        }
    }
}
