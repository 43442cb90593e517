import Foundation

/// transformers' `early_stopping`: true stops when `beamWidth` hypotheses are finished; false (default)
/// and "never" use its heuristics on whether a running beam could still beat the finished ones.
public enum EarlyStopping: Equatable, Sendable {
    case heuristic      // early_stopping=False
    case stopWhenFull   // early_stopping=True
    case never          // early_stopping="never"
}

/// Decoding options with transformers' `generate` semantics. Defaults come from the checkpoint's
/// `generation_config.json` / `config.json` (see `GenerationParameters.init(modelDirectory:)`), flags override.
public struct GenerationParameters: Sendable, Equatable {
    public var beamWidth = 1                       // num_beams
    public var maxLength = 20                      // max_length (total, prompt included)
    public var maxNewTokens: Int?                  // max_new_tokens (wins over max_length)
    public var minLength = 0                       // min_length (total)
    public var minNewTokens = 0                    // min_new_tokens
    public var lengthPenalty: Float = 1            // length_penalty
    public var earlyStopping = EarlyStopping.heuristic
    public var noRepeatNgramSize = 0               // no_repeat_ngram_size
    public var repetitionPenalty: Float = 1        // repetition_penalty
    public var returnCount = 1                     // num_return_sequences
    public var badWordsIds: [[Int]] = []           // bad_words_ids
    public var decoderStartTokenId = 0             // decoder_start_token_id
    public var eosTokenIds: [Int] = []             // eos_token_id
    public var padTokenId: Int?                    // pad_token_id
    /// Keep each generated token's cross-attention maps (needed by grounding, heads and overlays).
    public var captureAttention = false

    public init() {}

    /// Reads `config.json` and, when present, `generation_config.json` (which wins), as transformers does.
    public init(modelDirectory dir: URL, config: JSONConfig) throws {
        self.init()
        let decoder = try config.object("decoder") ?? config.object("text_config")
        func apply(_ c: JSONConfig) throws {
            if let v = try c.int("num_beams") { beamWidth = v }
            if let v = try c.int("max_length") { maxLength = v }
            if let v = try c.int("max_new_tokens") { maxNewTokens = v }
            if let v = try c.int("min_length") { minLength = v }
            if let v = try c.int("min_new_tokens") { minNewTokens = v }
            if let v = try c.double("length_penalty") { lengthPenalty = Float(v) }
            if c.has("early_stopping") {
                if let s = c.values["early_stopping"] as? String, s == "never" { earlyStopping = .never }
                else { earlyStopping = try c.bool("early_stopping", default: false) ? .stopWhenFull : .heuristic }
            }
            if let v = try c.int("no_repeat_ngram_size") { noRepeatNgramSize = v }
            if let v = try c.double("repetition_penalty") { repetitionPenalty = Float(v) }
            if let v = try c.int("num_return_sequences") { returnCount = v }
            if let v = try c.intOrFirst("decoder_start_token_id") { decoderStartTokenId = v }
            if let v = try c.ints("eos_token_id") { eosTokenIds = v }
            if let v = try c.intOrFirst("pad_token_id") { padTokenId = v }
        }
        // transformers 5 reads generation defaults only from generation_config.json (created from the
        // model config's ids when missing); the token ids come from the config chain.
        if let decoder {
            if let v = try decoder.intOrFirst("decoder_start_token_id") ?? decoder.intOrFirst("bos_token_id") { decoderStartTokenId = v }
            if let v = try decoder.ints("eos_token_id") { eosTokenIds = v }
            if let v = try decoder.intOrFirst("pad_token_id") { padTokenId = v }
        }
        if let v = try config.intOrFirst("decoder_start_token_id") { decoderStartTokenId = v }
        if let v = try config.ints("eos_token_id") { eosTokenIds = v }
        if let v = try config.intOrFirst("pad_token_id") { padTokenId = v }
        let file = dir.appendingPathComponent("generation_config.json")
        if FileManager.default.fileExists(atPath: file.path) {
            try apply(try JSONConfig(contentsOf: file))
        }
    }

    /// max_length as transformers resolves it for a decoder prompt of `promptLength` tokens.
    public func resolvedMaxLength(promptLength: Int) -> Int {
        if let n = maxNewTokens { return promptLength + n }
        return maxLength
    }

    /// The id transformers' beam search fills shorter returned sequences with (`_beam_search`:
    /// `output_fill_value = pad_token_id or eos_token_id[0] if eos_token_id is not None else -1`):
    /// a pad id of 0 is falsy there and falls through to the first EOS (BLIP: pad 0, so [SEP]).
    public var outputFillTokenId: Int {
        guard let eos = eosTokenIds.first else { return -1 }
        if let pad = padTokenId, pad != 0 { return pad }
        return eos
    }

    /// Checks the combination before any work, with messages naming the option.
    public func validate() throws {
        guard beamWidth >= 1 else { throw ModelError.invalidInput("num_beams must be >= 1 (got \(beamWidth))") }
        guard returnCount >= 1 && returnCount <= beamWidth else {
            throw ModelError.invalidInput("num_return_sequences (\(returnCount)) must be between 1 and num_beams (\(beamWidth))")
        }
        guard repetitionPenalty > 0 else { throw ModelError.invalidInput("repetition_penalty must be > 0") }
        guard noRepeatNgramSize >= 0 else { throw ModelError.invalidInput("no_repeat_ngram_size must be >= 0") }
        if let n = maxNewTokens, n < 1 { throw ModelError.invalidInput("max_new_tokens must be >= 1") }
    }
}
