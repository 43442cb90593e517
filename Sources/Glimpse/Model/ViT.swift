import Foundation

/// transformers' `ViTConfig` (the keys Glimpse reads; defaults as in transformers).
public struct ViTConfig: Sendable {
    public var hiddenSize: Int            // hidden_size
    public var layers: Int                // num_hidden_layers
    public var heads: Int                 // num_attention_heads
    public var intermediateSize: Int      // intermediate_size
    public var activation: Kernels.Activation   // hidden_act
    public var layerNormEps: Double       // layer_norm_eps
    public var imageSize: Int             // image_size
    public var patchSize: Int             // patch_size
    public var channels: Int              // num_channels
    public var qkvBias: Bool              // qkv_bias

    public init(_ c: JSONConfig) throws {
        hiddenSize = try c.int("hidden_size", default: 768, in: 1...16384)
        layers = try c.int("num_hidden_layers", default: 12, in: 1...256)
        heads = try c.int("num_attention_heads", default: 12, in: 1...1024)
        intermediateSize = try c.int("intermediate_size", default: 3072, in: 1...65536)
        activation = try Kernels.Activation(name: try c.string("hidden_act") ?? "gelu")
        layerNormEps = try c.double("layer_norm_eps", default: 1e-12)
        imageSize = try c.int("image_size", default: 224, in: 1...8192)
        patchSize = try c.int("patch_size", default: 16, in: 1...1024)
        channels = try c.int("num_channels", default: 3, in: 1...4)
        qkvBias = try c.bool("qkv_bias", default: true)
        guard hiddenSize % heads == 0 else {
            throw ModelError.invalidConfig(file: c.file, detail: "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads)")
        }
        guard imageSize % patchSize == 0 else {
            throw ModelError.invalidConfig(file: c.file, detail: "image_size \(imageSize) is not a multiple of patch_size \(patchSize)")
        }
    }

    public var gridSize: Int { imageSize / patchSize }
    /// Sequence length: CLS + patches.
    public var sequenceLength: Int { 1 + gridSize * gridSize }
}

/// ViT image encoder (transformers `ViTModel` without pooler), weights under `encoder.`.
final class ViTEncoder: @unchecked Sendable {
    let config: ViTConfig
    let clsToken: Tensor            // embeddings.cls_token                          [1, 1, D]
    let positionEmbeddings: Tensor  // embeddings.position_embeddings                [1, 1+G², D]
    let patchEmbedding: PatchEmbedding  // embeddings.patch_embeddings.projection.{weight [D, C, P, P], bias [D]}
    let blocks: [PreNormEncoderBlock]   // encoder.layer.N.*
    let finalLayerNorm: LayerNorm   // layernorm

    init(config: ViTConfig, weights w: WeightLoader) throws {
        self.config = config
        let d = config.hiddenSize, p = config.patchSize, c = config.channels
        let emb = w.scoped("embeddings")
        clsToken = try emb.tensor("cls_token", shape: [1, 1, d])
        positionEmbeddings = try emb.tensor("position_embeddings", shape: [1, config.sequenceLength, d])
        patchEmbedding = try PatchEmbedding(emb, "patch_embeddings.projection", channels: c, patchSize: p, width: d)
        blocks = try (0..<config.layers).map { i in
            let l = w.scoped("encoder.layer.\(i)")
            return PreNormEncoderBlock(
                layerNorm1: try LayerNorm(l, "layernorm_before", dim: d, eps: config.layerNormEps),
                qkv: [try Linear.linear(l, "attention.attention.query", in: d, out: d, bias: config.qkvBias),   // [D, D]
                      try Linear.linear(l, "attention.attention.key", in: d, out: d, bias: config.qkvBias),     // [D, D]
                      try Linear.linear(l, "attention.attention.value", in: d, out: d, bias: config.qkvBias)],  // [D, D]
                projection: try Linear.linear(l, "attention.output.dense", in: d, out: d),                      // [D, D]
                layerNorm2: try LayerNorm(l, "layernorm_after", dim: d, eps: config.layerNormEps),
                fc1: try Linear.linear(l, "intermediate.dense", in: d, out: config.intermediateSize),           // [I, D]
                fc2: try Linear.linear(l, "output.dense", in: config.intermediateSize, out: d))                 // [D, I]
        }
        finalLayerNorm = try LayerNorm(w, "layernorm", dim: d, eps: config.layerNormEps)
    }

    /// Encodes `count` images of pixel values [count, C, S, S] into hidden states [count, 1+G², D];
    /// with `attentions`, also each layer's attention probabilities [layers, count, heads, 1+G², 1+G²].
    func callAsFunction(pixelValues: UnsafePointer<Float>, count: Int, attentions: UnsafeMutablePointer<Float>? = nil) -> Tensor {
        let cfg = config, d = cfg.hiddenSize, s = cfg.imageSize
        let n = cfg.sequenceLength, rows = count * n
        // torch: embeddings = cat(cls_token, projection(pixel_values).flatten(2).transpose(1, 2)) + position_embeddings
        let hidden = patchEmbedding.sequences(pixelValues, count: count, imageSize: s,
                                              classToken: clsToken, positions: positionEmbeddings)
        let h = hidden.data
        PreNormEncoder.run(blocks, hidden: h, count: count, length: n, width: d, heads: cfg.heads,
                           inner: cfg.intermediateSize, activation: cfg.activation, attentions: attentions)
        finalLayerNorm(h, rows: rows, into: h)
        return hidden
    }
}

extension ViTEncoder: ImageEncoder {
    var imageSize: Int { config.imageSize }
    var channels: Int { config.channels }
    var hiddenSize: Int { config.hiddenSize }
    var sequenceLength: Int { config.sequenceLength }
    /// CLS first, then the patches.
    var patches: PatchRows { PatchRows(first: 1, grid: config.gridSize) }
    func encode(pixelValues: UnsafePointer<Float>, count: Int, prompt: [Int]) -> Tensor {
        precondition(prompt.isEmpty, "ViT reads no prompt (VisionEncoderDecoder gives it to the decoder)")
        return self(pixelValues: pixelValues, count: count)
    }
}
