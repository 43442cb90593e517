import Foundation

/// Hugging Face `ViTForImageClassification` (e.g. google/vit-base-patch16-224): a ViT encoder under
/// `vit.` and a linear head (`classifier`) on the class row of its final layer norm.
public struct ViTImageClassification: ClassifierFamily {
    public init() {}
    public var name: String { "vit-image-classification" }
    public var displayName: String { "ViTForImageClassification" }

    public func recognizes(architectures: [String], modelType: String?) -> Bool {
        architectures.contains("ViTForImageClassification")
    }

    public func load(config: JSONConfig, weights: WeightLoader) throws -> any ImageClassifier {
        let vit = try ViTConfig(config)
        let classes = try ClassLabels.count(config)
        return ViTClassifier(encoder: try ViTEncoder(config: vit, weights: weights.scoped("vit")),
                             head: try Linear.linear(weights, "classifier", in: vit.hiddenSize, out: classes))
    }

    /// transformers builds the classifier's ViT without a pooler (add_pooling_layer=False).
    public func expectsUnused(_ name: String) -> Bool { name.hasPrefix("vit.pooler.") }
}

final class ViTClassifier: ImageClassifier, @unchecked Sendable {
    let encoder: ViTEncoder
    let head: Linear   // classifier.{weight [classes, D], bias [classes]}

    init(encoder: ViTEncoder, head: Linear) {
        self.encoder = encoder
        self.head = head
    }

    var imageSize: Int { encoder.config.imageSize }
    var channels: Int { encoder.config.channels }
    var classCount: Int { head.outFeatures }
    var sequenceLength: Int { encoder.config.sequenceLength }
    var patches: PatchRows { encoder.patches }
    var layerCount: Int { encoder.config.layers }
    var headCount: Int { encoder.config.heads }

    /// torch: logits = classifier(layernorm(vit(pixel_values))[:, 0, :])
    func logits(pixelValues: UnsafePointer<Float>, count: Int, attentions: UnsafeMutablePointer<Float>?) -> Tensor {
        let hidden = encoder(pixelValues: pixelValues, count: count, attentions: attentions)
        // Each image's class row, read in place (row stride: a whole sequence).
        let out = Tensor(zeros: [count, classCount])
        head(hidden.data, rows: count, into: out.data, xStride: sequenceLength * encoder.config.hiddenSize)
        return out
    }
}

/// A classifier's class names as transformers reads them from config.json: `id2label` (keys "0"..."n-1")
/// sets the number of classes; without it `num_labels` (default 2) with names "LABEL_i".
enum ClassLabels {
    static let maximumCount = 1_000_000

    static func count(_ config: JSONConfig) throws -> Int { try names(config).count }

    static func names(_ config: JSONConfig) throws -> [String] {
        guard let table = try config.object("id2label") else {
            let n = try config.int("num_labels", default: 2, in: 1...maximumCount)
            return (0..<n).map { "LABEL_\($0)" }
        }
        guard !table.values.isEmpty, table.values.count <= maximumCount else {
            throw ModelError.invalidConfig(file: config.file, detail: "id2label has \(table.values.count) entries (1...\(maximumCount) allowed)")
        }
        var names = [String?](repeating: nil, count: table.values.count)
        for (key, value) in table.values {
            guard let id = Int(key), names.indices.contains(id), names[id] == nil else {
                throw ModelError.invalidConfig(file: config.file, detail: "id2label key '\(key)' is not a class id in 0..<\(names.count)")
            }
            guard let name = value as? String else {
                throw ModelError.invalidConfig(file: config.file, detail: "id2label['\(key)'] is not a string")
            }
            names[id] = name
        }
        return names.map { $0 ?? "" }
    }
}
