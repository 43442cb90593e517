import Foundation

/// A token matched in the raw text before the model sees it (`tokenizers`' `AddedToken`).
struct AddedToken: Sendable {
    var id: Int
    var content: String
    var special: Bool
    var lstrip = false
    var rstrip = false
    var singleWord = false
    /// Matched against normalized text (true) or the raw input (false).
    var normalized: Bool
}

/// A piece of input: either plain text (scalar range) or an added token's id.
enum TextPiece: Equatable {
    case text(Range<Int>)
    case token(Int)
}

/// Splits text on added tokens, leftmost-longest, as `tokenizers`' `AddedVocabulary` does.
struct AddedTokenSplitter: Sendable {
    private struct Pattern: Sendable {
        let scalars: [Unicode.Scalar]
        let token: AddedToken
    }
    /// Patterns by first scalar, longest first.
    private let patterns: [UInt32: [Pattern]]

    var isEmpty: Bool { patterns.isEmpty }

    /// - Parameter transform: maps each token's content to the form it is matched in
    ///   (the normalizer for normalized tokens).
    init(_ tokens: [AddedToken], transform: (String) -> [Unicode.Scalar] = { Array($0.unicodeScalars) }) {
        var byFirst: [UInt32: [Pattern]] = [:]
        for token in tokens {
            let scalars = transform(token.content)
            guard let first = scalars.first else { continue }
            byFirst[first.value, default: []].append(Pattern(scalars: scalars, token: token))
        }
        for key in byFirst.keys { byFirst[key]?.sort { $0.scalars.count > $1.scalars.count } }
        patterns = byFirst
    }

    /// Splits `text[range]`; plain pieces are appended as `.text`, matches as `.token`.
    func split(_ text: [Unicode.Scalar], _ range: Range<Int>, into out: inout [TextPiece]) {
        if patterns.isEmpty {
            if !range.isEmpty { out.append(.text(range)) }
            return
        }
        var offset = range.lowerBound  // start of the pending plain text
        var i = range.lowerBound
        while i < range.upperBound {
            guard let candidates = patterns[text[i].value],
                  let match = candidates.first(where: { p in
                      i + p.scalars.count <= range.upperBound && text[i..<i + p.scalars.count].elementsEqual(p.scalars)
                  }) else {
                i += 1
                continue
            }
            var start = i
            var stop = i + match.scalars.count
            let token = match.token
            if token.singleWord {
                let startOK = start == range.lowerBound || !isWordScalar(text[start - 1])
                let stopOK = stop == range.upperBound || !isWordScalar(text[stop])
                if !(startOK && stopOK) { i = stop; continue }
            }
            if token.lstrip {
                var s = start
                while s > offset, UnicodeClasses.isWhitespace(text[s - 1]) { s -= 1 }
                start = s
            }
            if token.rstrip {
                while stop < range.upperBound, UnicodeClasses.isWhitespace(text[stop]) { stop += 1 }
            }
            if offset < start { out.append(.text(offset..<start)) }
            out.append(.token(token.id))
            offset = stop
            i = stop
        }
        if offset < range.upperBound { out.append(.text(offset..<range.upperBound)) }
    }

    private func isWordScalar(_ s: Unicode.Scalar) -> Bool {
        s.properties.isAlphabetic || s.properties.numericType != nil
    }
}

/// Settings shared by every tokenizer kind, read from `tokenizer_config.json`,
/// `special_tokens_map.json`, `added_tokens.json` and the `added_tokens` of `tokenizer.json`.
struct TokenizerSettings {
    /// Added tokens declared by the files, in declaration order.
    var addedTokens: [AddedToken] = []
    /// Named special tokens (`bos_token` ... `mask_token`) by short name ("bos" ...).
    var named: [String: String] = [:]
    /// Named special tokens set to `null` (no class default applies).
    var explicitNull: Set<String> = []
    /// `additional_special_tokens` / `extra_special_tokens`.
    var additional: [String] = []
    /// `clean_up_tokenization_spaces` (transformers 5 default: false).
    var cleanUpTokenizationSpaces = false
    /// transformers 5 skips the clean-up for BPE models unless this flag is set.
    var cleanUpForBPE = false
    /// The parsed `tokenizer_config.json`, if present.
    var config: JSONValue?
    var configFile = "tokenizer_config.json"

    static let namedKeys = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]

    /// Reads the optional config files in `directory`; `tokenizerJSON` is the parsed tokenizer.json, if any.
    static func load(directory: URL, tokenizerJSON: JSONValue?, tokenizerJSONFile: String) throws -> TokenizerSettings {
        var settings = TokenizerSettings()
        let fm = FileManager.default
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        settings.configFile = configURL.path
        if fm.fileExists(atPath: configURL.path) {
            let config = try readJSON(configURL)
            guard config.object != nil else {
                throw TokenizerError.invalidValue(file: configURL.path, key: "(root)", reason: "expected an object")
            }
            settings.config = config
            try settings.readNamedTokens(config, file: configURL.path)
            if let flag = config["clean_up_tokenization_spaces"]?.bool { settings.cleanUpTokenizationSpaces = flag }
            if let flag = config["clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output"]?.bool {
                settings.cleanUpForBPE = flag
            }
            if let decoder = config["added_tokens_decoder"], !decoder.isNull {
                guard let entries = decoder.object else {
                    throw TokenizerError.invalidValue(file: configURL.path, key: "added_tokens_decoder", reason: "expected an object")
                }
                for (key, value) in entries {
                    guard let id = Int(key), id >= 0 else {
                        throw TokenizerError.invalidValue(file: configURL.path, key: "added_tokens_decoder.\(key)", reason: "id is not a non-negative integer")
                    }
                    settings.addedTokens.append(try parseAddedToken(value, id: id, file: configURL.path,
                                                                    key: "added_tokens_decoder.\(key)"))
                }
            }
        }
        let mapURL = directory.appendingPathComponent("special_tokens_map.json")
        if fm.fileExists(atPath: mapURL.path) {
            let map = try readJSON(mapURL)
            guard map.object != nil else {
                throw TokenizerError.invalidValue(file: mapURL.path, key: "(root)", reason: "expected an object")
            }
            var fromMap = TokenizerSettings()
            try fromMap.readNamedTokens(map, file: mapURL.path)
            for (key, value) in fromMap.named where settings.named[key] == nil && !settings.explicitNull.contains(key) {
                settings.named[key] = value
            }
            if settings.additional.isEmpty { settings.additional = fromMap.additional }
        }
        // Legacy added_tokens.json: {"token": id}.
        let addedURL = directory.appendingPathComponent("added_tokens.json")
        if tokenizerJSON == nil, fm.fileExists(atPath: addedURL.path) {
            let added = try readJSON(addedURL)
            guard let entries = added.object else {
                throw TokenizerError.invalidValue(file: addedURL.path, key: "(root)", reason: "expected an object")
            }
            for (content, value) in entries {
                guard let id = value.int, id >= 0 else {
                    throw TokenizerError.invalidValue(file: addedURL.path, key: content, reason: "expected a non-negative integer id")
                }
                if !settings.addedTokens.contains(where: { $0.id == id }) {
                    settings.addedTokens.append(AddedToken(id: id, content: content, special: false, normalized: true))
                }
            }
        }
        if let json = tokenizerJSON, let list = json["added_tokens"], !list.isNull {
            guard let items = list.array else {
                throw TokenizerError.invalidValue(file: tokenizerJSONFile, key: "added_tokens", reason: "expected an array")
            }
            var fromJSON: [AddedToken] = []
            for (index, item) in items.enumerated() {
                guard let id = item["id"]?.int, id >= 0 else {
                    throw TokenizerError.invalidValue(file: tokenizerJSONFile, key: "added_tokens[\(index)].id", reason: "expected a non-negative integer")
                }
                fromJSON.append(try parseAddedToken(item, id: id, file: tokenizerJSONFile, key: "added_tokens[\(index)]"))
            }
            // tokenizer.json is authoritative; config entries only add what it lacks.
            let ids = Set(fromJSON.map(\.id))
            settings.addedTokens = fromJSON + settings.addedTokens.filter { !ids.contains($0.id) }
        }
        return settings
    }

    /// Reads `<name>_token` keys and the additional special tokens from a config object.
    private mutating func readNamedTokens(_ object: JSONValue, file: String) throws {
        for name in Self.namedKeys {
            let key = "\(name)_token"
            guard let value = object[key] else { continue }
            if value.isNull { explicitNull.insert(name); continue }
            guard let content = Self.tokenContent(value) else {
                throw TokenizerError.invalidValue(file: file, key: key, reason: "expected a string or an object with 'content'")
            }
            named[name] = content
        }
        for key in ["additional_special_tokens", "extra_special_tokens"] {
            guard let value = object[key], !value.isNull else { continue }
            let items: [JSONValue]
            if let array = value.array { items = array }
            else if let dict = value.object { items = dict.map(\.value) }
            else { throw TokenizerError.invalidValue(file: file, key: key, reason: "expected an array") }
            for item in items {
                guard let content = Self.tokenContent(item) else {
                    throw TokenizerError.invalidValue(file: file, key: key, reason: "expected strings or objects with 'content'")
                }
                if !additional.contains(content) { additional.append(content) }
            }
        }
    }

    /// A token written as `"text"` or `{"content": "text", ...}`.
    static func tokenContent(_ value: JSONValue) -> String? {
        if let s = value.string { return s }
        return value["content"]?.string
    }

    private static func parseAddedToken(_ value: JSONValue, id: Int, file: String, key: String) throws -> AddedToken {
        if let content = value.string {
            return AddedToken(id: id, content: content, special: false, normalized: true)
        }
        guard let content = value["content"]?.string, !content.isEmpty else {
            throw TokenizerError.invalidValue(file: file, key: key, reason: "missing 'content'")
        }
        let special = value["special"]?.bool ?? false
        return AddedToken(id: id, content: content, special: special,
                          lstrip: value["lstrip"]?.bool ?? false, rstrip: value["rstrip"]?.bool ?? false,
                          singleWord: value["single_word"]?.bool ?? false,
                          normalized: value["normalized"]?.bool ?? !special)
    }

    /// `tokenizer_class` from the config, without a `Fast` suffix.
    var tokenizerClass: String? {
        guard let name = config?["tokenizer_class"]?.string else { return nil }
        return name.hasSuffix("Fast") ? String(name.dropLast(4)) : name
    }

    /// Completes the added tokens with the named special tokens, as transformers registers them:
    /// a named token already added becomes special, one in the model vocabulary is added with its
    /// id, any other gets the next free id. `defaults` are the tokenizer class's defaults for names
    /// the files leave out (not for names they set to null).
    func resolveAddedTokens(vocabLookup: (String) -> Int?, vocabCount: Int,
                            defaults: [String: String]) -> (tokens: [AddedToken], special: SpecialTokens) {
        var tokens = addedTokens
        var nextID = max(vocabCount, (tokens.map(\.id).max() ?? -1) + 1)
        func register(_ content: String) -> Int {
            if let index = tokens.firstIndex(where: { $0.content.utf8.elementsEqual(content.utf8) }) {
                tokens[index].special = true
                return tokens[index].id
            }
            let id: Int
            if let existing = vocabLookup(content) { id = existing } else { id = nextID; nextID += 1 }
            tokens.append(AddedToken(id: id, content: content, special: true, normalized: false))
            return id
        }
        var special = SpecialTokens()
        for name in Self.namedKeys {
            guard let content = named[name] ?? (explicitNull.contains(name) ? nil : defaults[name]) else { continue }
            let id = register(content)
            switch name {
            case "bos": special.bos = id
            case "eos": special.eos = id
            case "unk": special.unk = id
            case "sep": special.sep = id
            case "pad": special.pad = id
            case "cls": special.cls = id
            default: special.mask = id
            }
        }
        for content in additional { _ = register(content) }
        special.all = Set(tokens.filter(\.special).map(\.id))
        return (tokens, special)
    }
}

/// A tokenizer's added tokens resolved to ids, and the added-token half of encoding, shared by
/// both tokenizer kinds (`tokenizers`' `AddedVocabulary`).
struct AddedVocabulary: Sendable {
    let special: SpecialTokens
    /// `len(tokenizer)`: the model vocabulary plus added tokens that are not in it.
    let vocabularySize: Int
    private let byContent: [ExactString: Int]
    /// Id to the text `decode` emits for the token.
    private let decoded: [Int: String]
    private let raw: AddedTokenSplitter
    private let normalized: AddedTokenSplitter
    private let normalizer: (@Sendable ([Unicode.Scalar]) -> [Unicode.Scalar])?

    /// - Parameters:
    ///   - defaults: the tokenizer class's named special tokens (see `resolveAddedTokens`).
    ///   - normalizer: the model's normalizer; nil when it has none. Tokens flagged `normalized`
    ///     are matched, and decoded, in normalized form.
    init(settings: TokenizerSettings, vocab: [ExactString: Int], defaults: [String: String],
         normalizer: (@Sendable ([Unicode.Scalar]) -> [Unicode.Scalar])? = nil) {
        let resolved = settings.resolveAddedTokens(vocabLookup: { vocab[ExactString($0)] }, vocabCount: vocab.count,
                                                   defaults: defaults)
        let normalize: (String) -> [Unicode.Scalar] = { normalizer?(Array($0.unicodeScalars)) ?? Array($0.unicodeScalars) }
        var byContent: [ExactString: Int] = [:]
        var decoded: [Int: String] = [:]
        for token in resolved.tokens {
            byContent[ExactString(token.content)] = token.id
            decoded[token.id] = token.normalized ? String(String.UnicodeScalarView(normalize(token.content))) : token.content
        }
        self.byContent = byContent
        self.decoded = decoded
        special = resolved.special
        vocabularySize = vocab.count + Set(resolved.tokens.map { ExactString($0.content) }).filter { vocab[$0] == nil }.count
        raw = AddedTokenSplitter(resolved.tokens.filter { !$0.normalized })
        normalized = AddedTokenSplitter(resolved.tokens.filter { $0.normalized }, transform: normalize)
        self.normalizer = normalizer
    }

    func id(_ content: String) -> Int? { byContent[ExactString(content)] }

    /// The decoded text of an added token, or nil when `id` is not one.
    func token(_ id: Int) -> String? { decoded[id] }

    /// Splits out tokens matched in the raw text, normalizes the rest, splits out tokens matched in
    /// normalized text, and hands each remaining plain range to `model`.
    func encode(_ text: String, model: ([Unicode.Scalar], Range<Int>, inout [Int]) -> Void) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [TextPiece] = []
        raw.split(scalars, 0..<scalars.count, into: &pieces)
        var ids: [Int] = []
        for piece in pieces {
            switch piece {
            case .token(let id):
                ids.append(id)
            case .text(let range):
                let text = normalizer?(Array(scalars[range])) ?? scalars
                let textRange = normalizer == nil ? range : 0..<text.count
                var inner: [TextPiece] = []
                normalized.split(text, textRange, into: &inner)
                for p in inner {
                    switch p {
                    case .token(let id): ids.append(id)
                    case .text(let r): model(text, r, &ids)
                    }
                }
            }
        }
        return ids
    }
}
