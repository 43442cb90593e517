import Foundation

/// One text-decoder layer with cross-attention, as every captioning decoder builds it: causal
/// self-attention over the state's KV cache, cross-attention over the image, an MLP, each a residual
/// branch with its LayerNorm. Where the norm sits is the family's choice: GPT-2 normalizes each
/// branch's input (`runPreNorm`), BERT (BLIP) and BART normalize after the residual add (`runPostNorm`).
/// The families build these from their own checkpoint names (see GPT2.swift, BLIP.swift).
struct DecoderBlock {
    /// Q | K | V projections writing column blocks of one [rows, 3E] buffer: a fused [E, 3E] layer
    /// (GPT-2's `c_attn`) or three [E, E] layers (BERT's query, key, value).
    let selfQKV: [Linear]
    let selfOutput: Linear       // [E, E]
    let selfNorm: LayerNorm      // before the branch (pre-LN) or after its residual add (post-LN)
    let crossQuery: Linear       // [E, E]
    /// K | V projections of the image states into the [encoderRows, 2E] cross cache: fused or two.
    let crossKeyValue: [Linear]
    let crossOutput: Linear      // [E, E]
    let crossNorm: LayerNorm
    let fc1: Linear              // [E, inner]
    let fc2: Linear              // [inner, E]
    let mlpNorm: LayerNorm
    let activation: Kernels.Activation

    /// K | V of one image's states [rows, encoderWidth] into `kv` [rows, 2E] (computed once per image
    /// and layer, shared by every beam).
    func crossKeysAndValues(_ states: UnsafePointer<Float>, rows: Int, width e: Int, into kv: UnsafeMutablePointer<Float>) {
        var column = 0
        for projection in crossKeyValue {
            projection(states, rows: rows, into: kv + column, outStride: 2 * e)
            column += projection.outFeatures
        }
    }

    private func selfProjections(_ x: UnsafePointer<Float>, rows: Int, width e: Int, into qkv: UnsafeMutablePointer<Float>) {
        var column = 0
        for projection in selfQKV {
            projection(x, rows: rows, into: qkv + column, outStride: 3 * e)
            column += projection.outFeatures
        }
    }

    /// Pre-LN (GPT-2): x = x + c_proj(attn(ln_1(x))); x = x + c_proj(cross(ln_cross_attn(x)));
    /// x = x + mlp(ln_2(x)). `b.hidden` holds x and is updated in place.
    func runPreNorm(layer l: Int, state: DecoderState, buffers b: DecoderState.StepBuffers,
                    heads: Int, scale: Float, capture: Bool) {
        let rows = state.scheduledRows, e = state.width, inner = fc1.outFeatures
        let h = b.hidden, normed = b.normed, qkv = b.qkv, context = b.context, mlp = b.mlp
        selfNorm(h, rows: rows, into: normed)
        selfProjections(normed, rows: rows, width: e, into: qkv)
        state.cachedSelfAttention(layer: l, qkv: qkv, heads: heads, scale: scale, scores: b.scores, into: context)
        selfOutput(context, rows: rows, into: normed)
        Kernels.add(h, normed, count: rows * e)

        crossNorm(h, rows: rows, into: normed)
        crossQuery(normed, rows: rows, into: qkv)
        state.cachedCrossAttention(layer: l, query: qkv, heads: heads, scale: scale, scores: b.scores, capture: capture, into: context)
        crossOutput(context, rows: rows, into: normed)
        Kernels.add(h, normed, count: rows * e)

        mlpNorm(h, rows: rows, into: normed)
        fc1(normed, rows: rows, into: mlp)
        Kernels.activate(mlp, count: rows * inner, activation)
        fc2(mlp, rows: rows, into: normed)
        Kernels.add(h, normed, count: rows * e)
    }

    /// Post-LN (BERT, BART): x = LayerNorm(dense(attn(x)) + x) for the self-attention, the
    /// cross-attention and the MLP in turn. `b.hidden` holds x and is updated in place.
    func runPostNorm(layer l: Int, state: DecoderState, buffers b: DecoderState.StepBuffers,
                     heads: Int, scale: Float, capture: Bool) {
        let rows = state.scheduledRows, e = state.width, inner = fc1.outFeatures
        let h = b.hidden, normed = b.normed, qkv = b.qkv, context = b.context, mlp = b.mlp
        // torch (BlipTextSelfOutput): LayerNorm(dense(context) + input_tensor)
        selfProjections(h, rows: rows, width: e, into: qkv)
        state.cachedSelfAttention(layer: l, qkv: qkv, heads: heads, scale: scale, scores: b.scores, into: context)
        selfOutput(context, rows: rows, into: normed)
        Kernels.add(normed, h, count: rows * e)
        selfNorm(normed, rows: rows, into: h)

        crossQuery(h, rows: rows, into: qkv)
        state.cachedCrossAttention(layer: l, query: qkv, heads: heads, scale: scale, scores: b.scores, capture: capture, into: context)
        crossOutput(context, rows: rows, into: normed)
        Kernels.add(normed, h, count: rows * e)
        crossNorm(normed, rows: rows, into: h)

        // torch (feed_forward_chunk): LayerNorm(output.dense(act(intermediate.dense(x))) + x)
        fc1(h, rows: rows, into: mlp)
        Kernels.activate(mlp, count: rows * inner, activation)
        fc2(mlp, rows: rows, into: normed)
        Kernels.add(normed, h, count: rows * e)
        mlpNorm(normed, rows: rows, into: h)
    }
}
