import Foundation

/// vocab.json + merges.txt (byte-level BPE). Input: vocab.json bytes, a NUL byte, merges.txt bytes.
/// A tokenizer that loads must encode and decode arbitrary text without trapping, and only produce ids
/// of its vocabulary.
enum FuzzTokenizer {
    static let vocabURL = fuzzScratch.appendingPathComponent("vocab.json")
    static let mergesURL = fuzzScratch.appendingPathComponent("merges.txt")
    static let texts = ["a large green square to the left of a small orange triangle", "", " ", "héllo wörld 🙂 's 're\n\t 123",
                        "<|endoftext|>", "\u{0}\u{1}\u{7F}"]

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let split = bytes.firstIndex(of: 0) ?? bytes.count
        let vocab = Data(bytes[0..<split])
        let merges = split < bytes.count ? Data(bytes[(split + 1)...]) : Data()
        guard (try? vocab.write(to: vocabURL)) != nil, (try? merges.write(to: mergesURL)) != nil else { return }
        let tokenizer: BytePairTokenizer
        do { tokenizer = try BytePairTokenizer(vocabularyFile: vocabURL, mergesFile: mergesURL) } catch is TokenizerError { return } catch {
            fuzzCheck(false, "unexpected error type \(type(of: error)): \(error)")
            return
        }
        var extra = texts
        extra.append(String(decoding: merges.prefix(64), as: UTF8.self))
        for text in extra {
            let ids = tokenizer.encode(text)
            fuzzCheck(ids.allSatisfy { $0 >= 0 }, "negative id from encode")
            _ = tokenizer.decode(ids, skipSpecialTokens: false)
            _ = tokenizer.decode(ids, skipSpecialTokens: true)
        }
        // Ids the vocabulary may not hold (generation can emit any id below the model's vocab size).
        _ = tokenizer.decode([0, 1, 255, 256, 257, tokenizer.vocabularySize, tokenizer.vocabularySize + 100], skipSpecialTokens: true)
    }
}
