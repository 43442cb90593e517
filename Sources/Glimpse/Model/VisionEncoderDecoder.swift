import Foundation

/// Hugging Face `VisionEncoderDecoderModel` with a ViT encoder and a GPT-2 decoder: the one place
/// that maps this family's checkpoint names (`encoder.*`, `decoder.*`, `enc_to_dec_proj.*`) to layers.
public struct VisionEncoderDecoder: CaptionFamily {
    public init() {}
    public var name: String { "vision-encoder-decoder" }
    public var displayName: String { "VisionEncoderDecoder (ViT + GPT-2)" }

    public var decoderPrefix: String { "decoder." }

    public func recognizes(architectures: [String], modelType: String?) -> Bool {
        architectures.contains("VisionEncoderDecoderModel") || modelType == "vision-encoder-decoder"
    }

    public func load(config: JSONConfig, weights: WeightLoader) throws -> (ImageEncoder, TextDecoder) {
        guard let encoderConfig = try config.object("encoder"), let decoderConfig = try config.object("decoder") else {
            throw ModelError.invalidConfig(file: config.file, detail: "a VisionEncoderDecoder config needs 'encoder' and 'decoder' objects")
        }
        let encoderType = try encoderConfig.string("model_type") ?? "vit"
        let decoderType = try decoderConfig.string("model_type") ?? "gpt2"
        guard encoderType == "vit" else { throw ModelError.unsupportedArchitecture("with encoder model_type '\(encoderType)' (Glimpse runs 'vit')") }
        guard decoderType == "gpt2" else { throw ModelError.unsupportedArchitecture("with decoder model_type '\(decoderType)' (Glimpse runs 'gpt2')") }
        let vit = try ViTConfig(encoderConfig)
        let gpt2 = try GPT2Config(decoderConfig)
        let encoder = try ViTEncoder(config: vit, weights: weights.scoped("encoder"))
        var projection: Linear?
        if vit.hiddenSize != gpt2.width {
            if decoderConfig.has("cross_attention_hidden_size") {
                throw ModelError.unsupported("cross_attention_hidden_size in \(decoderConfig.file)")
            }
            projection = try Linear.linear(weights, "enc_to_dec_proj", in: vit.hiddenSize, out: gpt2.width)
        }
        let decoder = try GPT2Decoder(config: gpt2, weights: weights.scoped("decoder"), encoderProjection: projection)
        return (encoder, decoder)
    }

    /// transformers: decoder_input_ids = [decoder_start_token_id] + tokenizer(prompt, add_special_tokens=False)
    public func decoderPrompt(_ text: String?, tokenizer: any Tokenizer, parameters: GenerationParameters) -> [Int] {
        [parameters.decoderStartTokenId] + (text.map { tokenizer.encode($0) } ?? [])
    }

    /// generate(decoder_input_ids=ids) decodes from exactly those ids; without them from the start token.
    public func decoderPrompt(generateInputIds ids: [Int]?, parameters: GenerationParameters) throws -> [Int] {
        ids ?? [parameters.decoderStartTokenId]
    }

    /// VisionEncoderDecoderModel builds its ViT with add_pooling_layer=False, so a ViTModel
    /// checkpoint's pooler is never loaded; GPT-2's causal-mask buffers of older checkpoints.
    public func expectsUnused(_ name: String) -> Bool {
        name.hasPrefix("encoder.pooler.") || name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias")
    }
}
