import Foundation

/// Caption metrics as pycocoevalcap computes them, on captions already tokenized by
/// `PTBTokenizer.tokenize` (tokens joined by single spaces). Each takes one hypothesis and one or
/// more references per image, in the same order, and returns the corpus score and the per-image scores.
public enum CaptionMetrics {
    /// BLEU-1..4 (pycocoevalcap `Bleu(4)`: `BleuScorer.compute_score(option="closest")`): clipped
    /// n-gram counts against the per-n-gram maximum over the references, the reference length closest
    /// to the hypothesis's (the shorter on ties), pycocoevalcap's 1e-15 / 1e-9 guards, brevity penalty
    /// when shorter. The corpus score pools the counts; per-image scores are sentence-level.
    public static func bleu(hypotheses: [String], references: [[String]], maxN: Int = 4) -> (corpus: [Double], perImage: [[Double]]) {
        precondition(hypotheses.count == references.count)
        let tiny = 1e-15, small = 1e-9
        var totalGuess = [Double](repeating: 0, count: maxN), totalCorrect = [Double](repeating: 0, count: maxN)
        var totalTest = 0.0, totalRef = 0.0
        var perImage: [[Double]] = []
        for (hyp, refs) in zip(hypotheses, references) {
            let words = whitespaceWords(hyp)
            var maxRef: [NGram: Int] = [:]
            var refLengths: [Int] = []
            for r in refs {
                let rw = whitespaceWords(r)
                refLengths.append(rw.count)
                for (g, c) in ngramCounts(rw, maxN: maxN) { maxRef[g] = max(maxRef[g] ?? 0, c) }
            }
            let testLen = words.count
            // min over (|l - testlen|, l): the closest length, the shorter one on ties
            let refLen = refLengths.min { (abs($0 - testLen), $0) < (abs($1 - testLen), $1) } ?? 0
            var guess = [Double](repeating: 0, count: maxN), correct = [Double](repeating: 0, count: maxN)
            for k in 1...maxN { guess[k - 1] = Double(max(0, testLen - k + 1)) }
            for (g, c) in ngramCounts(words, maxN: maxN) { correct[g.n - 1] += Double(min(maxRef[g] ?? 0, c)) }
            var scores: [Double] = []
            var product = 1.0
            for k in 0..<maxN {
                product *= (correct[k] + tiny) / (guess[k] + small)
                scores.append(pow(product, 1.0 / Double(k + 1)))
            }
            let ratio = (Double(testLen) + tiny) / (Double(refLen) + small)
            if ratio < 1 { scores = scores.map { $0 * exp(1 - 1 / ratio) } }
            perImage.append(scores)
            totalTest += Double(testLen)
            totalRef += Double(refLen)
            for k in 0..<maxN { totalGuess[k] += guess[k]; totalCorrect[k] += correct[k] }
        }
        var corpus: [Double] = []
        var product = 1.0
        for k in 0..<maxN {
            product *= (totalCorrect[k] + tiny) / (totalGuess[k] + small)
            corpus.append(pow(product, 1.0 / Double(k + 1)))
        }
        let ratio = (totalTest + tiny) / (totalRef + small)
        if ratio < 1 { corpus = corpus.map { $0 * exp(1 - 1 / ratio) } }
        return (corpus, perImage)
    }

    /// ROUGE-L (pycocoevalcap `Rouge`): longest common subsequence over tokens split at single spaces,
    /// best precision and best recall over the references, F-measure with beta 1.2; the corpus score
    /// is the mean.
    public static func rougeL(hypotheses: [String], references: [[String]], beta: Double = 1.2) -> (corpus: Double, perImage: [Double]) {
        precondition(hypotheses.count == references.count)
        var scores: [Double] = []
        for (hyp, refs) in zip(hypotheses, references) {
            let c = spaceTokens(hyp)
            var precision = 0.0, recall = 0.0
            for r in refs {
                let t = spaceTokens(r)
                let l = Double(lcs(t, c))
                precision = max(precision, l / Double(c.count))
                recall = max(recall, l / Double(t.count))
            }
            scores.append(precision != 0 && recall != 0
                          ? (1 + beta * beta) * precision * recall / (recall + beta * beta * precision) : 0)
        }
        return (mean(scores), scores)
    }

    /// CIDEr-D as pycocoevalcap's `Cider` computes it (n = 1...4, sigma 6): tf-idf vectors with the
    /// document frequency of each n-gram counted once per image over that image's references, idf
    /// log(images) - log(max(1, df)), clipped dot product `min(hyp, ref) * ref` over the norms, a
    /// Gaussian penalty on the length difference (pycocoevalcap's `length` counts bigram occurrences,
    /// kept as is), averaged over n and references, times 10. The corpus score is the mean.
    public static func ciderD(hypotheses: [String], references: [[String]], maxN: Int = 4, sigma: Double = 6) -> (corpus: Double, perImage: [Double]) {
        precondition(hypotheses.count == references.count)
        let refCounts = references.map { $0.map { ngramCounts(whitespaceWords($0), maxN: maxN) } }
        var documentFrequency: [NGram: Double] = [:]
        for refs in refCounts {
            var seen = Set<NGram>()
            for r in refs { for g in r.keys { seen.insert(g) } }
            for g in seen { documentFrequency[g, default: 0] += 1 }
        }
        let refLen = log(Double(references.count))
        func vector(_ counts: [NGram: Int]) -> (vec: [[NGram: Double]], norm: [Double], length: Int) {
            var vec = [[NGram: Double]](repeating: [:], count: maxN)
            var norm = [Double](repeating: 0, count: maxN)
            var length = 0
            for (g, tf) in counts {
                let df = log(max(1.0, documentFrequency[g] ?? 0))
                let v = Double(tf) * (refLen - df)
                vec[g.n - 1][g] = v
                norm[g.n - 1] += v * v
                if g.n == 2 { length += tf }
            }
            return (vec, norm.map { $0.squareRoot() }, length)
        }
        var scores: [Double] = []
        for (hyp, refs) in zip(hypotheses, refCounts) {
            let h = vector(ngramCounts(whitespaceWords(hyp), maxN: maxN))
            var total = [Double](repeating: 0, count: maxN)
            for r in refs {
                let rv = vector(r)
                let delta = Double(h.length - rv.length)
                for n in 0..<maxN {
                    var val = 0.0
                    for (g, v) in h.vec[n] {
                        let rvG = rv.vec[n][g] ?? 0
                        val += min(v, rvG) * rvG
                    }
                    if h.norm[n] != 0 && rv.norm[n] != 0 { val /= h.norm[n] * rv.norm[n] }
                    val *= exp(-(delta * delta) / (2 * sigma * sigma))
                    total[n] += val
                }
            }
            scores.append(mean(total) / Double(refs.count) * 10)
        }
        return (mean(scores), scores)
    }

    // MARK: - helpers

    struct NGram: Hashable {
        let words: [String]
        var n: Int { words.count }
    }

    /// Python's `str.split()`: runs of whitespace, no empty words.
    static func whitespaceWords(_ s: String) -> [String] { s.split(whereSeparator: \.isWhitespace).map(String.init) }
    /// Python's `str.split(" ")`: "" is one empty token.
    static func spaceTokens(_ s: String) -> [String] { s.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }

    static func ngramCounts(_ words: [String], maxN: Int) -> [NGram: Int] {
        var counts: [NGram: Int] = [:]
        for k in 1...maxN where words.count >= k {
            for i in 0...(words.count - k) { counts[NGram(words: Array(words[i..<(i + k)])), default: 0] += 1 }
        }
        return counts
    }

    static func lcs(_ a: [String], _ b: [String]) -> Int {
        guard !a.isEmpty, !b.isEmpty else { return 0 }
        var prev = [Int](repeating: 0, count: b.count + 1), cur = prev
        for x in a {
            for j in 1...b.count { cur[j] = x == b[j - 1] ? prev[j - 1] + 1 : max(prev[j], cur[j - 1]) }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }

    static func mean(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.reduce(0, +) / Double(v.count) }
}
