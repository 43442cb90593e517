import Foundation

/// transformers' `GPT2Config` (the keys Glimpse reads; defaults as in transformers).
public struct GPT2Config: Sendable {
    public var vocabSize: Int             // vocab_size
    public var positions: Int             // n_positions
    public var width: Int                 // n_embd
    public var layers: Int                // n_layer
    public var heads: Int                 // n_head
    public var inner: Int                 // n_inner (null: 4·n_embd)
    public var activation: Kernels.Activation  // activation_function
    public var layerNormEps: Double       // layer_norm_epsilon
    public var scaleAttentionWeights: Bool       // scale_attn_weights
    public var scaleByInverseLayerIndex: Bool    // scale_attn_by_inverse_layer_idx
    public var crossAttention: Bool       // add_cross_attention

    public init(_ c: JSONConfig) throws {
        vocabSize = try c.int("vocab_size", default: 50257, in: 1...1_000_000)
        positions = try c.int("n_positions", default: 1024, in: 1...65536)
        width = try c.int("n_embd", default: 768, in: 1...16384)
        layers = try c.int("n_layer", default: 12, in: 1...256)
        heads = try c.int("n_head", default: 12, in: 1...1024)
        inner = try c.int("n_inner", default: 4 * width, in: 1...131072)
        activation = try Kernels.Activation(name: try c.string("activation_function") ?? "gelu_new")
        layerNormEps = try c.double("layer_norm_epsilon", default: 1e-5)
        scaleAttentionWeights = try c.bool("scale_attn_weights", default: true)
        scaleByInverseLayerIndex = try c.bool("scale_attn_by_inverse_layer_idx", default: false)
        // reorder_and_upcast_attn only changes where fp16 math is upcast; Glimpse computes in fp32 throughout.
        crossAttention = try c.bool("add_cross_attention", default: false)
        guard width % heads == 0 else {
            throw ModelError.invalidConfig(file: c.file, detail: "n_embd \(width) is not divisible by n_head \(heads)")
        }
        guard crossAttention else {
            throw ModelError.invalidConfig(file: c.file, detail: "add_cross_attention is false: a captioning decoder needs cross-attention")
        }
    }
}

/// GPT-2 decoder with cross-attention (transformers `GPT2LMHeadModel`), weights under `decoder.`.
final class GPT2Decoder: TextDecoder, @unchecked Sendable {
    struct Block {
        let layerNorm1: LayerNorm          // h.N.ln_1
        let attention: Linear              // h.N.attn.c_attn          Conv1D [E, 3E]
        let attentionProjection: Linear    // h.N.attn.c_proj          Conv1D [E, E]
        let layerNormCross: LayerNorm      // h.N.ln_cross_attn
        let crossQuery: Linear             // h.N.crossattention.q_attn  Conv1D [E, E]
        let crossKeyValue: Linear          // h.N.crossattention.c_attn  Conv1D [E, 2E]
        let crossProjection: Linear        // h.N.crossattention.c_proj  Conv1D [E, E]
        let layerNorm2: LayerNorm          // h.N.ln_2
        let fc: Linear                     // h.N.mlp.c_fc             Conv1D [E, inner]
        let projection: Linear             // h.N.mlp.c_proj           Conv1D [inner, E]
    }

    let config: GPT2Config
    let tokenEmbedding: Tensor      // transformer.wte.weight [V, E]
    let positionEmbedding: Tensor   // transformer.wpe.weight [P, E]
    let blocks: [Block]
    let finalLayerNorm: LayerNorm   // transformer.ln_f
    let lmHead: Linear              // lm_head.weight [V, E] (no bias), tied to wte when absent
    /// enc_to_dec_proj (top level, nn.Linear [E, encoderWidth]) when encoder and decoder widths differ.
    let encoderProjection: Linear?

    var vocabularySize: Int { config.vocabSize }
    var layerCount: Int { config.layers }
    var headCount: Int { config.heads }
    var maxPositions: Int { config.positions }
    var hiddenSize: Int { config.width }
    var stepWeightBytes: Int {
        let e = config.width, perLayer = 3 * e * e + e * e + e * e + e * e + 2 * e * config.inner
        return 4 * (config.layers * perLayer + config.vocabSize * e)
    }

    init(config: GPT2Config, weights w: WeightLoader, encoderProjection: Linear?) throws {
        self.config = config
        self.encoderProjection = encoderProjection
        let e = config.width
        let t = w.scoped("transformer")
        tokenEmbedding = try t.tensor("wte.weight", shape: [config.vocabSize, e])
        positionEmbedding = try t.tensor("wpe.weight", shape: [config.positions, e])
        blocks = try (0..<config.layers).map { i in
            let h = t.scoped("h.\(i)")
            return Block(
                layerNorm1: try LayerNorm(h, "ln_1", dim: e, eps: config.layerNormEps),
                attention: try Linear.conv1D(h, "attn.c_attn", in: e, out: 3 * e),
                attentionProjection: try Linear.conv1D(h, "attn.c_proj", in: e, out: e),
                layerNormCross: try LayerNorm(h, "ln_cross_attn", dim: e, eps: config.layerNormEps),
                crossQuery: try Linear.conv1D(h, "crossattention.q_attn", in: e, out: e),
                crossKeyValue: try Linear.conv1D(h, "crossattention.c_attn", in: e, out: 2 * e),
                crossProjection: try Linear.conv1D(h, "crossattention.c_proj", in: e, out: e),
                layerNorm2: try LayerNorm(h, "ln_2", dim: e, eps: config.layerNormEps),
                fc: try Linear.conv1D(h, "mlp.c_fc", in: e, out: config.inner),
                projection: try Linear.conv1D(h, "mlp.c_proj", in: config.inner, out: e))
        }
        finalLayerNorm = try LayerNorm(t, "ln_f", dim: e, eps: config.layerNormEps)
        lmHead = Linear(weight: try w.optionalWeightMatrix("lm_head.weight", out: config.vocabSize, in: e, layout: .outputMajor)
                            ?? t.weightMatrix("wte.weight", out: config.vocabSize, in: e, layout: .outputMajor), bias: nil)
    }

    /// Attention scale of layer `i` as GPT-2 computes it.
    func attentionScale(layer i: Int) -> Float {
        var scale: Float = config.scaleAttentionWeights ? 1 / Float(config.width / config.heads).squareRoot() : 1
        if config.scaleByInverseLayerIndex { scale /= Float(i + 1) }
        return scale
    }

    func setEncoderStates(_ states: UnsafePointer<Float>, rows: Int, state: DecoderState, slot: Int) {
        let e = config.width
        var source = states
        let projected = state.gather
        if let proj = encoderProjection {
            // torch: encoder_hidden_states = self.enc_to_dec_proj(encoder_hidden_states)
            proj(states, rows: rows, into: projected.reserve(rows * e))
            source = UnsafePointer(projected.pointer)
        }
        for (l, block) in blocks.enumerated() {
            // torch: key, value = self.c_attn(encoder_hidden_states).split(self.split_size, dim=2)
            block.crossKeyValue(source, rows: rows, into: state.crossKeyValue(layer: l, slot: slot).reserve(rows * 2 * e))
        }
        state.encoderRows = rows
        state.reset(slot: slot)
    }

    func forwardScheduled(state: DecoderState, allPositions: Bool, captureCrossAttention: Bool) -> UnsafeMutablePointer<Float> {
        let e = config.width
        let rows = state.scheduledRows
        let scores = state.prepareStep(layers: config.layers, heads: config.heads, inner: config.inner,
                                       capture: captureCrossAttention)
        let h = state.hidden.pointer, normed = state.normed.pointer, qkv = state.qkv.pointer
        let context = state.context.pointer, mlp = state.mlp.pointer

        // torch: hidden_states = wte(input_ids) + wpe(position_ids)
        state.embed(tokenTable: tokenEmbedding, positionTable: positionEmbedding, into: h)

        for l in 0..<blocks.count {
            let block = blocks[l]
            let scale = attentionScale(layer: l)
            // Self-attention: x = x + c_proj(attn(ln_1(x))), new K/V appended to each beam's cache.
            block.layerNorm1(h, rows: rows, into: normed)
            block.attention(normed, rows: rows, into: qkv)
            state.cachedSelfAttention(layer: l, qkv: qkv, heads: config.heads, scale: scale,
                                      scores: scores, into: context)
            block.attentionProjection(context, rows: rows, into: normed)
            Kernels.add(h, normed, count: rows * e)

            // Cross-attention over the image: x = x + c_proj(attn(q_attn(ln_cross_attn(x)), K_enc, V_enc)).
            block.layerNormCross(h, rows: rows, into: normed)
            block.crossQuery(normed, rows: rows, into: qkv)
            state.cachedCrossAttention(layer: l, query: qkv, heads: config.heads, scale: scale,
                                       scores: scores, capture: captureCrossAttention, into: context)
            block.crossProjection(context, rows: rows, into: normed)
            Kernels.add(h, normed, count: rows * e)

            // MLP: x = x + c_proj(act(c_fc(ln_2(x))))
            block.layerNorm2(h, rows: rows, into: normed)
            block.fc(normed, rows: rows, into: mlp)
            Kernels.activate(mlp, count: rows * config.inner, config.activation)
            block.projection(mlp, rows: rows, into: normed)
            Kernels.add(h, normed, count: rows * e)
        }
        state.finishStep(capture: captureCrossAttention)

        // torch: logits = lm_head(ln_f(x)) — only the rows generation needs.
        let outRows = allPositions ? rows : state.outputRowCount
        state.forEachOutputRow(allPositions: allPositions) { out, src in
            finalLayerNorm(h + src * e, rows: 1, into: normed + out * e)
        }
        let logits = state.logits.reserve(outRows * config.vocabSize)
        lmHead(normed, rows: outRows, into: logits)
        return logits
    }
}
