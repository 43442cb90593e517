import Foundation

/// BERT's WordPiece, equal to transformers' `BertTokenizer` (5.x) / `BertTokenizerFast`, as BLIP uses it.
///
/// Pipeline: split out added tokens, normalize (clean text, space around CJK ideographs,
/// NFD accent stripping, lower-casing), split on whitespace and punctuation, then greedy
/// longest-match-first WordPiece with `##` continuations. Decoding joins tokens with spaces,
/// glues `##` pieces and cleans up spaces before punctuation.
public final class WordPieceTokenizer: Tokenizer, @unchecked Sendable {
    public var specialTokens: SpecialTokens { added.special }
    public var vocabularySize: Int { added.vocabularySize }

    /// BertNormalizer options.
    struct Normalization: Sendable {
        var cleanText = true
        var handleChineseChars = true
        var stripAccents = true
        var lowercase = true
    }

    private let vocab: [ExactString: Int]
    private let idToToken: [Int: String]
    private let added: AddedVocabulary
    private let unkID: Int
    private let prefix: String
    private let maxInputCharsPerWord: Int
    private let decoderCleanup: Bool
    private let cleanUp: Bool

    /// Loads `vocab.txt` (one token per line, id = line number) with the optional config files beside it.
    public convenience init(vocabularyFile: URL) throws {
        let data = try readFile(vocabularyFile)
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokenizerError.invalidValue(file: vocabularyFile.path, key: "(file)", reason: "not valid UTF-8")
        }
        // One token per line with trailing whitespace (and "\r") trimmed, as transformers 5 reads it;
        // empty lines are tokens too.
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            var end = line.endIndex
            while end > line.startIndex, UnicodeClasses.isWhitespace(line[line.index(before: end)]) {
                end = line.index(before: end)
            }
            return String(String.UnicodeScalarView(line[line.startIndex..<end]))
        }
        if text.unicodeScalars.last == "\n" || text.isEmpty { lines.removeLast() }
        var vocab: [ExactString: Int] = [:]
        vocab.reserveCapacity(lines.count)
        for (index, token) in lines.enumerated() { vocab[ExactString(token)] = index }
        let settings = try TokenizerSettings.load(directory: vocabularyFile.deletingLastPathComponent(),
                                                  tokenizerJSON: nil, tokenizerJSONFile: "")
        try self.init(vocab: vocab, settings: settings, tokenizerJSON: nil, file: vocabularyFile.path)
    }

    /// Loads a `tokenizer.json` whose model is WordPiece, with the optional config files beside it.
    public convenience init(tokenizerFile: URL) throws {
        try self.init(tokenizerJSON: try readJSON(tokenizerFile), file: tokenizerFile)
    }

    /// Builds from an already parsed `tokenizer.json` (the loader reads it once).
    convenience init(tokenizerJSON json: JSONValue, file tokenizerFile: URL) throws {
        let file = tokenizerFile.path
        let model = try tokenizerModel(json, type: "WordPiece", file: file)
        guard let vocabValue = model["vocab"] else {
            throw TokenizerError.invalidValue(file: file, key: "model.vocab", reason: "missing")
        }
        let vocab = try BytePairTokenizer.parseVocab(vocabValue, file: file, key: "model.vocab")
        let settings = try TokenizerSettings.load(directory: tokenizerFile.deletingLastPathComponent(),
                                                  tokenizerJSON: json, tokenizerJSONFile: file)
        try self.init(vocab: vocab, settings: settings, tokenizerJSON: json, file: file)
    }

    private init(vocab: [ExactString: Int], settings: TokenizerSettings, tokenizerJSON json: JSONValue?, file: String) throws {
        self.vocab = vocab
        let config = settings.config
        let model = json?["model"]
        let normalizer = json?["normalizer"]
        if let normalizer, !normalizer.isNull {
            let types = BytePairTokenizer.componentTypes(normalizer)
            guard types == ["BertNormalizer"] else {
                throw TokenizerError.unsupportedTokenizer(file: file, reason: "normalizer \(types) is not BertNormalizer")
            }
        }
        if let pre = json?["pre_tokenizer"], !pre.isNull {
            let types = BytePairTokenizer.componentTypes(pre)
            guard types == ["BertPreTokenizer"] else {
                throw TokenizerError.unsupportedTokenizer(file: file, reason: "pre_tokenizer \(types) is not BertPreTokenizer")
            }
        }
        // transformers 5 rebuilds BERT's normalizer from tokenizer_config.json; tokenizer.json's
        // own BertNormalizer is the fallback.
        var norm = Normalization()
        norm.lowercase = config?["do_lower_case"]?.bool ?? normalizer?["lowercase"]?.bool ?? true
        norm.handleChineseChars = config?["tokenize_chinese_chars"]?.bool
            ?? normalizer?["handle_chinese_chars"]?.bool ?? true
        norm.cleanText = normalizer?["clean_text"]?.bool ?? true
        if let strip = config?["strip_accents"], !strip.isNull {
            norm.stripAccents = strip.bool ?? norm.lowercase
        } else if config?["do_lower_case"] == nil, let strip = normalizer?["strip_accents"]?.bool {
            norm.stripAccents = strip
        } else {
            norm.stripAccents = norm.lowercase
        }

        // BertTokenizer's defaults; a generic PreTrainedTokenizerFast has none but tokenizer.json's unk.
        var defaults = ["unk": "[UNK]", "sep": "[SEP]", "pad": "[PAD]", "cls": "[CLS]", "mask": "[MASK]"]
        if TokenizerLoader.genericClasses.contains(settings.tokenizerClass ?? "") { defaults = [:] }
        if let modelUnk = model?["unk_token"]?.string { defaults["unk"] = modelUnk }
        let unkToken = settings.named["unk"] ?? defaults["unk"] ?? "[UNK]"
        guard let unk = vocab[ExactString(unkToken)] else {
            throw TokenizerError.unknownToken(file: file, key: "unk_token", token: unkToken)
        }
        unkID = unk
        prefix = model?["continuing_subword_prefix"]?.string ?? "##"
        maxInputCharsPerWord = model?["max_input_chars_per_word"]?.int ?? 100
        decoderCleanup = json?["decoder"]?["cleanup"]?.bool ?? true

        var idToToken: [Int: String] = [:]
        for (token, id) in vocab { idToToken[id] = token.string }
        self.idToToken = idToToken
        let options = norm
        added = AddedVocabulary(settings: settings, vocab: vocab, defaults: defaults,
                                normalizer: { Self.normalize($0, options) })
        cleanUp = settings.cleanUpTokenizationSpaces
    }

    // MARK: Tokenizer

    public func tokenID(_ token: String) -> Int? {
        added.id(token) ?? vocab[ExactString(token)]
    }

    public func encode(_ text: String) -> [Int] {
        added.encode(text) { normalized, range, ids in
            preTokenize(normalized, range) { word in wordPiece(normalized[word], into: &ids) }
        }
    }

    /// BertNormalizer: clean text, space around CJK, NFD + drop Mn when stripping accents, lower-case.
    static func normalize(_ input: [Unicode.Scalar], _ options: Normalization) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(input.count)
        for s in input {
            if options.cleanText {
                if UnicodeClasses.isBertControl(s) { continue }
                if UnicodeClasses.isWhitespace(s) { out.append(" "); continue }
            }
            if options.handleChineseChars, UnicodeClasses.isCJK(s) {
                out.append(" "); out.append(s); out.append(" ")
            } else {
                out.append(s)
            }
        }
        if options.stripAccents, out.contains(where: { $0.value >= 0x80 }) {
            // NFD, then drop non-spacing marks. U+11938 stays composed: the `unicode-normalization`
            // tables in `tokenizers` lack its decomposition (it has canonical class 0, so splitting
            // the text around it does not change the NFD of the rest).
            var stripped: [Unicode.Scalar] = []
            stripped.reserveCapacity(out.count)
            for segment in out.split(separator: "\u{11938}", omittingEmptySubsequences: false).enumerated() {
                if segment.offset > 0 { stripped.append("\u{11938}") }
                let nfd = String(String.UnicodeScalarView(segment.element)).decomposedStringWithCanonicalMapping
                stripped.append(contentsOf: nfd.unicodeScalars.lazy.filter { !UnicodeClasses.isNonspacingMark($0) })
            }
            out = stripped
        }
        if options.lowercase {
            var lowered: [Unicode.Scalar] = []
            lowered.reserveCapacity(out.count)
            for s in out {
                if s.value < 0x80 {
                    lowered.append(s.value >= 0x41 && s.value <= 0x5A ? Unicode.Scalar(UInt8(s.value + 32)) : s)
                } else {
                    lowered.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
                }
            }
            out = lowered
        }
        return out
    }

    /// BertPreTokenizer: split on whitespace (dropped) and isolate each punctuation character.
    private func preTokenize(_ text: [Unicode.Scalar], _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = range.lowerBound
        for i in range {
            let s = text[i]
            if UnicodeClasses.isWhitespace(s) {
                if start < i { body(start..<i) }
                start = i + 1
            } else if UnicodeClasses.isBertPunctuation(s) {
                if start < i { body(start..<i) }
                body(i..<i + 1)
                start = i + 1
            }
        }
        if start < range.upperBound { body(start..<range.upperBound) }
    }

    /// Greedy longest-match-first; the whole word is `[UNK]` when any part has no match.
    private func wordPiece(_ word: ArraySlice<Unicode.Scalar>, into ids: inout [Int]) {
        let chars = Array(word)
        if chars.count > maxInputCharsPerWord { ids.append(unkID); return }
        var pieces: [Int] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int?
            while start < end {
                var candidate = start > 0 ? prefix : ""
                candidate.unicodeScalars.append(contentsOf: chars[start..<end])
                if let id = vocab[ExactString(candidate)] { found = id; break }
                end -= 1
            }
            guard let id = found else { ids.append(unkID); return }
            pieces.append(id)
            start = end
        }
        ids.append(contentsOf: pieces)
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var text = ""
        var index = 0
        for id in ids {
            if skipSpecialTokens, specialTokens.all.contains(id) { continue }
            guard let token = added.token(id) ?? idToToken[id] else { continue }
            var piece: String
            if index == 0 {
                piece = token
            } else if token.utf8.starts(with: prefix.utf8) {
                piece = String(decoding: token.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
            } else {
                piece = " " + token
            }
            if decoderCleanup { piece = Self.decoderCleanup(piece) }
            text += piece
            index += 1
        }
        return cleanUp ? cleanUpTokenization(text) : text
    }

    /// The WordPiece decoder's own clean-up (`tokenizers` `decoders::wordpiece::cleanup`), per token.
    static func decoderCleanup(_ token: String) -> String {
        replacingAll(token, decoderReplacements)
    }

    private static let decoderReplacements: [([UInt8], [UInt8])] = [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
        (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ].map { (Array($0.0.utf8), Array($0.1.utf8)) }
}
