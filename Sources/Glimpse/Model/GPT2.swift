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

/// GPT-2 decoder with cross-attention (transformers `GPT2LMHeadModel`), weights under `decoder.`:
/// pre-LN blocks (`DecoderBlock.runPreNorm`).
final class GPT2Decoder: TextDecoder, @unchecked Sendable {
    let config: GPT2Config
    let tokenEmbedding: Tensor      // transformer.wte.weight [V, E]
    let positionEmbedding: Tensor   // transformer.wpe.weight [P, E]
    let blocks: [DecoderBlock]      // transformer.h.N.*
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
        let e = config.width, eps = config.layerNormEps
        let t = w.scoped("transformer")
        tokenEmbedding = try t.tensor("wte.weight", shape: [config.vocabSize, e])
        positionEmbedding = try t.tensor("wpe.weight", shape: [config.positions, e])
        blocks = try (0..<config.layers).map { i in
            let h = t.scoped("h.\(i)")
            // Conv1D weights are stored [in, out].
            return DecoderBlock(
                selfQKV: [try Linear.conv1D(h, "attn.c_attn", in: e, out: 3 * e)],                    // [E, 3E]
                selfOutput: try Linear.conv1D(h, "attn.c_proj", in: e, out: e),                       // [E, E]
                selfNorm: try LayerNorm(h, "ln_1", dim: e, eps: eps),
                crossQuery: try Linear.conv1D(h, "crossattention.q_attn", in: e, out: e),             // [E, E]
                crossKeyValue: [try Linear.conv1D(h, "crossattention.c_attn", in: e, out: 2 * e)],    // [E, 2E]
                crossOutput: try Linear.conv1D(h, "crossattention.c_proj", in: e, out: e),            // [E, E]
                crossNorm: try LayerNorm(h, "ln_cross_attn", dim: e, eps: eps),
                fc1: try Linear.conv1D(h, "mlp.c_fc", in: e, out: config.inner),                      // [E, inner]
                fc2: try Linear.conv1D(h, "mlp.c_proj", in: config.inner, out: e),                    // [inner, E]
                mlpNorm: try LayerNorm(h, "ln_2", dim: e, eps: eps),
                activation: config.activation)
        }
        finalLayerNorm = try LayerNorm(t, "ln_f", dim: e, eps: eps)
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
            block.crossKeysAndValues(source, rows: rows, width: e, into: state.crossKeyValue(layer: l, slot: slot).reserve(rows * 2 * e))
        }
        state.encoderRows = rows
        state.reset(slot: slot)
    }

    func logits(state: DecoderState, allPositions: Bool, captureCrossAttention: Bool) -> UnsafeMutablePointer<Float> {
        let e = config.width
        let rows = state.scheduledRows
        let buffers = state.prepareStep(layers: config.layers, heads: config.heads, inner: config.inner,
                                        capture: captureCrossAttention)
        let h = buffers.hidden, normed = buffers.normed

        // torch: hidden_states = wte(input_ids) + wpe(position_ids)
        state.embed(tokenTable: tokenEmbedding, positionTable: positionEmbedding, into: h)
        for (l, block) in blocks.enumerated() {
            block.runPreNorm(layer: l, state: state, buffers: buffers, heads: config.heads,
                             scale: attentionScale(layer: l), capture: captureCrossAttention)
        }

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
