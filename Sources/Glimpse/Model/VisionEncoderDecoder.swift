import Foundation

/// What captioning needs from an image encoder of any family.
public protocol ImageEncoder: AnyObject, Sendable {
    /// Input side (pixels) of the square image the encoder expects.
    var imageSize: Int { get }
    /// Channels of the pixel values the patch embedding reads (num_channels).
    var channels: Int { get }
    /// Patch grid side G: the encoder output holds `patchOffset` special rows, then G×G patches.
    var gridSize: Int { get }
    var patchOffset: Int { get }
    var hiddenSize: Int { get }
    var sequenceLength: Int { get }
    /// Encodes `count` images' pixel values [count, 3, S, S] into hidden states [count, sequenceLength, hiddenSize].
    func encode(pixelValues: UnsafePointer<Float>, count: Int) -> Tensor
}

extension ViTEncoder: ImageEncoder {
    var imageSize: Int { config.imageSize }
    var channels: Int { config.channels }
    var gridSize: Int { config.gridSize }
    var patchOffset: Int { 1 }
    var hiddenSize: Int { config.hiddenSize }
    var sequenceLength: Int { config.sequenceLength }
    func encode(pixelValues: UnsafePointer<Float>, count: Int) -> Tensor { self(pixelValues: pixelValues, count: count) }
}

/// Hugging Face `VisionEncoderDecoderModel` with a ViT encoder and a GPT-2 decoder: the one place
/// that maps this family's checkpoint names (`encoder.*`, `decoder.*`, `enc_to_dec_proj.*`) to layers.
enum VisionEncoderDecoder {
    static func load(config: JSONConfig, weights: WeightLoader) throws -> (ImageEncoder, TextDecoder) {
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
}
