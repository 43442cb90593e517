import Foundation

// BLIP image captioning (transformers `BlipForConditionalGeneration`, 5.24): a ViT-style vision
// model (`vision_model.*`: fused qkv, pre-LN blocks, post_layernorm) and a BERT-style text decoder
// (`text_decoder.*`: post-LN blocks with causal self-attention, cross-attention over the image
// embeddings, GELU MLP, and an MLM prediction head tied to the word embeddings).
// Everything of the family is in this file: configs, encoder, decoder, prompt and generation rules.
// References: transformers/models/blip/{configuration_blip,modeling_blip,modeling_blip_text}.py.

// MARK: - Configs

/// transformers' `BlipVisionConfig` (`vision_config` in config.json; defaults as in transformers).
public struct BlipVisionConfig: Sendable {
    public var hiddenSize: Int            // hidden_size
    public var intermediateSize: Int      // intermediate_size
    public var layers: Int                // num_hidden_layers
    public var heads: Int                 // num_attention_heads
    public var imageSize: Int             // image_size (an int or a square [h, w])
    public var patchSize: Int             // patch_size (an int or a square [h, w])
    public var activation: Kernels.Activation  // hidden_act
    public var layerNormEps: Double       // layer_norm_eps
    /// BlipVisionEmbeddings hard-codes `in_channels=3`.
    public let channels = 3

    public init(_ c: JSONConfig) throws {
        hiddenSize = try c.int("hidden_size", default: 768, in: 1...16384)
        intermediateSize = try c.int("intermediate_size", default: 3072, in: 1...65536)
        layers = try c.int("num_hidden_layers", default: 12, in: 1...256)
        heads = try c.int("num_attention_heads", default: 12, in: 1...1024)
        imageSize = try Self.squareSide(c, "image_size", default: 384, in: 1...8192)
        patchSize = try Self.squareSide(c, "patch_size", default: 16, in: 1...1024)
        activation = try Kernels.Activation(name: try c.string("hidden_act") ?? "gelu")
        layerNormEps = try c.double("layer_norm_eps", default: 1e-5)
        guard hiddenSize % heads == 0 else {
            throw ModelError.invalidConfig(file: c.file, detail: "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads)")
        }
        guard imageSize % patchSize == 0 else {
            throw ModelError.invalidConfig(file: c.file, detail: "image_size \(imageSize) is not a multiple of patch_size \(patchSize)")
        }
    }

    /// An int, or a list [h, w] with h == w (transformers accepts both; Glimpse runs square inputs).
    static func squareSide(_ c: JSONConfig, _ key: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let sides = try c.ints(key) else { return value }
        guard let side = sides.first, sides.allSatisfy({ $0 == side }), sides.count <= 2 else {
            throw ModelError.invalidConfig(file: c.file, detail: "key '\(key)' = \(sides): only square sizes are supported")
        }
        guard range.contains(side) else {
            throw ModelError.invalidConfig(file: c.file, detail: "key '\(key)' = \(side) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return side
    }

    public var gridSize: Int { imageSize / patchSize }
    /// Sequence length: class embedding + patches.
    public var sequenceLength: Int { 1 + gridSize * gridSize }
}

/// transformers' `BlipTextConfig` (`text_config` in config.json; defaults as in transformers).
public struct BlipTextConfig: Sendable {
    public var vocabSize: Int             // vocab_size
    public var hiddenSize: Int            // hidden_size
    /// encoder_hidden_size: `BlipConfig.__post_init__` overwrites it with vision_config.hidden_size,
    /// so the value in text_config is ignored, as in transformers.
    public var encoderHiddenSize: Int
    public var intermediateSize: Int      // intermediate_size
    public var layers: Int                // num_hidden_layers
    public var heads: Int                 // num_attention_heads
    public var positions: Int             // max_position_embeddings
    public var activation: Kernels.Activation  // hidden_act
    public var layerNormEps: Double       // layer_norm_eps
    public var bosTokenId: Int            // bos_token_id  ([DEC], 30522): replaces the prompt's [CLS]
    public var eosTokenId: Int?           // eos_token_id  (2; only in the dropped default prompt [bos, eos])
    public var padTokenId: Int?           // pad_token_id  (0)
    public var sepTokenId: Int            // sep_token_id  ([SEP], 102): the EOS of generation
    public var tieWordEmbeddings: Bool    // tie_word_embeddings

    public init(_ c: JSONConfig, encoderHiddenSize: Int) throws {
        vocabSize = try c.int("vocab_size", default: 30524, in: 1...1_000_000)
        hiddenSize = try c.int("hidden_size", default: 768, in: 1...16384)
        self.encoderHiddenSize = encoderHiddenSize
        intermediateSize = try c.int("intermediate_size", default: 3072, in: 1...65536)
        layers = try c.int("num_hidden_layers", default: 12, in: 1...256)
        heads = try c.int("num_attention_heads", default: 8, in: 1...1024)
        positions = try c.int("max_position_embeddings", default: 512, in: 1...65536)
        activation = try Kernels.Activation(name: try c.string("hidden_act") ?? "gelu")
        layerNormEps = try c.double("layer_norm_eps", default: 1e-12)
        bosTokenId = try c.intOrFirst("bos_token_id") ?? 30522
        eosTokenId = c.has("eos_token_id") ? try c.intOrFirst("eos_token_id") : 2
        padTokenId = c.has("pad_token_id") ? try c.intOrFirst("pad_token_id") : 0
        sepTokenId = try c.intOrFirst("sep_token_id") ?? 102
        tieWordEmbeddings = try c.bool("tie_word_embeddings", default: true)
        guard hiddenSize % heads == 0 else {
            throw ModelError.invalidConfig(file: c.file, detail: "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads)")
        }
        guard try c.bool("is_decoder", default: true) else {
            throw ModelError.invalidConfig(file: c.file, detail: "is_decoder is false: the captioning decoder needs its cross-attention layers")
        }
        for (key, id) in [("bos_token_id", bosTokenId), ("sep_token_id", sepTokenId)] where id < 0 || id >= vocabSize {
            throw ModelError.invalidConfig(file: c.file, detail: "\(key) \(id) is outside the vocabulary (\(vocabSize))")
        }
    }
}

// MARK: - Vision model

/// BLIP's vision model (transformers `BlipVisionModel`), weights under `vision_model.`.
final class BlipVisionEncoder: ImageEncoder, @unchecked Sendable {
    let config: BlipVisionConfig
    let classEmbedding: Tensor           // embeddings.class_embedding                  [1, 1, D]
    let patchEmbedding: PatchEmbedding   // embeddings.patch_embedding.{weight [D, 3, P, P], bias [D]}
    let positionEmbedding: Tensor        // embeddings.position_embedding               [1, 1+G², D]
    let blocks: [PreNormEncoderBlock]  // encoder.layers.N.*
    let postLayerNorm: LayerNorm         // post_layernorm

    var imageSize: Int { config.imageSize }
    var channels: Int { config.channels }
    var hiddenSize: Int { config.hiddenSize }
    var sequenceLength: Int { config.sequenceLength }
    /// Class embedding first, then the patches.
    var patches: PatchRows { PatchRows(first: 1, grid: config.gridSize) }

    init(config: BlipVisionConfig, weights w: WeightLoader) throws {
        self.config = config
        let d = config.hiddenSize, eps = config.layerNormEps
        let emb = w.scoped("embeddings")
        classEmbedding = try emb.tensor("class_embedding", shape: [1, 1, d])
        patchEmbedding = try PatchEmbedding(emb, "patch_embedding", channels: config.channels,
                                            patchSize: config.patchSize, width: d)
        positionEmbedding = try emb.tensor("position_embedding", shape: [1, config.sequenceLength, d])
        blocks = try (0..<config.layers).map { i in
            let l = w.scoped("encoder.layers.\(i)")
            return PreNormEncoderBlock(
                layerNorm1: try LayerNorm(l, "layer_norm1", dim: d, eps: eps),
                qkv: [try Linear.linear(l, "self_attn.qkv", in: d, out: 3 * d)],   // fused [3D, D]: rows Q, K, V
                projection: try Linear.linear(l, "self_attn.projection", in: d, out: d),
                layerNorm2: try LayerNorm(l, "layer_norm2", dim: d, eps: eps),
                fc1: try Linear.linear(l, "mlp.fc1", in: d, out: config.intermediateSize),
                fc2: try Linear.linear(l, "mlp.fc2", in: config.intermediateSize, out: d))
        }
        postLayerNorm = try LayerNorm(w, "post_layernorm", dim: d, eps: eps)
    }

    /// Encodes `count` images' pixel values [count, 3, S, S] into `last_hidden_state` [count, 1+G², D].
    func encode(pixelValues: UnsafePointer<Float>, count: Int, prompt: [Int]) -> Tensor {
        precondition(prompt.isEmpty, "BLIP's vision model reads no prompt (the text decoder does)")
        let cfg = config, d = cfg.hiddenSize, n = cfg.sequenceLength, rows = count * n
        // torch: patch_embeds = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        //        embeddings = torch.cat([class_embeds, patch_embeds], dim=1) + self.position_embedding
        let hidden = patchEmbedding.sequences(pixelValues, count: count, imageSize: cfg.imageSize,
                                              classToken: classEmbedding, positions: positionEmbedding)
        let h = hidden.data

        // torch: hidden_states = self_attn(layer_norm1(x)) + x; hidden_states = mlp(layer_norm2(x)) + x
        PreNormEncoder.run(blocks, hidden: h, count: count, length: n, width: d, heads: cfg.heads,
                           inner: cfg.intermediateSize, activation: cfg.activation)
        // torch: last_hidden_state = self.post_layernorm(last_hidden_state)
        postLayerNorm(h, rows: rows, into: h)
        return hidden
    }
}

// MARK: - Text decoder

/// BLIP's BERT-style text decoder (transformers `BlipTextLMHeadModel`), weights under `text_decoder.`:
/// post-LN blocks (`DecoderBlock.runPostNorm`). Same caching and capture layout as `GPT2Decoder`:
/// self K/V per layer per beam in the state, cross K/V computed once per image ([encRows, 2E], K | V).
final class BlipTextDecoder: TextDecoder, @unchecked Sendable {
    let config: BlipTextConfig
    let wordEmbeddings: Tensor       // bert.embeddings.word_embeddings.weight      [V, E]
    let positionEmbeddings: Tensor   // bert.embeddings.position_embeddings.weight  [P, E]
    let embeddingNorm: LayerNorm     // bert.embeddings.LayerNorm
    let blocks: [DecoderBlock]       // bert.encoder.layer.N.*
    let transform: Linear            // cls.predictions.transform.dense             [E, E]
    let transformNorm: LayerNorm     // cls.predictions.transform.LayerNorm
    let decoderWeight: Tensor        // cls.predictions.decoder.weight [V, E], tied to word_embeddings when absent
    let decoderBias: Tensor          // cls.predictions.decoder.bias [V], tied to cls.predictions.bias when absent

    var vocabularySize: Int { config.vocabSize }
    var layerCount: Int { config.layers }
    var headCount: Int { config.heads }
    var maxPositions: Int { config.positions }
    var hiddenSize: Int { config.hiddenSize }
    /// Bytes of weights one decoding step reads: per layer self q/k/v/output, cross query/output
    /// (cross K/V are computed once per image), the MLP; then the head's transform and decoder.
    var stepWeightBytes: Int {
        let e = config.hiddenSize, perLayer = 4 * e * e + 2 * e * e + 2 * e * config.intermediateSize
        return 4 * (config.layers * perLayer + e * e + config.vocabSize * e)
    }

    /// `tieWordEmbeddings`: BlipConfig.tie_word_embeddings || text_config.tie_word_embeddings
    /// (transformers ties when either model level asks for it).
    init(config: BlipTextConfig, weights w: WeightLoader, tieWordEmbeddings: Bool) throws {
        self.config = config
        let e = config.hiddenSize, v = config.vocabSize, eps = config.layerNormEps
        let dv = config.encoderHiddenSize, inner = config.intermediateSize
        let bert = w.scoped("bert"), emb = bert.scoped("embeddings")
        let head = w.scoped("cls.predictions")
        // transformers 5 ties symmetrically at load time: whichever of a tied pair the checkpoint
        // holds serves both; when both are present (and differ) each keeps its own values.
        let storedDecoderWeight = try head.optionalTensor("decoder.weight", shape: [v, e])
        let storedWordEmbeddings = try emb.optionalTensor("word_embeddings.weight", shape: [v, e])
        let words: Tensor
        if let stored = storedWordEmbeddings {
            words = stored
        } else if tieWordEmbeddings, let stored = storedDecoderWeight {
            words = stored
        } else {
            words = try emb.tensor("word_embeddings.weight", shape: [v, e])   // throws: absent
        }
        wordEmbeddings = words
        if let stored = storedDecoderWeight {
            decoderWeight = stored
        } else if tieWordEmbeddings {
            decoderWeight = words
        } else {
            decoderWeight = try head.tensor("decoder.weight", shape: [v, e])   // throws: untied and absent
        }
        // The head's forward adds `decoder.bias`, which is tied to `cls.predictions.bias` (always, by
        // `_tied_weights_keys`, when tie_word_embeddings is on).
        if let bias = try head.optionalTensor("decoder.bias", shape: [v]) {
            decoderBias = bias
            _ = try head.optionalTensor("bias", shape: [v])   // read so it is not reported unused
        } else {
            decoderBias = try head.tensor("bias", shape: [v])
        }
        positionEmbeddings = try emb.tensor("position_embeddings.weight", shape: [config.positions, e])
        embeddingNorm = try LayerNorm(emb, "LayerNorm", dim: e, eps: eps)
        blocks = try (0..<config.layers).map { i in
            let l = bert.scoped("encoder.layer.\(i)")
            // nn.Linear weights are stored [out, in]; Dv = encoder_hidden_size (the image embeddings' width).
            return DecoderBlock(
                selfQKV: [try Linear.linear(l, "attention.self.query", in: e, out: e),               // [E, E]
                          try Linear.linear(l, "attention.self.key", in: e, out: e),                 // [E, E]
                          try Linear.linear(l, "attention.self.value", in: e, out: e)],              // [E, E]
                selfOutput: try Linear.linear(l, "attention.output.dense", in: e, out: e),           // [E, E]
                selfNorm: try LayerNorm(l, "attention.output.LayerNorm", dim: e, eps: eps),
                crossQuery: try Linear.linear(l, "crossattention.self.query", in: e, out: e),        // [E, E]
                crossKeyValue: [try Linear.linear(l, "crossattention.self.key", in: dv, out: e),     // [E, Dv]
                                try Linear.linear(l, "crossattention.self.value", in: dv, out: e)],  // [E, Dv]
                crossOutput: try Linear.linear(l, "crossattention.output.dense", in: e, out: e),     // [E, E]
                crossNorm: try LayerNorm(l, "crossattention.output.LayerNorm", dim: e, eps: eps),
                fc1: try Linear.linear(l, "intermediate.dense", in: e, out: inner),                  // [I, E]
                fc2: try Linear.linear(l, "output.dense", in: inner, out: e),                        // [E, I]
                mlpNorm: try LayerNorm(l, "output.LayerNorm", dim: e, eps: eps),
                activation: config.activation)
        }
        transform = try Linear.linear(head, "transform.dense", in: e, out: e)
        transformNorm = try LayerNorm(head, "transform.LayerNorm", dim: e, eps: eps)
    }

    /// `states`: the vision model's last_hidden_state for one image, [rows, encoder_hidden_size].
    func setEncoderStates(_ states: UnsafePointer<Float>, rows: Int, state: DecoderState, slot: Int) {
        let e = config.hiddenSize
        for (l, block) in blocks.enumerated() {
            // torch (crossattention.self): key_layer = self.key(encoder_hidden_states); value_layer = self.value(...)
            block.crossKeysAndValues(states, rows: rows, width: e, into: state.crossKeyValue(layer: l, slot: slot).reserve(rows * 2 * e))
        }
        state.encoderRows = rows
        state.reset(slot: slot)
    }

    func logits(state: DecoderState, allPositions: Bool, captureCrossAttention: Bool) -> UnsafeMutablePointer<Float> {
        let e = config.hiddenSize, heads = config.heads
        let rows = state.scheduledRows
        // torch: attention_scores / math.sqrt(self.attention_head_size)
        let scale = 1 / Float(e / heads).squareRoot()
        let buffers = state.prepareStep(layers: config.layers, heads: heads, inner: config.intermediateSize,
                                        capture: captureCrossAttention)
        let h = buffers.hidden, normed = buffers.normed, context = buffers.context

        // torch (BlipTextEmbeddings): position_ids = arange(cache_length, cache_length + seq_length)
        //        embeddings = LayerNorm(word_embeddings(input_ids) + position_embeddings(position_ids))
        state.embed(tokenTable: wordEmbeddings, positionTable: positionEmbeddings, into: h)
        embeddingNorm(h, rows: rows, into: h)
        for (l, block) in blocks.enumerated() {
            block.runPostNorm(layer: l, state: state, buffers: buffers, heads: heads, scale: scale, capture: captureCrossAttention)
        }

        // torch (cls.predictions): decoder(LayerNorm(act(transform.dense(x)))) — only the rows generation needs.
        let outRows = state.gatherOutputRows(h, into: context, allPositions: allPositions)
        transform(context, rows: outRows, into: normed)
        Kernels.activate(normed, count: outRows * e, config.activation)
        transformNorm(normed, rows: outRows, into: normed)
        let logits = state.logits.reserve(outRows * config.vocabSize)
        Kernels.broadcastRows(decoderBias.data, rows: outRows, cols: config.vocabSize, into: logits)
        BLAS.gemm(m: outRows, n: config.vocabSize, k: e, a: normed, lda: e,
                  b: decoderWeight.data, ldb: e, transposeB: true, c: logits, ldc: config.vocabSize, beta: 1)
        return logits
    }
}

// MARK: - Family facade

/// The BLIP family: the one place that maps `BlipForConditionalGeneration` checkpoints
/// (`vision_model.*`, `text_decoder.*`) to layers, and encodes its prompt and generation rules.
public struct BLIP: CaptionFamily {
    public init() {}
    public var name: String { "blip" }
    public var displayName: String { "BLIP (BlipForConditionalGeneration)" }

    public var decoderPrefix: String { "text_decoder." }

    public func recognizes(architectures: [String], modelType: String?) -> Bool {
        architectures.contains("BlipForConditionalGeneration") || modelType == "blip"
    }

    /// Loads the vision model and text decoder from a `BlipConfig` config.json and its weights.
    public func load(config: JSONConfig, weights: WeightLoader) throws -> (ImageEncoder, TextDecoder) {
        let (vision, text) = try Self.configs(config)
        // BlipForConditionalGeneration and BlipTextLMHeadModel both declare the tie; either config enables it.
        let tie = try config.bool("tie_word_embeddings", default: true) || text.tieWordEmbeddings
        let encoder = try BlipVisionEncoder(config: vision, weights: weights.scoped("vision_model"))
        let decoder = try BlipTextDecoder(config: text, weights: weights.scoped("text_decoder"), tieWordEmbeddings: tie)
        return (encoder, decoder)
    }

    /// BERT's position_ids buffer, saved by older transformers.
    public func expectsUnused(_ name: String) -> Bool { name.hasSuffix(".position_ids") }

    /// The vision and text configs of a `BlipConfig` (absent sub-configs take transformers' defaults;
    /// text_config.encoder_hidden_size is set to vision_config.hidden_size, as BlipConfig.__post_init__ does).
    public static func configs(_ config: JSONConfig) throws -> (BlipVisionConfig, BlipTextConfig) {
        let visionJSON = try config.object("vision_config") ?? JSONConfig(values: [:], file: "\(config.file) [vision_config]")
        let textJSON = try config.object("text_config") ?? JSONConfig(values: [:], file: "\(config.file) [text_config]")
        let vision = try BlipVisionConfig(visionJSON)
        let text = try BlipTextConfig(textJSON, encoderHiddenSize: vision.hiddenSize)
        return (vision, text)
    }

    /// The token ids `BlipForConditionalGeneration.generate` passes to `text_decoder.generate`
    /// (transformers 5.24, modeling_blip.py):
    ///
    ///     if input_ids is None: input_ids = [[bos_token_id, eos_token_id]]
    ///     input_ids[:, 0] = bos_token_id
    ///     text_decoder.generate(input_ids=input_ids[:, :-1], eos_token_id=sep_token_id, pad_token_id=pad_token_id)
    ///
    /// `ids` is what the processor feeds it: `tokenizer(prompt)` *with* special tokens,
    /// i.e. [CLS] w1 … wn [SEP]. Its first id is replaced by bos ([DEC], the decoder start token of
    /// `generationDefaults`) and its last id dropped whatever they are, exactly as transformers does.
    /// nil (no prompt) gives [bos].
    public func decoderPrompt(generateInputIds ids: [Int]?, parameters: GenerationParameters) throws -> [Int] {
        let bos = parameters.decoderStartTokenId
        guard let ids else { return [bos] }
        // One id would leave transformers an empty input_ids (it does not run); BertTokenizer gives >= 2.
        guard ids.count >= 2 else { throw ModelError.invalidInput("a tokenized BLIP prompt needs [CLS] … [SEP] (got \(ids))") }
        return [bos] + ids.dropFirst().dropLast()
    }

    /// The same rule for a prompt encoded *without* special tokens (`tokenizer.encode(text)` in Glimpse,
    /// `add_special_tokens=False`): BertTokenizer adds exactly one [CLS] before and one [SEP] after,
    /// which generate replaces and drops, so the decoder input is [bos] + ids. nil gives [bos].
    public func decoderPrompt(_ text: String?, tokenizer: any Tokenizer, parameters: GenerationParameters) -> [Int] {
        [parameters.decoderStartTokenId] + (text.map { tokenizer.encode($0) } ?? [])
    }

    /// Generation defaults as transformers 5.24 applies them to BLIP. `BlipForConditionalGeneration.generate`
    /// calls `self.text_decoder.generate(...)`, whose generation config is built from text_config alone,
    /// which carries no generation settings (verified: keys such as max_length / num_beams in text_config
    /// are dropped), so the checkpoint's generation_config.json and config.json generation keys are
    /// **ignored**. What remains:
    /// - every option at transformers' GenerationConfig default (greedy, length_penalty 1, ...);
    /// - max_length unset, so "by default generate 20 new tokens": max_length = prompt length + 20
    ///   (capped at max_position_embeddings, which `Generator` does with `maxPositions`);
    /// - eos = text_config.sep_token_id ([SEP]) and pad = text_config.pad_token_id, passed explicitly;
    /// - the decoder prompt starts with text_config.bos_token_id ([DEC]) (see `decoderPrompt`).
    /// Options the user passes to generate (CLI flags) override these, as generate kwargs do.
    /// `captureAttention` is kept from `checkpoint` (it is Glimpse's, not a transformers option).
    public func generationDefaults(_ checkpoint: GenerationParameters, config: JSONConfig) throws -> GenerationParameters {
        let (_, text) = try Self.configs(config)
        var p = GenerationParameters()
        p.maxNewTokens = 20
        p.decoderStartTokenId = text.bosTokenId
        p.eosTokenIds = [text.sepTokenId]
        p.padTokenId = text.padTokenId
        p.captureAttention = checkpoint.captureAttention
        return p
    }
}
