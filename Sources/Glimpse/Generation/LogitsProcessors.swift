import Foundation

/// transformers' logits processors, in the order `generate` applies them, on one row of scores.
/// Greedy search applies them to raw logits; beam search to log-probabilities (as transformers does).
struct LogitsProcessors {
    let parameters: GenerationParameters
    let promptLength: Int

    func apply(_ scores: UnsafeMutablePointer<Float>, vocab: Int, sequence: [Int]) {
        let p = parameters
        // RepetitionPenaltyLogitsProcessor: every token already in the sequence (prompt included).
        if p.repetitionPenalty != 1 {
            var seen = Set<Int>()
            for t in sequence where t >= 0 && t < vocab && seen.insert(t).inserted {
                let s = scores[t]
                scores[t] = s < 0 ? s * p.repetitionPenalty : s / p.repetitionPenalty
            }
        }
        // NoRepeatNGramLogitsProcessor: ban the token that would complete an n-gram seen before.
        let n = p.noRepeatNgramSize
        if n > 0 && sequence.count >= n {
            let prefixStart = sequence.count + 1 - n
            for start in 0...(sequence.count - n) {
                var matches = true
                for j in 0..<(n - 1) where sequence[start + j] != sequence[prefixStart + j] { matches = false; break }
                if matches {
                    let banned = sequence[start + n - 1]
                    if banned >= 0 && banned < vocab { scores[banned] = -.infinity }
                }
            }
        }
        // NoBadWordsLogitsProcessor: a banned sequence's last token, when the rest is the current suffix.
        for words in p.badWordsIds where !words.isEmpty {
            let head = words.dropLast()
            if head.count <= sequence.count && sequence.suffix(head.count).elementsEqual(head),
               let last = words.last, last >= 0 && last < vocab {
                scores[last] = -.infinity
            }
        }
        // MinLengthLogitsProcessor / MinNewTokensLengthLogitsProcessor: no EOS before the minimum.
        if sequence.count < p.minLength || sequence.count - promptLength < p.minNewTokens {
            for eos in p.eosTokenIds where eos >= 0 && eos < vocab { scores[eos] = -.infinity }
        }
        // ForcedBOSTokenLogitsProcessor (cur_len == 1) and ForcedEOSTokenLogitsProcessor (cur_len ==
        // max_length - 1): every score -inf but the forced token's, which becomes 0 (BART, Florence-2).
        if let bos = p.forcedBosTokenId, sequence.count == 1, bos >= 0 && bos < vocab { force([bos], scores, vocab: vocab) }
        if !p.forcedEosTokenIds.isEmpty && sequence.count == p.resolvedMaxLength(promptLength: promptLength) - 1 {
            force(p.forcedEosTokenIds, scores, vocab: vocab)
        }
    }

    private func force(_ tokens: [Int], _ scores: UnsafeMutablePointer<Float>, vocab: Int) {
        scores.update(repeating: -.infinity, count: vocab)
        for t in tokens where t >= 0 && t < vocab { scores[t] = 0 }
    }
}
