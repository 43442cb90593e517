import Foundation

/// Grounding of one generated caption: words, their maps and detections, by the learned heads
/// when the model has them, else from the attention maps alone.
public enum Grounding {
    public enum Method: String, Sendable, CaseIterable {
        /// Learned heads when loaded, otherwise training-free.
        case auto
        /// The learned heads (an error without them).
        case learned
        /// Training-free: thresholded attention maps.
        case attention
    }

    /// Detections for the grounded words of `sequence`.
    /// - Parameters:
    ///   - decode: the tokenizer's decode with special tokens skipped (word grouping).
    ///   - encoderStates: E [sequenceLength, H] of the image (used by the learned heads).
    ///   - imageWidth, imageHeight: the original image's size (after EXIF orientation).
    ///   - image: its pixels, for heads that refine masks from them (version 2); nil: coarse masks.
    ///   - heads: the model's learned heads, if any; their object/attribute words also choose and
    ///     label the words of the training-free path.
    ///   - masks: false leaves `mask` out (detection only).
    public static func detections(sequence: GeneratedSequence, layout: AttentionLayout,
                                  decode: ([Int]) -> String, encoderStates: Tensor,
                                  imageWidth: Int, imageHeight: Int, image: RGBImage? = nil, heads: LearnedHeads?,
                                  method: Method = .auto, grounder: AttentionGrounder? = nil,
                                  masks: Bool = true) throws -> [Detection] {
        let attention = try AttentionMaps(sequence: sequence, layout: layout)
        let words = WordGrouping.words(tokens: attention.tokens, firstTokenIndex: attention.firstTokenIndex, decode: decode)
        var result: [Detection]
        switch (method, heads) {
        case (.learned, nil):
            throw HeadsError.invalidHeads(file: "heads.json", key: "", detail: "the model directory has no learned heads (heads.json + heads.safetensors)")
        case (.learned, let h?), (.auto, let h?):
            result = try h.detect(words: words, attention: attention, encoderStates: encoderStates,
                                  imageWidth: imageWidth, imageHeight: imageHeight, image: image)
        case (.attention, _), (.auto, nil):
            var g = grounder ?? AttentionGrounder()
            if grounder == nil, let h = heads { g.vocabulary = h.vocabulary() }
            let maps = try words.map { WordMap(word: $0, map: try attention.map(tokens: $0.tokens), grid: layout.grid) }
            result = g.ground(maps, imageWidth: imageWidth, imageHeight: imageHeight)
        }
        if !masks { for i in result.indices { result[i].mask = nil } }
        return result
    }
}

extension CaptionModel {
    /// Where the patches sit in this model's captured cross-attention.
    public var attentionLayout: AttentionLayout {
        AttentionLayout(layers: decoder.layerCount, heads: decoder.headCount,
                        encoderRows: encoder.sequenceLength, patchRows: encoder.patches)
    }

    /// The layout of `sequence`'s captured maps: an encoder that reads a prompt (Florence-2) gives
    /// rows past the image's, as many as the prompt had tokens; the patches stay where they are.
    public func attentionLayout(for sequence: GeneratedSequence) -> AttentionLayout {
        let perRow = decoder.layerCount * decoder.headCount
        guard let first = sequence.crossAttention.first, perRow > 0, first.count % perRow == 0,
              first.count / perRow >= encoder.sequenceLength else { return attentionLayout }
        return AttentionLayout(layers: decoder.layerCount, heads: decoder.headCount,
                               encoderRows: first.count / perRow, patchRows: encoder.patches)
    }

    /// Per-token maps of a sequence generated with `captureAttention`.
    public func attentionMaps(for sequence: GeneratedSequence, layer: Int? = nil) throws -> AttentionMaps {
        try AttentionMaps(sequence: sequence, layout: attentionLayout(for: sequence), layer: layer)
    }

    /// The caption's words with their maps: aggregates of `layer` (default: the last), or raw maps
    /// of (`layer`, `head`) when `head` is given.
    public func wordMaps(for sequence: GeneratedSequence, layer: Int? = nil, head: Int? = nil) throws -> [WordMap] {
        let maps = try attentionMaps(for: sequence)
        return try WordGrouping.wordMaps(maps, decode: { self.tokenizer.decode($0, skipSpecialTokens: true) },
                                         layer: layer, head: head)
    }

    /// The learned heads of this model's directory, nil when it has none.
    public func loadHeads() throws -> LearnedHeads? {
        try LearnedHeads.load(directory: directory, layout: attentionLayout, encoderHiddenSize: encoder.hiddenSize)
    }

    /// Detections for a generated sequence (see `Grounding.detections`).
    /// - Parameter encoderStates: the image's encoder states, a view [sequenceLength, hiddenSize].
    public func detections(for sequence: GeneratedSequence, encoderStates: Tensor, imageWidth: Int, imageHeight: Int,
                           image: RGBImage? = nil, heads: LearnedHeads?, method: Grounding.Method = .auto,
                           masks: Bool = true) throws -> [Detection] {
        try Grounding.detections(sequence: sequence, layout: attentionLayout(for: sequence),
                                 decode: { self.tokenizer.decode($0, skipSpecialTokens: true) },
                                 encoderStates: encoderStates, imageWidth: imageWidth, imageHeight: imageHeight,
                                 image: image, heads: heads, method: method, masks: masks)
    }
}
