import Foundation

/// One returned hypothesis.
public struct GeneratedSequence: Sendable {
    /// Full sequence as transformers returns it: decoder start token, prompt, generated tokens (EOS included when emitted).
    public var tokens: [Int]
    /// Tokens before generation began (decoder start + prompt).
    public var promptLength: Int
    /// transformers' `sequences_scores` for beam search: sum of log-probs / (generated length ** length_penalty).
    /// Greedy search reports the same quantity for its single sequence.
    public var score: Float
    /// For each generated token, the cross-attention that produced it: [layers][heads][encoderRows]
    /// flattened (empty unless `captureAttention`).
    public var crossAttention: [[Float]]

    public var generatedTokens: ArraySlice<Int> { tokens[promptLength...] }
}

/// Greedy and beam search over any `TextDecoder`, equal to transformers' `generate`
/// (`_sample` without sampling, and the vectorized `_beam_search` of transformers 5).
public struct Generator {
    public let decoder: TextDecoder
    public let parameters: GenerationParameters

    public init(decoder: TextDecoder, parameters: GenerationParameters) {
        self.decoder = decoder
        self.parameters = parameters
    }

    /// Generates from `prompt` (decoder start + prompt tokens) for one image whose encoder K/V are in `state`.
    public func generate(prompt: [Int], state: DecoderState) throws -> [GeneratedSequence] {
        try parameters.validate()
        guard !prompt.isEmpty else { throw ModelError.invalidInput("empty decoder prompt") }
        let vocab = decoder.vocabularySize
        for t in prompt where t < 0 || t >= vocab {
            throw ModelError.invalidInput("prompt token id \(t) is outside the vocabulary (\(vocab))")
        }
        let maxLength = min(parameters.resolvedMaxLength(promptLength: prompt.count), decoder.maxPositions)
        guard state.lengthCapacity >= maxLength, state.beamCapacity >= parameters.beamWidth else {
            throw ModelError.invalidInput("decoder state holds \(state.beamCapacity) beams × \(state.lengthCapacity) positions; this generation needs \(parameters.beamWidth) × \(maxLength)")
        }
        guard maxLength > prompt.count else {
            throw ModelError.invalidInput("prompt of \(prompt.count) tokens leaves no room below max_length \(maxLength)")
        }
        return parameters.beamWidth == 1
            ? try greedy(prompt: prompt, maxLength: maxLength, state: state)
            : try beamSearch(prompt: prompt, maxLength: maxLength, state: state)
    }

    private var attentionFloats: Int { decoder.layerCount * decoder.headCount }

    /// Copies the captured cross-attention of beam `beam`'s last query row ([layers][rows][heads][enc]
    /// in the state, rows = beams × positions of the last forward call).
    private func attentionMap(_ state: DecoderState, beam: Int, beams: Int) -> [Float] {
        let heads = decoder.headCount, enc = state.encoderRows, rows = state.capturedRows
        let positions = rows / beams, row = beam * positions + positions - 1
        var map = [Float](repeating: 0, count: decoder.layerCount * heads * enc)
        map.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            for l in 0..<decoder.layerCount {
                (base + l * heads * enc).update(from: state.crossAttention.pointer + (l * rows + row) * heads * enc,
                                                count: heads * enc)
            }
        }
        return map
    }

    private func checkFinite(_ row: UnsafePointer<Float>, count: Int, step: Int) throws {
        for i in 0..<count where row[i].isNaN { throw ModelError.nonFiniteLogits(step: step) }
    }

    // MARK: greedy (transformers `_sample` with do_sample=False)

    private func greedy(prompt: [Int], maxLength: Int, state: DecoderState) throws -> [GeneratedSequence] {
        let vocab = decoder.vocabularySize, p = parameters
        let processors = LogitsProcessors(parameters: p, promptLength: prompt.count)
        var sequence = prompt
        var maps: [[Float]] = []
        var logProbSum: Float = 0
        state.reset()
        let logProbs = UnsafeMutablePointer<Float>.allocate(capacity: vocab)
        defer { logProbs.deallocate() }
        var input = prompt
        while sequence.count < maxLength {
            let logits = decoder.forward(tokens: input, state: state, allPositions: false,
                                         captureCrossAttention: p.captureAttention)
            try checkFinite(logits, count: vocab, step: sequence.count - prompt.count)
            if p.captureAttention { maps.append(attentionMap(state, beam: 0, beams: 1)) }
            processors.apply(logits, vocab: vocab, sequence: sequence)
            var best = 0
            for i in 1..<vocab where logits[i] > logits[best] { best = i }   // torch.argmax: first maximum
            Kernels.logSoftmax(logits, count: vocab, into: logProbs)
            logProbSum += logProbs[best]
            sequence.append(best)
            input = [best]
            if p.eosTokenIds.contains(best) { break }
        }
        let generated = Float(sequence.count - prompt.count)
        return [GeneratedSequence(tokens: sequence, promptLength: prompt.count,
                                  score: logProbSum / powf(generated, p.lengthPenalty), crossAttention: maps)]
    }

    // MARK: beam search (transformers 5 `_beam_search`, batch size 1)

    private struct Hypothesis {
        var tokens: [Int]
        var score: Float
        /// Index into the step map store for each generated token.
        var mapRefs: [Int]
    }

    /// Indices of the `k` largest values, largest first; ties keep the lower index first (torch.topk on CPU).
    private static func topK(_ values: [Float], _ k: Int) -> [Int] {
        Array(values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }.prefix(k))
    }

    private func beamSearch(prompt: [Int], maxLength: Int, state: DecoderState) throws -> [GeneratedSequence] {
        let p = parameters, beams = p.beamWidth, vocab = decoder.vocabularySize
        let promptLength = prompt.count
        let processors = LogitsProcessors(parameters: p, promptLength: promptLength)
        let keep = max(2, 1 + p.eosTokenIds.count) * beams
        precondition(state.beamCapacity >= beams, "decoder state holds fewer beams than num_beams")

        var running = [Hypothesis](repeating: Hypothesis(tokens: prompt, score: 0, mapRefs: []), count: beams)
        for b in 1..<beams { running[b].score = -1e9 }
        var finished = [Hypothesis](repeating: Hypothesis(tokens: [], score: -1e9, mapRefs: []), count: beams)
        var isFinished = [Bool](repeating: false, count: beams)
        var heuristicUnsatisfied = true
        var stepMaps: [[Float]] = []          // captured maps, referenced by hypotheses
        var curLength = promptLength

        // Candidate top-k over beams × vocab without sorting the whole product: keep the best `keep`
        // of each row (a candidate outside its row's top `keep` cannot be in the global top `keep`).
        let rowScores = UnsafeMutablePointer<Float>.allocate(capacity: beams * vocab)
        defer { rowScores.deallocate() }

        // The prompt is identical for every beam: run it once, then share its cache.
        state.reset()
        var logits = decoder.forward(tokens: prompt, state: state, allPositions: false,
                                     captureCrossAttention: p.captureAttention)
        var firstStep = true

        while true {
            let liveRows = firstStep ? 1 : beams
            try checkFinite(logits, count: liveRows * vocab, step: curLength - promptLength)
            var mapIndexOfRow = [Int](repeating: -1, count: beams)
            if p.captureAttention {
                for r in 0..<liveRows { mapIndexOfRow[r] = stepMaps.count; stepMaps.append(attentionMap(state, beam: r, beams: liveRows)) }
                if firstStep { for r in 1..<beams { mapIndexOfRow[r] = mapIndexOfRow[0] } }
            }
            // log_softmax, processors on log-probs, + running beam score.
            var candidates: [(score: Float, beam: Int, token: Int)] = []
            candidates.reserveCapacity(beams * keep)
            for b in 0..<beams {
                let row = rowScores + b * vocab
                Kernels.logSoftmax(logits + (firstStep ? 0 : b) * vocab, count: vocab, into: row)
                processors.apply(row, vocab: vocab, sequence: running[b].tokens)
                let base = running[b].score
                for i in 0..<vocab { row[i] += base }
                // partial selection of this row's best `keep`
                var best: [(Float, Int)] = []
                best.reserveCapacity(keep + 1)
                for i in 0..<vocab {
                    let v = row[i]
                    if best.count == keep, let last = best.last, !(v > last.0) { continue }
                    var j = best.count
                    while j > 0 && best[j - 1].0 < v { j -= 1 }
                    best.insert((v, i), at: j)
                    if best.count > keep { best.removeLast() }
                }
                for (v, i) in best { candidates.append((v, b, i)) }
            }
            // Global order: score descending, ties by flattened index (beam·V + token) ascending.
            candidates.sort { $0.score > $1.score || ($0.score == $1.score && ($0.beam, $0.token) < ($1.beam, $1.token)) }
            let top = Array(candidates.prefix(keep))
            let hitsStop = top.map { p.eosTokenIds.contains($0.token) || curLength + 1 >= maxLength }

            // Next running beams: best `beams` candidates that did not stop.
            let runningScores = top.indices.map { top[$0].score + (hitsStop[$0] ? -1e9 : 0) }
            let nextIdx = Self.topK(runningScores, beams)
            func hypothesis(_ k: Int) -> Hypothesis {
                let c = top[k]
                var h = running[c.beam]
                h.tokens.append(c.token)
                if p.captureAttention { h.mapRefs.append(mapIndexOfRow[c.beam]) }
                return h
            }
            let nextRunning = nextIdx.map { k -> Hypothesis in var h = hypothesis(k); h.score = runningScores[k]; return h }
            let parents = nextIdx.map { top[$0].beam }

            // Finished hypotheses: merge the previous ones with candidates that stopped among the first `beams`.
            let allFull = isFinished.allSatisfy { $0 } && p.earlyStopping == .stopWhenFull
            let norm = powf(Float(curLength + 1 - promptLength), p.lengthPenalty)
            var mergedScores = finished.map(\.score)
            var mergedFinished = isFinished
            for k in top.indices {
                let didFinish = hitsStop[k] && k < beams
                var s = top[k].score / norm
                if allFull { s += -1e9 }
                if !heuristicUnsatisfied { s += -1e9 }
                if !didFinish { s += -1e9 }
                mergedScores.append(s)
                mergedFinished.append(didFinish)
            }
            let finishedIdx = Self.topK(mergedScores, beams)
            finished = finishedIdx.map { i -> Hypothesis in
                if i < beams { return finished[i] }
                var h = hypothesis(i - beams); h.score = mergedScores[i]; return h
            }
            isFinished = finishedIdx.map { mergedFinished[$0] }
            running = nextRunning
            curLength += 1

            // _check_early_stop_heuristic
            let bestLength = (p.earlyStopping == .never && p.lengthPenalty > 0) ? maxLength - promptLength : curLength - promptLength
            let bestPossible = running[0].score / powf(Float(bestLength), p.lengthPenalty)
            let worstFinished = finished.map(\.score).min() ?? -1e9
            let improvable = isFinished.indices.contains { bestPossible > (isFinished[$0] ? worstFinished : -1e9) }
            heuristicUnsatisfied = heuristicUnsatisfied && improvable

            let openBeam = !(isFinished.allSatisfy { $0 } && p.earlyStopping == .stopWhenFull)
            let validContinuations = !hitsStop.allSatisfy { $0 }
            if !(heuristicUnsatisfied && openBeam && validContinuations) { break }

            // Advance every live beam one token as one batch.
            if firstStep { state.broadcastFirstBeam(to: beams); firstStep = false }
            state.reorder(parents: parents)
            logits = decoder.forward(tokens: running.map { $0.tokens[curLength - 1] }, state: state,
                                     allPositions: false, captureCrossAttention: p.captureAttention)
        }

        return finished.prefix(p.returnCount).map { h in
            GeneratedSequence(tokens: h.tokens, promptLength: promptLength, score: h.score,
                              crossAttention: h.mapRefs.map { stepMaps[$0] })
        }
    }
}
