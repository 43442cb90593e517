import Foundation

/// Text to token ids and back, equal to the Hugging Face tokenizer saved in a model directory.
public protocol Tokenizer: Sendable {
    /// Token ids for `text`, without special tokens added around it
    /// (`tokenizer(text, add_special_tokens=False)` in transformers).
    func encode(_ text: String) -> [Int]
    /// Text for `ids` as transformers' `tokenizer.decode(ids, skip_special_tokens:)` returns it,
    /// including its clean-up of tokenization spaces when the tokenizer's config asks for it.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    /// Ids of the named special tokens, `nil` where the tokenizer has none.
    var specialTokens: SpecialTokens { get }
    /// The id of `token` (vocabulary or added token), or `nil` when unknown.
    func tokenID(_ token: String) -> Int?
    /// Number of tokens, added tokens included (`len(tokenizer)` in transformers).
    var vocabularySize: Int { get }
}

extension Tokenizer {
    /// Decodes with special tokens skipped.
    public func decode(_ ids: [Int]) -> String { decode(ids, skipSpecialTokens: true) }
}

/// Ids of a tokenizer's named special tokens.
public struct SpecialTokens: Equatable, Sendable {
    public var bos: Int?
    public var eos: Int?
    public var pad: Int?
    public var unk: Int?
    public var sep: Int?
    public var cls: Int?
    public var mask: Int?
    /// Every id that `decode(_:skipSpecialTokens: true)` drops: the added tokens flagged special
    /// (named special tokens included). transformers' `all_special_ids` lists only the named ones.
    public var all: Set<Int>

    public init(bos: Int? = nil, eos: Int? = nil, pad: Int? = nil, unk: Int? = nil, sep: Int? = nil,
                cls: Int? = nil, mask: Int? = nil, all: Set<Int> = []) {
        self.bos = bos; self.eos = eos; self.pad = pad; self.unk = unk
        self.sep = sep; self.cls = cls; self.mask = mask; self.all = all
    }
}

/// Why a tokenizer could not be loaded. Each case names the file and the offending key or token.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// A required file is missing or unreadable.
    case fileNotReadable(file: String)
    /// The file is not valid JSON (or not valid UTF-8 text).
    case invalidJSON(file: String, reason: String)
    /// A key is missing or has the wrong type.
    case invalidValue(file: String, key: String, reason: String)
    /// A merge is malformed or names a token absent from the vocabulary. `line` is the 1-based line
    /// of merges.txt, or the 0-based index in tokenizer.json's `model.merges`.
    case invalidMerge(file: String, line: Int, merge: String, reason: String)
    /// A token is named (special token, unk token) but absent from the vocabulary.
    case unknownToken(file: String, key: String, token: String)
    /// Two tokens share an id, or an id is out of range.
    case invalidVocabulary(file: String, token: String, reason: String)
    /// The directory holds a tokenizer kind that Glimpse does not implement.
    case unsupportedTokenizer(file: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotReadable(let file): return "\(file): cannot read file"
        case .invalidJSON(let file, let reason): return "\(file): invalid JSON: \(reason)"
        case .invalidValue(let file, let key, let reason): return "\(file): key '\(key)': \(reason)"
        case .invalidMerge(let file, let line, let merge, let reason):
            return "\(file):\(line): merge '\(merge)': \(reason)"
        case .unknownToken(let file, let key, let token): return "\(file): \(key) token '\(token)' is not in the vocabulary"
        case .invalidVocabulary(let file, let token, let reason): return "\(file): token '\(token)': \(reason)"
        case .unsupportedTokenizer(let file, let reason): return "\(file): unsupported tokenizer: \(reason)"
        }
    }

    /// The file the error is about.
    public var file: String {
        switch self {
        case .fileNotReadable(let f), .invalidJSON(let f, _), .invalidValue(let f, _, _),
             .invalidMerge(let f, _, _, _), .unknownToken(let f, _, _), .invalidVocabulary(let f, _, _),
             .unsupportedTokenizer(let f, _):
            return f
        }
    }
}

/// A dictionary key that compares strings by their exact scalars, not by canonical equivalence
/// (Swift's `String ==` treats "é" and "e\u{301}" as equal; tokenizers do not).
struct ExactString: Hashable, Sendable {
    let string: String
    init(_ string: String) { self.string = string }
    static func == (a: ExactString, b: ExactString) -> Bool { a.string.utf8.elementsEqual(b.string.utf8) }
    func hash(into hasher: inout Hasher) {
        var s = string
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// transformers' `clean_up_tokenization` (applied by `decode` when `clean_up_tokenization_spaces`).
func cleanUpTokenization(_ text: String) -> String {
    replacingAll(text, cleanUpReplacements)
}

private let cleanUpReplacements: [([UInt8], [UInt8])] = [
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
    (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
].map { (Array($0.0.utf8), Array($0.1.utf8)) }

/// Applies Python-style `str.replace` calls in order, comparing UTF-8 bytes exactly
/// (Foundation's `replacingOccurrences` compares by canonical equivalence).
/// Every pattern starts with a space.
func replacingAll(_ text: String, _ replacements: [([UInt8], [UInt8])]) -> String {
    // Fast path: no space followed by a byte that starts a pattern's second character.
    var candidate = false
    var previous: UInt8 = 0
    for b in text.utf8 {
        if previous == 0x20, replacements.contains(where: { $0.0.count > 1 && $0.0[1] == b }) { candidate = true; break }
        previous = b
    }
    guard candidate else { return text }
    var source = Array(text.utf8)
    var changed = false
    for (pattern, insert) in replacements {
        guard source.count >= pattern.count else { continue }
        var out: [UInt8] = []
        var i = 0
        var replaced = false
        while i < source.count {
            if source[i] == pattern[0], i + pattern.count <= source.count,
               source[i..<i + pattern.count].elementsEqual(pattern) {
                if !replaced { out.reserveCapacity(source.count); out.append(contentsOf: source[0..<i]); replaced = true }
                out.append(contentsOf: insert)
                i += pattern.count
            } else {
                if replaced { out.append(source[i]) }
                i += 1
            }
        }
        if replaced { source = out; changed = true }
    }
    return changed ? String(decoding: source, as: UTF8.self) : text
}

/// Reads a whole file, or throws `fileNotReadable` naming it.
func readFile(_ url: URL) throws -> Data {
    guard let data = try? Data(contentsOf: url) else { throw TokenizerError.fileNotReadable(file: url.path) }
    return data
}

/// Reads and parses a JSON file, naming it in errors.
func readJSON(_ url: URL) throws -> JSONValue {
    try JSONValue.parse(try readFile(url), file: url.path)
}
