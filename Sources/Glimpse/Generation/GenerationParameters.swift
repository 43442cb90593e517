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
    public var forcedBosTokenId: Int?              // forced_bos_token_id
    public var forcedEosTokenIds: [Int] = []       // forced_eos_token_id
    /// Keep each generated token's cross-attention maps (needed by grounding, heads and overlays).
    public var captureAttention = false

    public init() {}

    /// Upper bounds on every size an option or config can ask for, far above any real use, so no
    /// arithmetic on them can overflow and no allocation is attempted from a typo or a hostile file.
    /// (Memory is budgeted separately against the model: `CaptionModel.checkResources`.)
    public static let maxBeams = 1024
    public static let maxTokens = 32768

    /// Reads `config.json` and, when present, `generation_config.json` (which wins), as transformers does.
    /// The file's options Glimpse does not implement are ignored here; `notImplemented(in:)` names them.
    public init(modelDirectory dir: URL, config: JSONConfig) throws {
        self.init()
        // transformers 5 reads generation defaults only from generation_config.json (created from the
        // model config's ids when missing); the token ids come from the config chain.
        if let decoder = try config.object("decoder") ?? config.object("text_config") {
            if let v = try decoder.intOrFirst("decoder_start_token_id") ?? decoder.intOrFirst("bos_token_id") { decoderStartTokenId = v }
            if let v = try decoder.ints("eos_token_id") { eosTokenIds = v }
            if let v = try decoder.intOrFirst("pad_token_id") { padTokenId = v }
        }
        if let v = try config.intOrFirst("decoder_start_token_id") { decoderStartTokenId = v }
        if let v = try config.ints("eos_token_id") { eosTokenIds = v }
        if let v = try config.intOrFirst("pad_token_id") { padTokenId = v }
        let file = dir.appendingPathComponent("generation_config.json")
        if FileManager.default.fileExists(atPath: file.path) {
            _ = try set(transformersOptions: try JSONConfig(contentsOf: file))
            // transformers' GenerationConfig.validate raises for this combination when the file loads.
            do { try validate() } catch { throw ModelError.invalidConfig(file: file.path, detail: "\(error)") }
        }
    }

    /// The options of `model`'s generation_config.json that Glimpse does not implement (sampling, say):
    /// the CLI notes them; decoding goes on without them.
    public static func notImplemented(inModelDirectory dir: URL) -> [String] {
        let file = dir.appendingPathComponent("generation_config.json")
        guard let c = try? JSONConfig(contentsOf: file) else { return [] }
        var scratch = GenerationParameters()
        return (try? scratch.set(transformersOptions: c)) ?? []
    }

    /// Sets the options `options` names by transformers' `generate` / `GenerationConfig` names
    /// (num_beams, max_new_tokens, early_stopping, ...): the one reader of those names, used for
    /// generation_config.json, the parity fixtures' generate kwargs and the CLI flags. Each value is
    /// checked (type, range) with an error naming `options.file` and the key. Returns the keys present
    /// that Glimpse does not implement, sorted; what to do with them is the caller's rule (tests
    /// fail, the CLI notes them). Metadata and options without effect on greedy and beam search
    /// (`ignoredOptionNames`) are neither set nor returned.
    public mutating func set(transformersOptions c: JSONConfig) throws -> [String] {
        let beams = 1...Self.maxBeams, tokens = 0...Self.maxTokens
        var unknown: [String] = []
        for key in c.values.keys.sorted() where c.has(key) {
            switch key {
            case "num_beams": beamWidth = try c.int(key, in: beams)
            case "max_length": maxLength = try c.int(key, in: 1...Self.maxTokens)
            case "max_new_tokens": maxNewTokens = try c.int(key, in: 1...Self.maxTokens)
            case "min_length": minLength = try c.int(key, in: tokens)
            case "min_new_tokens": minNewTokens = try c.int(key, in: tokens)
            case "length_penalty":
                guard let v = try c.double(key), v.isFinite else { throw ModelError.invalidConfig(file: c.file, detail: "key 'length_penalty' is not finite") }
                lengthPenalty = Float(v)
            case "early_stopping":
                if let s = c.values[key] as? String, s == "never" { earlyStopping = .never }
                else { earlyStopping = try c.bool(key, default: false) ? .stopWhenFull : .heuristic }
            case "no_repeat_ngram_size": noRepeatNgramSize = try c.int(key, in: tokens)
            case "repetition_penalty":
                let v = try c.double(key) ?? .nan
                guard v.isFinite && v > 0 else {
                    throw ModelError.invalidConfig(file: c.file, detail: "key 'repetition_penalty' = \(v) must be a finite number > 0")
                }
                repetitionPenalty = Float(v)
            case "num_return_sequences": returnCount = try c.int(key, in: beams)
            case "decoder_start_token_id": if let v = try c.intOrFirst(key) { decoderStartTokenId = v }
            case "eos_token_id": if let v = try c.ints(key) { eosTokenIds = v }
            case "pad_token_id": if let v = try c.intOrFirst(key) { padTokenId = v }
            case "forced_bos_token_id": forcedBosTokenId = try c.intOrFirst(key)
            case "forced_eos_token_id": forcedEosTokenIds = try c.ints(key) ?? []
            // Greedy and beam search are what Glimpse runs; sampling is not implemented.
            case "do_sample": if try c.bool(key, default: false) { unknown.append(key) }
            default: if !Self.ignoredOptionNames.contains(key) { unknown.append(key) }
            }
        }
        return unknown
    }

    /// Keys that do not change what greedy or beam search returns: metadata, ids generate does not
    /// decode with, output switches, and sampling parameters (transformers ignores them without do_sample).
    public static let ignoredOptionNames: Set<String> = [
        "transformers_version", "_from_model_config", "bos_token_id", "sep_token_id", "use_cache",
        "return_dict_in_generate", "output_scores", "output_logits", "output_attentions", "output_hidden_states",
        "temperature", "top_k", "top_p", "typical_p", "min_p", "epsilon_cutoff", "eta_cutoff",
    ]

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

    /// Checks the combination before any work, with messages naming the option; the checks
    /// transformers' `GenerationConfig.validate` / `generate` make raise here too, and every size is bounded.
    public func validate() throws {
        func fail(_ what: String) -> ModelError { .invalidInput(what) }
        guard (1...Self.maxBeams).contains(beamWidth) else {
            throw fail("num_beams must be between 1 and \(Self.maxBeams) (got \(beamWidth))")
        }
        guard returnCount >= 1 else { throw fail("num_return_sequences must be >= 1 (got \(returnCount))") }
        if beamWidth == 1 && returnCount > 1 {
            throw fail("greedy search (num_beams 1) returns one sequence; num_return_sequences \(returnCount) needs num_beams >= \(returnCount)")
        }
        guard returnCount <= beamWidth else {
            throw fail("num_return_sequences (\(returnCount)) has to be smaller or equal to num_beams (\(beamWidth))")
        }
        guard (1...Self.maxTokens).contains(maxLength) else { throw fail("max_length must be between 1 and \(Self.maxTokens) (got \(maxLength))") }
        if let n = maxNewTokens, !(1...Self.maxTokens).contains(n) {
            throw fail("max_new_tokens must be between 1 and \(Self.maxTokens) (got \(n))")
        }
        guard (0...Self.maxTokens).contains(minLength) else { throw fail("min_length must be between 0 and \(Self.maxTokens) (got \(minLength))") }
        guard (0...Self.maxTokens).contains(minNewTokens) else {
            throw fail("min_new_tokens must be between 0 and \(Self.maxTokens) (got \(minNewTokens))")
        }
        guard (0...Self.maxTokens).contains(noRepeatNgramSize) else {
            throw fail("no_repeat_ngram_size must be between 0 and \(Self.maxTokens) (got \(noRepeatNgramSize))")
        }
        // NaN would make every beam score NaN (beam search then keeps none); inf the same.
        guard lengthPenalty.isFinite else { throw fail("length_penalty must be a finite number (got \(lengthPenalty))") }
        guard repetitionPenalty.isFinite && repetitionPenalty > 0 else {
            throw fail("repetition_penalty must be a finite number > 0 (got \(repetitionPenalty))")
        }
    }
}

/// The generation options a caller may set over a checkpoint's defaults (the CLI's flags, the HTTP
/// service's query parameters); unset ones keep the defaults. One place, so every front end
/// widens, parses and validates them alike.
public struct GenerationOverrides: Sendable {
    public var beams: Int?
    public var maxTokens: Int?
    public var minTokens: Int?
    public var lengthPenalty: Float?
    public var noRepeatNgram: Int?
    public var repetitionPenalty: Float?
    public var nBest: Int?
    /// `true`, `false` or `never` (early_stopping).
    public var earlyStopping: String?

    public init() {}

    /// Why an override was refused: the option's name (as the caller spells it is up to the caller) and the message.
    public struct Invalid: Error, CustomStringConvertible {
        public var option: String
        public var message: String
        public var description: String { message }
    }

    /// `defaults` with these overrides, read by their transformers names through
    /// `GenerationParameters.set(transformersOptions:)` like generation_config.json, then validated
    /// (messages name the option as transformers does).
    public func applied(to defaults: GenerationParameters) throws -> GenerationParameters {
        var options: [String: Any] = [:]
        if let beams { options["num_beams"] = beams }
        if let maxTokens { options["max_new_tokens"] = maxTokens }
        if let minTokens { options["min_new_tokens"] = minTokens }
        if let lengthPenalty { options["length_penalty"] = Double(lengthPenalty) }
        if let noRepeatNgram { options["no_repeat_ngram_size"] = noRepeatNgram }
        if let repetitionPenalty { options["repetition_penalty"] = Double(repetitionPenalty) }
        if let nBest {
            options["num_return_sequences"] = nBest
            // A convenience: n-best alone widens the beam. With explicit beams (or a checkpoint
            // default) that is too narrow, validate() refuses it as transformers does; nothing is clamped.
            if beams == nil && defaults.beamWidth < nBest && nBest <= GenerationParameters.maxBeams { options["num_beams"] = nBest }
        }
        switch earlyStopping?.lowercased() {
        case nil: break
        case "true": options["early_stopping"] = true
        case "false": options["early_stopping"] = false
        case "never": options["early_stopping"] = "never"
        case let other?:
            throw Invalid(option: "early_stopping", message: "early-stopping must be true, false or never (got '\(other)')")
        }
        var p = defaults
        // Every key above is implemented: nothing can come back unimplemented.
        _ = try p.set(transformersOptions: JSONConfig(values: options, file: "generation options"))
        try p.validate()
        return p
    }
}
