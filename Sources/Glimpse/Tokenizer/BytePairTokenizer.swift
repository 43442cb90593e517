import Foundation

/// GPT-2's byte-level byte-pair encoding, equal to transformers' `GPT2Tokenizer` (5.x) and
/// `GPT2TokenizerFast`.
///
/// Pipeline: split out added tokens, pre-tokenize with GPT-2's regex, map each piece's UTF-8
/// bytes to printable characters, apply merges by rank. Decoding maps characters back to bytes
/// and decodes UTF-8 with replacement characters for invalid sequences.
public final class BytePairTokenizer: Tokenizer, @unchecked Sendable {
    public var specialTokens: SpecialTokens { added.special }
    public var vocabularySize: Int { added.vocabularySize }

    /// Token string to id (model vocabulary).
    private let vocab: [ExactString: Int]
    /// Id to token string (model vocabulary).
    private let idToToken: [Int: String]
    /// Id of the single-character token for each byte, or -1.
    private let byteIDs: [Int]
    /// Merge of two ids (`left << 32 | right`) to its rank and the merged id.
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    private let added: AddedVocabulary
    private let addPrefixSpace: Bool
    private let ignoreMerges: Bool
    private let cleanUp: Bool

    // Cache of pre-token bytes to ids; guarded by `lock`.
    private var cache: [[UInt8]: [Int]] = [:]
    private let lock = NSLock()
    private static let cacheCapacity = 10_000

    /// Loads `vocab.json` + `merges.txt` from `directory`, with the optional config files.
    public convenience init(vocabularyFile: URL, mergesFile: URL) throws {
        let directory = vocabularyFile.deletingLastPathComponent()
        let vocabJSON = try readJSON(vocabularyFile)
        let vocab = try Self.parseVocab(vocabJSON, file: vocabularyFile.path, key: "(root)")
        let merges = try Self.parseMergesFile(try readFile(mergesFile), file: mergesFile.path)
        let settings = try TokenizerSettings.load(directory: directory, tokenizerJSON: nil, tokenizerJSONFile: "")
        let addPrefixSpace = settings.config?["add_prefix_space"]?.bool ?? false
        try self.init(vocab: vocab, merges: merges, mergesFile: mergesFile.path, settings: settings,
                      addPrefixSpace: addPrefixSpace, ignoreMerges: false)
    }

    /// Loads a `tokenizer.json` whose model is BPE, with the optional config files beside it.
    public convenience init(tokenizerFile: URL) throws {
        try self.init(tokenizerJSON: try readJSON(tokenizerFile), file: tokenizerFile)
    }

    /// Builds from an already parsed `tokenizer.json` (the loader reads it once).
    convenience init(tokenizerJSON json: JSONValue, file tokenizerFile: URL) throws {
        let file = tokenizerFile.path
        let model = try tokenizerModel(json, type: "BPE", file: file)
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = model[key]?.string, !value.isEmpty {
                throw TokenizerError.unsupportedTokenizer(file: file, reason: "model.\(key) '\(value)' is not supported")
            }
        }
        if model["byte_fallback"]?.bool == true {
            throw TokenizerError.unsupportedTokenizer(file: file, reason: "model.byte_fallback is not supported")
        }
        if let pre = json["pre_tokenizer"], !pre.isNull {
            let types = Self.componentTypes(pre)
            guard types == ["ByteLevel"] else {
                throw TokenizerError.unsupportedTokenizer(file: file, reason: "pre_tokenizer \(types) is not GPT-2's ByteLevel")
            }
        }
        if let normalizer = json["normalizer"], !normalizer.isNull {
            throw TokenizerError.unsupportedTokenizer(file: file, reason: "normalizer \(Self.componentTypes(normalizer)) is not supported for byte-level BPE")
        }
        guard let vocabValue = model["vocab"] else {
            throw TokenizerError.invalidValue(file: file, key: "model.vocab", reason: "missing")
        }
        let vocab = try Self.parseVocab(vocabValue, file: file, key: "model.vocab")
        guard let mergeList = model["merges"]?.array else {
            throw TokenizerError.invalidValue(file: file, key: "model.merges", reason: "missing or not an array")
        }
        var merges: [(String, String, line: Int)] = []
        merges.reserveCapacity(mergeList.count)
        for (index, item) in mergeList.enumerated() {
            if let s = item.string {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw TokenizerError.invalidMerge(file: file, line: index, merge: s, reason: "expected two tokens separated by one space")
                }
                merges.append((String(parts[0]), String(parts[1]), index))
            } else if let pair = item.array, pair.count == 2, let a = pair[0].string, let b = pair[1].string {
                merges.append((a, b, index))
            } else {
                throw TokenizerError.invalidMerge(file: file, line: index, merge: "\(item)", reason: "expected \"a b\" or [a, b]")
            }
        }
        let settings = try TokenizerSettings.load(directory: tokenizerFile.deletingLastPathComponent(),
                                                  tokenizerJSON: json, tokenizerJSONFile: file)
        // transformers 5 rebuilds the pipeline from the config's add_prefix_space; older files carry it
        // in the pre-tokenizer.
        let addPrefixSpace = settings.config?["add_prefix_space"]?.bool
            ?? json["pre_tokenizer"]?["add_prefix_space"]?.bool ?? false
        try self.init(vocab: vocab, merges: merges, mergesFile: file, settings: settings,
                      addPrefixSpace: addPrefixSpace, ignoreMerges: model["ignore_merges"]?.bool ?? false)
    }

    private init(vocab: [ExactString: Int], merges: [(String, String, line: Int)], mergesFile: String,
                 settings: TokenizerSettings, addPrefixSpace: Bool, ignoreMerges: Bool) throws {
        self.vocab = vocab
        var idToToken: [Int: String] = [:]
        for (token, id) in vocab { idToToken[id] = token.string }
        var mergeTable: [UInt64: (rank: Int32, id: Int32)] = [:]
        mergeTable.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            guard let a = vocab[ExactString(merge.0)] else {
                throw TokenizerError.invalidMerge(file: mergesFile, line: merge.line, merge: "\(merge.0) \(merge.1)",
                                                  reason: "token '\(merge.0)' is not in the vocabulary")
            }
            guard let b = vocab[ExactString(merge.1)] else {
                throw TokenizerError.invalidMerge(file: mergesFile, line: merge.line, merge: "\(merge.0) \(merge.1)",
                                                  reason: "token '\(merge.1)' is not in the vocabulary")
            }
            guard let merged = vocab[ExactString(merge.0 + merge.1)] else {
                throw TokenizerError.invalidMerge(file: mergesFile, line: merge.line, merge: "\(merge.0) \(merge.1)",
                                                  reason: "merged token '\(merge.0)\(merge.1)' is not in the vocabulary")
            }
            let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
            mergeTable[key] = (Int32(rank), Int32(merged))  // a repeated pair keeps its last rank, as in `tokenizers`
        }
        self.merges = mergeTable
        byteIDs = ByteLevel.byteToScalar.map { vocab[ExactString(String(Character($0)))] ?? -1 }

        // GPT2Tokenizer's defaults; a generic PreTrainedTokenizerFast has none.
        let defaults = TokenizerLoader.genericClasses.contains(settings.tokenizerClass ?? "") ? [:]
            : ["unk": "<|endoftext|>", "bos": "<|endoftext|>", "eos": "<|endoftext|>"]
        self.idToToken = idToToken
        added = AddedVocabulary(settings: settings, vocab: vocab, defaults: defaults)
        self.addPrefixSpace = addPrefixSpace
        self.ignoreMerges = ignoreMerges
        cleanUp = settings.cleanUpTokenizationSpaces && settings.cleanUpForBPE
    }

    /// Parses merges.txt: an optional `#version` first line, then "left right" per line.
    /// Works on bytes: splitting a large String by Character would be slow.
    static func parseMergesFile(_ data: Data, file: String) throws -> [(String, String, line: Int)] {
        let bytes = [UInt8](data)
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw TokenizerError.invalidValue(file: file, key: "(file)", reason: "not valid UTF-8")
        }
        var merges: [(String, String, line: Int)] = []
        merges.reserveCapacity(bytes.count / 8)
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            lineNumber += 1
            var lineEnd = end
            if lineEnd > start, bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let line = bytes[start..<lineEnd]
            start = end + 1
            if line.isEmpty || (lineNumber == 1 && line.starts(with: Array("#version".utf8))) { continue }
            let spaces = line.indices.filter { line[$0] == 0x20 }
            guard spaces.count == 1, let space = spaces.first, space > line.startIndex, space < line.endIndex - 1 else {
                throw TokenizerError.invalidMerge(file: file, line: lineNumber, merge: String(decoding: line, as: UTF8.self),
                                                  reason: "expected two tokens separated by one space")
            }
            merges.append((String(decoding: line[line.startIndex..<space], as: UTF8.self),
                           String(decoding: line[(space + 1)...], as: UTF8.self), lineNumber))
        }
        return merges
    }

    static func parseVocab(_ value: JSONValue, file: String, key: String) throws -> [ExactString: Int] {
        guard let entries = value.object else {
            throw TokenizerError.invalidValue(file: file, key: key, reason: "expected an object of token to id")
        }
        var vocab: [ExactString: Int] = [:]
        vocab.reserveCapacity(entries.count)
        for (token, idValue) in entries {
            guard let id = idValue.int, id >= 0 else {
                throw TokenizerError.invalidVocabulary(file: file, token: token, reason: "id is not a non-negative integer")
            }
            // The merge table packs ids into 32 bits; a larger id trapped there (found by fuzz/ bpe).
            guard id <= Int(Int32.max) else {
                throw TokenizerError.invalidVocabulary(file: file, token: token, reason: "id \(id) is larger than \(Int32.max)")
            }
            vocab[ExactString(token)] = id  // a repeated key keeps its last value, as Python's json does
        }
        var owner: [Int: String] = [:]
        owner.reserveCapacity(vocab.count)
        for (token, id) in vocab {
            if let other = owner.updateValue(token.string, forKey: id) {
                throw TokenizerError.invalidVocabulary(file: file, token: token.string, reason: "id \(id) is also used by '\(other)'")
            }
        }
        return vocab
    }

    static func componentTypes(_ value: JSONValue) -> [String] {
        guard let type = value["type"]?.string else { return [] }
        if type == "Sequence" {
            let items = value["pretokenizers"]?.array ?? value["normalizers"]?.array ?? value["decoders"]?.array ?? []
            return items.flatMap(componentTypes)
        }
        return [type]
    }

    // MARK: Tokenizer

    public func tokenID(_ token: String) -> Int? {
        added.id(token) ?? vocab[ExactString(token)]
    }

    public func encode(_ text: String) -> [Int] {
        added.encode(text, model: encodePlain)
    }

    private func encodePlain(_ scalars: [Unicode.Scalar], _ range: Range<Int>, into ids: inout [Int]) {
        var text = scalars
        var range = range
        if addPrefixSpace, scalars[range.lowerBound] != " " {
            text = [" "] + scalars[range]
            range = 0..<text.count
        }
        var bytes: [UInt8] = []
        ByteLevel.preTokenize(text, range) { word in
            bytes.removeAll(keepingCapacity: true)
            for s in text[word] { appendUTF8(s, to: &bytes) }
            ids.append(contentsOf: bpe(bytes))
        }
    }

    /// Merges one pre-token (its UTF-8 bytes) by rank.
    private func bpe(_ bytes: [UInt8]) -> [Int] {
        lock.lock()
        if let hit = cache[bytes] { lock.unlock(); return hit }
        lock.unlock()
        var symbols: [Int] = []
        symbols.reserveCapacity(bytes.count)
        for b in bytes where byteIDs[Int(b)] >= 0 { symbols.append(byteIDs[Int(b)]) }
        if ignoreMerges {
            let word = String(String.UnicodeScalarView(bytes.map { ByteLevel.byteToScalar[Int($0)] }))
            if let id = vocab[ExactString(word)] { return [id] }
        }
        while symbols.count > 1 {
            var bestRank = Int32.max
            var bestID: Int32 = -1
            var bestPair: UInt64 = 0
            for k in 0..<symbols.count - 1 {
                let key = UInt64(UInt32(symbols[k])) << 32 | UInt64(UInt32(symbols[k + 1]))
                if let m = merges[key], m.rank < bestRank {
                    bestRank = m.rank; bestID = m.id; bestPair = key
                }
            }
            if bestID < 0 { break }
            // Merge every occurrence of the best pair, left to right.
            var out: [Int] = []
            out.reserveCapacity(symbols.count)
            var k = 0
            while k < symbols.count {
                if k + 1 < symbols.count,
                   UInt64(UInt32(symbols[k])) << 32 | UInt64(UInt32(symbols[k + 1])) == bestPair {
                    out.append(Int(bestID))
                    k += 2
                } else {
                    out.append(symbols[k])
                    k += 1
                }
            }
            symbols = out
        }
        lock.lock()
        if cache.count >= Self.cacheCapacity { cache.removeAll(keepingCapacity: true) }
        cache[bytes] = symbols
        lock.unlock()
        return symbols
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if skipSpecialTokens, specialTokens.all.contains(id) { continue }
            guard let token = added.token(id) ?? idToToken[id] else { continue }
            let start = bytes.count
            var mapped = true
            for s in token.unicodeScalars {
                guard let b = ByteLevel.scalarToByte[s.value] else { mapped = false; break }
                bytes.append(b)
            }
            if !mapped {
                // A token outside the byte alphabet (an added token such as "a photo of") is its own UTF-8.
                bytes.removeSubrange(start...)
                bytes.append(contentsOf: token.utf8)
            }
        }
        let text = String(decoding: bytes, as: UTF8.self)
        return cleanUp ? cleanUpTokenization(text) : text
    }
}
