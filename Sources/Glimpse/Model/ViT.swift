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
    struct Block {
        let layerNormBefore: LayerNorm   // layer.N.layernorm_before
        let query, key, value: Linear    // layer.N.attention.attention.{query,key,value}  [D, D]
        let attentionOutput: Linear      // layer.N.attention.output.dense               [D, D]
        let layerNormAfter: LayerNorm    // layer.N.layernorm_after
        let intermediate: Linear         // layer.N.intermediate.dense                   [I, D]
        let output: Linear               // layer.N.output.dense                         [D, I]
    }

    let config: ViTConfig
    let clsToken: Tensor            // embeddings.cls_token                          [1, 1, D]
    let positionEmbeddings: Tensor  // embeddings.position_embeddings                [1, 1+G², D]
    let patchEmbedding: PatchEmbedding  // embeddings.patch_embeddings.projection.{weight [D, C, P, P], bias [D]}
    let blocks: [Block]
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
            return Block(
                layerNormBefore: try LayerNorm(l, "layernorm_before", dim: d, eps: config.layerNormEps),
                query: try Linear.linear(l, "attention.attention.query", in: d, out: d, bias: config.qkvBias),
                key: try Linear.linear(l, "attention.attention.key", in: d, out: d, bias: config.qkvBias),
                value: try Linear.linear(l, "attention.attention.value", in: d, out: d, bias: config.qkvBias),
                attentionOutput: try Linear.linear(l, "attention.output.dense", in: d, out: d),
                layerNormAfter: try LayerNorm(l, "layernorm_after", dim: d, eps: config.layerNormEps),
                intermediate: try Linear.linear(l, "intermediate.dense", in: d, out: config.intermediateSize),
                output: try Linear.linear(l, "output.dense", in: config.intermediateSize, out: d))
        }
        finalLayerNorm = try LayerNorm(w, "layernorm", dim: d, eps: config.layerNormEps)
    }

    /// Encodes `count` images of pixel values [count, C, S, S] into hidden states [count, 1+G², D].
    func callAsFunction(pixelValues: UnsafePointer<Float>, count: Int) -> Tensor {
        let cfg = config, d = cfg.hiddenSize, s = cfg.imageSize
        let n = cfg.sequenceLength, rows = count * n
        let hidden = Tensor(zeros: [count, n, d])
        let h = hidden.data

        // Patch embedding (Conv2d with kernel = stride = P) into rows 1..., CLS token into row 0,
        // then all rows + position embeddings.
        // torch: embeddings = cat(cls_token, projection(pixel_values).flatten(2).transpose(1, 2)) + position_embeddings
        patchEmbedding(pixelValues, count: count, imageSize: s, into: h + d, imageStride: n * d)
        for b in 0..<count {
            let out = h + b * n * d
            out.update(from: clsToken.data, count: d)
            Kernels.add(out, positionEmbeddings.data, count: n * d)
        }

        let normed = UnsafeMutablePointer<Float>.allocate(capacity: rows * d)
        let qkv = UnsafeMutablePointer<Float>.allocate(capacity: rows * 3 * d)
        let context = UnsafeMutablePointer<Float>.allocate(capacity: rows * d)
        let mlp = UnsafeMutablePointer<Float>.allocate(capacity: rows * cfg.intermediateSize)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer { [normed, qkv, context, mlp, scores].forEach { $0.deallocate() } }
        let headDim = d / cfg.heads

        for block in blocks {
            // x = x + attention(layernorm_before(x))
            block.layerNormBefore(h, rows: rows, into: normed)
            block.query(normed, rows: rows, into: qkv, outStride: 3 * d)
            block.key(normed, rows: rows, into: qkv + d, outStride: 3 * d)
            block.value(normed, rows: rows, into: qkv + 2 * d, outStride: 3 * d)
            for b in 0..<count {
                let base = qkv + b * n * 3 * d
                Attention.attend(.init(query: base, queryStride: 3 * d, key: base + d, keyStride: 3 * d,
                                       value: base + 2 * d, valueStride: 3 * d, queryRows: n, keyRows: n,
                                       heads: cfg.heads, headDim: headDim,
                                       scale: 1 / Float(headDim).squareRoot(), causalOffset: nil),
                                 into: context + b * n * d, outStride: d, scores: scores)
            }
            block.attentionOutput(context, rows: rows, into: normed)
            Kernels.add(h, normed, count: rows * d)
            // x = x + output(act(intermediate(layernorm_after(x))))
            block.layerNormAfter(h, rows: rows, into: normed)
            block.intermediate(normed, rows: rows, into: mlp)
            Kernels.activate(mlp, count: rows * cfg.intermediateSize, cfg.activation)
            block.output(mlp, rows: rows, into: normed)
            Kernels.add(h, normed, count: rows * d)
        }
        finalLayerNorm(h, rows: rows, into: h)
        return hidden
    }
}
