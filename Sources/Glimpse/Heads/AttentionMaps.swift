import Foundation

/// Errors of the grounding heads and renderers, each naming what is at fault.
public enum HeadsError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// The captured attention does not have the size the layout implies.
    case attentionShape(String)
    /// A layer or head index outside the decoder.
    case indexOutOfRange(String)
    /// heads.json / heads.safetensors is missing, malformed or does not fit the model.
    case invalidHeads(file: String, key: String, detail: String)
    /// A mask or RLE whose sizes or counts do not add up.
    case invalidMask(String)

    public var description: String {
        switch self {
        case .attentionShape(let s): return "cross-attention: \(s)"
        case .indexOutOfRange(let s): return s
        case .invalidHeads(let file, let key, let detail): return "\(file): '\(key)': \(detail)"
        case .invalidMask(let s): return "mask: \(s)"
        }
    }
    public var errorDescription: String? { description }
}

/// Where the patch rows sit in the captured cross-attention: for every generated token the
/// decoder stores [layers][heads][encoderRows], of which `patchRows` are the grid×grid patches,
/// row-major (y, x) (the encoder's `patches`; other rows, such as ViT's CLS, are not mapped).
public struct AttentionLayout: Sendable, Equatable {
    public var layers: Int
    public var heads: Int
    public var encoderRows: Int
    public var patchRows: PatchRows

    public init(layers: Int, heads: Int, encoderRows: Int, patchRows: PatchRows) {
        precondition(patchRows.rows.upperBound <= encoderRows, "patch rows past the encoder's rows")
        self.layers = layers
        self.heads = heads
        self.encoderRows = encoderRows
        self.patchRows = patchRows
    }

    public var grid: Int { patchRows.grid }
    public var patches: Int { grid * grid }
    /// Index of the first patch row.
    var firstPatchRow: Int { patchRows.rows.lowerBound }
    /// Floats captured per generated token.
    public var floatsPerToken: Int { layers * heads * encoderRows }

    /// Resolves a layer index; negative indices count from the end as in Python (`-1` = last).
    public func resolveLayer(_ layer: Int) throws -> Int {
        let l = layer < 0 ? layers + layer : layer
        guard l >= 0 && l < layers else {
            throw HeadsError.indexOutOfRange("layer \(layer) is outside the decoder's \(layers) layers")
        }
        return l
    }
}

/// Per-token cross-attention maps over the patch grid of one generated sequence.
///
/// Every map here is over patches only (the other encoder rows are dropped) and renormalized
/// to sum 1, so maps of different layers, heads and words are comparable and a word's map is a
/// distribution over the grid, as the learned heads were trained on (tools/train_heads.py).
///
/// Token `i` of this type is generated token `i` (`sequence.generatedTokens`), and its map is the
/// attention of the decoder step that *produced* it — the query at the previous position, whose
/// next-token prediction is token `i` — which is what transformers' `generate(...).cross_attentions[i]`
/// holds and what the heads were trained on.
public struct AttentionMaps: Sendable {
    public let layout: AttentionLayout
    /// Layer used by `aggregate`: the last layer unless chosen otherwise. The last layer is the
    /// default because the default model's auxiliary grounding loss supervises it (tools/train.py)
    /// and, on published checkpoints, late layers localize objects best.
    public let defaultLayer: Int
    /// Full-sequence position of generated token 0 (= decoder start token + prompt length).
    public let firstTokenIndex: Int
    /// Token ids of the generated tokens.
    public let tokens: [Int]
    private let captured: [[Float]]

    /// - Parameters:
    ///   - sequence: a sequence generated with `captureAttention`.
    ///   - layer: layer of the aggregate map (negative counts from the end); nil means the last layer.
    public init(sequence: GeneratedSequence, layout: AttentionLayout, layer: Int? = nil) throws {
        let generated = Array(sequence.generatedTokens)
        guard sequence.crossAttention.count == generated.count else {
            throw HeadsError.attentionShape("\(sequence.crossAttention.count) captured maps for \(generated.count) generated tokens (was captureAttention on?)")
        }
        for (i, map) in sequence.crossAttention.enumerated() where map.count != layout.floatsPerToken {
            throw HeadsError.attentionShape("token \(i) holds \(map.count) floats; \(layout.layers) layers × \(layout.heads) heads × \(layout.encoderRows) rows = \(layout.floatsPerToken)")
        }
        self.layout = layout
        self.defaultLayer = try layout.resolveLayer(layer ?? -1)
        self.firstTokenIndex = sequence.promptLength
        self.tokens = generated
        self.captured = sequence.crossAttention
    }

    public var count: Int { tokens.count }

    /// Position of generated token `i` in the full sequence transformers returns (decoder start
    /// token and prompt included): the JSON `token_index`.
    public func sequenceIndex(ofToken i: Int) -> Int { firstTokenIndex + i }

    /// Mean over heads of `layer` (default: `defaultLayer`), patches only, renormalized; G×G row-major.
    public func aggregate(token i: Int, layer: Int? = nil) throws -> [Float] {
        let l = try layer.map(layout.resolveLayer) ?? defaultLayer
        try checkToken(i)
        var out = [Float](repeating: 0, count: layout.patches)
        let rows = layout.encoderRows, p = layout.patches
        captured[i].withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                for h in 0..<layout.heads {
                    let row = s + (l * layout.heads + h) * rows + layout.firstPatchRow
                    for k in 0..<p { d[k] += row[k] }
                }
            }
        }
        Self.normalize(&out)
        return out
    }

    /// One head's map of one layer, patches only, renormalized; G×G row-major.
    public func raw(token i: Int, layer: Int, head: Int) throws -> [Float] {
        let l = try layout.resolveLayer(layer)
        guard head >= 0 && head < layout.heads else {
            throw HeadsError.indexOutOfRange("head \(head) is outside the decoder's \(layout.heads) heads")
        }
        try checkToken(i)
        let start = (l * layout.heads + head) * layout.encoderRows + layout.firstPatchRow
        var out = Array(captured[i][start..<(start + layout.patches)])
        Self.normalize(&out)
        return out
    }

    /// Map of a group of tokens (a word): the mean of the tokens' maps, renormalized.
    /// With `head`, raw maps of (`layer`, `head`); otherwise aggregates of `layer`.
    public func map(tokens indices: [Int], layer: Int? = nil, head: Int? = nil) throws -> [Float] {
        var out = [Float](repeating: 0, count: layout.patches)
        for i in indices {
            let m = try head.map { try raw(token: i, layer: layer ?? defaultLayer, head: $0) } ?? aggregate(token: i, layer: layer)
            for k in 0..<out.count { out[k] += m[k] }
        }
        Self.normalize(&out)
        return out
    }

    private func checkToken(_ i: Int) throws {
        guard i >= 0 && i < tokens.count else {
            throw HeadsError.indexOutOfRange("token \(i) is outside the \(tokens.count) generated tokens")
        }
    }

    /// Scales to sum 1; an all-zero map stays zero (nothing to localize).
    static func normalize(_ v: inout [Float]) {
        var sum: Float = 0
        for x in v { sum += x }
        guard sum > 0, sum.isFinite else { return }
        let inv = 1 / sum
        for k in 0..<v.count { v[k] *= inv }
    }
}

/// A word of the caption: its text and the generated tokens that spell it.
public struct CaptionWord: Sendable, Equatable {
    /// The word as it appears in the caption, punctuation included ("circle,").
    public var text: String
    /// Indices into the generated tokens (`AttentionMaps` token indices).
    public var tokens: [Int]
    /// Full-sequence position (JSON `token_index`) of the word's first token.
    public var tokenIndex: Int

    public init(text: String, tokens: [Int], tokenIndex: Int) {
        self.text = text
        self.tokens = tokens
        self.tokenIndex = tokenIndex
    }

    /// Lower-cased text without surrounding punctuation: what stopword and object-word lists match.
    public var normalized: String {
        text.lowercased().trimmingCharacters(in: CharacterSet.alphanumerics.inverted)
    }
}

/// A word together with its attention map over the patch grid.
public struct WordMap: Sendable {
    public var word: CaptionWord
    /// G×G row-major, sums to 1 (or all zero).
    public var map: [Float]
    public var grid: Int

    public init(word: CaptionWord, map: [Float], grid: Int) {
        self.word = word
        self.map = map
        self.grid = grid
    }
}

public enum WordGrouping {
    /// Groups generated tokens into space-separated words.
    ///
    /// Byte-level BPE tokens carry their leading space ("Ġcircle"), and a word may take several
    /// tokens, so words are found on the decoded text: each prefix of the generated tokens is decoded
    /// and the new characters a token adds are attributed to it; a whitespace in them starts a new
    /// word. Tokens that add no text (EOS and other special tokens, skipped by `decode`) belong to
    /// no word, and a token adding only punctuation to a word is part of its text, not of its tokens. Decoding prefixes (rather than single tokens) keeps multi-byte characters split
    /// across tokens and the tokenizer's clean-up rules right.
    ///
    /// - Parameters:
    ///   - tokens: the generated token ids (`sequence.generatedTokens`).
    ///   - firstTokenIndex: full-sequence position of `tokens[0]` (`sequence.promptLength`).
    ///   - decode: the tokenizer's decode, skipping special tokens.
    public static func words(tokens: [Int], firstTokenIndex: Int, decode: ([Int]) -> String) -> [CaptionWord] {
        var words: [CaptionWord] = []
        var previous = ""
        var inWord = false          // the last character seen was part of a word
        for i in tokens.indices {
            let text = decode(Array(tokens[...i]))
            // Characters this token added; when clean-up rewrote earlier text, what differs from
            // the common prefix is attributed to this token.
            let common = text.commonPrefix(with: previous)
            let added = text.dropFirst(common.count)
            if common.count < previous.count {
                // Earlier text changed (e.g. " ," -> ","): re-sync the word state to the new text.
                inWord = common.last.map { !$0.isWhitespace } ?? false
            }
            previous = text
            for ch in added {
                if ch.isWhitespace { inWord = false; continue }
                if !inWord || words.isEmpty {
                    words.append(CaptionWord(text: "", tokens: [], tokenIndex: firstTokenIndex + i))
                    inWord = true
                }
                words[words.count - 1].text.append(ch)
                // A token adding only punctuation ("," after "star") joins the word's text but not its
                // map: the map is the attention that produced the word itself.
                let content = ch.isLetter || ch.isNumber || words[words.count - 1].tokens.isEmpty
                if content && words[words.count - 1].tokens.last != i { words[words.count - 1].tokens.append(i) }
            }
        }
        return words
    }

    /// Words with their maps (mean of their tokens' maps; see `AttentionMaps.map`).
    public static func wordMaps(_ maps: AttentionMaps, decode: ([Int]) -> String,
                                layer: Int? = nil, head: Int? = nil) throws -> [WordMap] {
        try words(tokens: maps.tokens, firstTokenIndex: maps.firstTokenIndex, decode: decode).map {
            WordMap(word: $0, map: try maps.map(tokens: $0.tokens, layer: layer, head: head), grid: maps.layout.grid)
        }
    }
}
