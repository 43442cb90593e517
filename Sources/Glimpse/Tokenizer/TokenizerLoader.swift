import Foundation

/// Loads the tokenizer saved in a Hugging Face model directory.
public enum TokenizerLoader {
    /// `tokenizer_class` values (with or without `Fast`) that are byte-level BPE.
    static let bytePairClasses: Set<String> = ["GPT2Tokenizer", "BartTokenizer", "RobertaTokenizer"]
    /// `tokenizer_class` values that are BERT WordPiece.
    static let wordPieceClasses: Set<String> = ["BertTokenizer", "BlipTokenizer", "DistilBertTokenizer"]
    /// Classes that say nothing about the pipeline; tokenizer.json decides.
    static let genericClasses: Set<String> = ["PreTrainedTokenizerFast", "TokenizersBackend"]

    /// Chooses the tokenizer by `tokenizer_config.json`'s `tokenizer_class`, then `tokenizer.json`'s
    /// `model.type`, then the files present (`vocab.json` + `merges.txt`, or `vocab.txt`).
    /// `tokenizer.json` is preferred over the separate vocabulary files when both are present.
    public static func load(directory: URL) throws -> any Tokenizer {
        let fm = FileManager.default
        func file(_ name: String) -> URL? {
            let url = directory.appendingPathComponent(name)
            return fm.fileExists(atPath: url.path) ? url : nil
        }
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        var tokenizerClass: String?
        if let url = file("tokenizer_config.json") {
            let config = try readJSON(url)
            if let name = config["tokenizer_class"]?.string {
                tokenizerClass = name.hasSuffix("Fast") ? String(name.dropLast(4)) : name
            }
        }
        enum Kind { case bytePair, wordPiece }
        var kind: Kind?
        if let name = tokenizerClass {
            if bytePairClasses.contains(name) { kind = .bytePair }
            else if wordPieceClasses.contains(name) { kind = .wordPiece }
            else if !genericClasses.contains(name) {
                throw TokenizerError.unsupportedTokenizer(
                    file: configURL.path,
                    reason: "tokenizer_class \(name); supported: GPT2Tokenizer, BartTokenizer, RobertaTokenizer (byte-level BPE), BertTokenizer (WordPiece)")
            }
        }
        let tokenizerJSON = file("tokenizer.json")
        let parsed = try tokenizerJSON.map(readJSON)
        if kind == nil, let url = tokenizerJSON, let json = parsed {
            switch json["model"]?["type"]?.string {
            case "BPE": kind = .bytePair
            case "WordPiece": kind = .wordPiece
            case let other:
                throw TokenizerError.unsupportedTokenizer(
                    file: url.path, reason: "model.type \(other ?? "missing"); supported: BPE, WordPiece")
            }
        }
        if kind == nil {
            if file("vocab.json") != nil, file("merges.txt") != nil { kind = .bytePair }
            else if file("vocab.txt") != nil { kind = .wordPiece }
        }
        switch kind {
        case .bytePair:
            if let url = tokenizerJSON, let json = parsed { return try BytePairTokenizer(tokenizerJSON: json, file: url) }
            guard let vocab = file("vocab.json") else { throw TokenizerError.fileNotReadable(file: directory.appendingPathComponent("vocab.json").path) }
            guard let merges = file("merges.txt") else { throw TokenizerError.fileNotReadable(file: directory.appendingPathComponent("merges.txt").path) }
            return try BytePairTokenizer(vocabularyFile: vocab, mergesFile: merges)
        case .wordPiece:
            if let url = tokenizerJSON, let json = parsed { return try WordPieceTokenizer(tokenizerJSON: json, file: url) }
            guard let vocab = file("vocab.txt") else { throw TokenizerError.fileNotReadable(file: directory.appendingPathComponent("vocab.txt").path) }
            return try WordPieceTokenizer(vocabularyFile: vocab)
        case nil:
            throw TokenizerError.fileNotReadable(
                file: directory.appendingPathComponent("tokenizer.json").path + " (or vocab.json + merges.txt, or vocab.txt)")
        }
    }
}

/// The `model` section of a parsed tokenizer.json, checked to be of `type` (a missing type counts as it).
func tokenizerModel(_ json: JSONValue, type expected: String, file: String) throws -> JSONValue {
    guard let model = json["model"], model.object != nil else {
        throw TokenizerError.invalidValue(file: file, key: "model", reason: "missing")
    }
    let type = model["type"]?.string ?? expected
    guard type == expected else {
        throw TokenizerError.unsupportedTokenizer(file: file, reason: "model.type is \(type), expected \(expected)")
    }
    return model
}
