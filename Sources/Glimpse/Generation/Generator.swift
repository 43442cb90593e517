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
/// (`_sample` without sampling, and the vectorized `_beam_search` of transformers 5), for one image.
/// `DecodeBatch` runs the same searches for several images with one decoder call per step.
public struct Generator {
    public let decoder: TextDecoder
    public let parameters: GenerationParameters

    public init(decoder: TextDecoder, parameters: GenerationParameters) {
        self.decoder = decoder
        self.parameters = parameters
    }

    /// Generates from `prompt` (decoder start + prompt tokens) for one image whose encoder K/V are in
    /// slot 0 of `state`.
    public func generate(prompt: [Int], state: DecoderState) throws -> [GeneratedSequence] {
        let search = try SequenceSearch(decoder: decoder, parameters: parameters, prompt: prompt, state: state, slot: 0)
        while !search.isDone {
            state.beginStep()
            search.schedule(into: state)
            let logits = decoder.forwardScheduled(state: state, allPositions: false, captureCrossAttention: parameters.captureAttention)
            try search.consume(logits: logits, state: state, segment: state.segments[0])
        }
        return try search.results()
    }
}

/// One image's greedy or beam search, advanced one decoder call at a time: `schedule` adds the
/// slot's next tokens to the state's step, the caller runs the decoder (alone or batched with other
/// slots), and `consume` reads the slot's logits rows and chooses the next tokens. The arithmetic
/// is the same whichever rows share the call.
final class SequenceSearch {
    let decoder: TextDecoder
    let parameters: GenerationParameters
    let promptLength: Int
    let maxLength: Int
    let slot: Int
    private let vocab: Int
    private let processors: LogitsProcessors
    private(set) var isDone = false
    private var firstStep = true
    /// Tokens of the next decoder call, row-major by beam (the prompt on the first call).
    private var nextTokens: [Int]

    // greedy state
    private var sequence: [Int] = []
    private var greedyMaps: [[Float]] = []
    private var logProbSum: Float = 0
    private var logProbs: UnsafeMutablePointer<Float>

    // beam state
    private struct Hypothesis {
        var tokens: [Int]
        var score: Float
        /// Index into the step map store for each generated token.
        var mapRefs: [Int]
    }
    private struct Candidate { var score: Float; var beam: Int; var token: Int }
    private var running: [Hypothesis] = []
    private var finished: [Hypothesis] = []
    /// The next step's running and finished lists are built here and swapped in: each running
    /// hypothesis owns token buffers reserved for the whole sequence, so a step allocates nothing
    /// (a hypothesis entering the finished list is copied once).
    private var spareRunning: [Hypothesis] = []
    private var spareFinished: [Hypothesis] = []
    private var isFinished: [Bool] = []
    private var heuristicUnsatisfied = true
    private var stepMaps: [[Float]] = []
    private var curLength: Int
    private let keep: Int
    /// Scratch reused at every step (sized once).
    private var candidates: [Candidate] = []
    private var rowBest: [Candidate] = []
    private var top: [Candidate] = []
    private var hitsStop: [Bool] = []
    private var runningScores: [Float] = []
    private var mergedScores: [Float] = []
    private var mergedFinished: [Bool] = []
    private var order: [Int] = []
    private var parents: [Int] = []
    private var mapIndexOfRow: [Int] = []

    /// Validates the request against the decoder and the state's capacity, and resets `slot`.
    init(decoder: TextDecoder, parameters p: GenerationParameters, prompt: [Int], state: DecoderState, slot: Int) throws {
        try p.validate()
        guard !prompt.isEmpty else { throw ModelError.invalidInput("empty decoder prompt") }
        let vocab = decoder.vocabularySize
        for t in prompt where t < 0 || t >= vocab {
            throw ModelError.invalidInput("prompt token id \(t) is outside the vocabulary (\(vocab))")
        }
        let maxLength = min(p.resolvedMaxLength(promptLength: prompt.count), decoder.maxPositions)
        guard state.lengthCapacity >= maxLength, state.beamCapacity >= p.beamWidth else {
            throw ModelError.invalidInput("decoder state holds \(state.beamCapacity) beams × \(state.lengthCapacity) positions; this generation needs \(p.beamWidth) × \(maxLength)")
        }
        guard maxLength > prompt.count else {
            throw ModelError.invalidInput("prompt of \(prompt.count) tokens leaves no room below max_length \(maxLength)")
        }
        precondition(slot >= 0 && slot < state.slotCapacity, "no such slot")
        self.decoder = decoder
        self.parameters = p
        self.promptLength = prompt.count
        self.maxLength = maxLength
        self.slot = slot
        self.vocab = vocab
        processors = LogitsProcessors(parameters: p, promptLength: prompt.count)
        curLength = prompt.count
        nextTokens = prompt
        let beams = p.beamWidth
        keep = max(2, 1 + p.eosTokenIds.count) * beams
        logProbs = .allocate(capacity: beams == 1 ? vocab : beams * vocab)
        if beams == 1 {
            sequence = prompt
            sequence.reserveCapacity(maxLength)
        } else {
            func reserved(score: Float) -> Hypothesis {
                var tokens = prompt, refs: [Int] = []
                tokens.reserveCapacity(maxLength)
                refs.reserveCapacity(p.captureAttention ? maxLength : 0)
                return Hypothesis(tokens: tokens, score: score, mapRefs: refs)
            }
            running = (0..<beams).map { reserved(score: $0 == 0 ? 0 : -1e9) }
            spareRunning = (0..<beams).map { _ in reserved(score: 0) }
            finished = [Hypothesis](repeating: Hypothesis(tokens: [], score: -1e9, mapRefs: []), count: beams)
            spareFinished = finished
            isFinished = [Bool](repeating: false, count: beams)
            candidates.reserveCapacity(beams * keep)
            rowBest.reserveCapacity(keep + 1)
            top.reserveCapacity(keep)
            hitsStop.reserveCapacity(keep)
            runningScores.reserveCapacity(keep)
            mergedScores.reserveCapacity(beams + keep)
            mergedFinished.reserveCapacity(beams + keep)
            order.reserveCapacity(beams + keep)
            parents.reserveCapacity(beams)
            mapIndexOfRow = [Int](repeating: -1, count: beams)
            nextTokens.reserveCapacity(max(beams, prompt.count))
        }
        // The prompt is identical for every beam: it runs once as one beam, then its cache is shared.
        state.reset(slot: slot)
    }

    deinit { logProbs.deallocate() }

    /// Adds this search's next tokens to the state's step.
    func schedule(into state: DecoderState) {
        precondition(!isDone, "search already finished")
        // The prompt runs once as one beam; then every running beam (greedy: one) advances one token.
        let steps = firstStep ? promptLength : 1
        let beams = firstStep || parameters.beamWidth == 1 ? 1 : running.count
        state.schedule(slot: slot, beams: beams, steps: steps) { $0.append(contentsOf: nextTokens) }
    }

    /// Reads this search's logits rows (`segment` of the last call; rows of its beams from
    /// `logits`, which already points at the segment's first output row) and advances the search.
    func consume(logits: UnsafeMutablePointer<Float>, state: DecoderState, segment: DecoderState.Segment) throws {
        if parameters.beamWidth == 1 {
            try greedyStep(logits, state: state, segment: segment)
        } else {
            try beamStep(logits, state: state, segment: segment)
        }
    }

    /// The returned hypotheses, best first (after `isDone`).
    func results() throws -> [GeneratedSequence] {
        if parameters.beamWidth == 1 {
            let generated = Float(sequence.count - promptLength)
            return [GeneratedSequence(tokens: sequence, promptLength: promptLength,
                                      score: logProbSum / powf(generated, parameters.lengthPenalty), crossAttention: greedyMaps)]
        }
        // Beam search keeps its -1e9 placeholders when fewer hypotheses than asked for ever finished
        // (a strongly negative length_penalty stops the search first; transformers then returns
        // sequences scored -1e9 too). That is no caption: say why instead of returning an empty one.
        let kept = finished.prefix(parameters.returnCount)
        if let i = kept.firstIndex(where: { $0.tokens.count < promptLength || $0.score <= -1e9 }) {
            throw ModelError.invalidInput("beam search finished \(i) of the \(kept.count) requested hypotheses "
                + "(length_penalty \(parameters.lengthPenalty) stopped it before any more ended); use a length_penalty nearer 0 or fewer --n-best")
        }
        return kept.map { h in
            GeneratedSequence(tokens: h.tokens, promptLength: promptLength, score: h.score,
                              crossAttention: h.mapRefs.map { stepMaps[$0] })
        }
    }

    /// Copies the captured cross-attention of beam `beam`'s last query row of `segment`
    /// ([layers][rows][heads][enc] in the state, rows = every row of the last forward call).
    private func attentionMap(_ state: DecoderState, segment: DecoderState.Segment, beam: Int) -> [Float] {
        let heads = decoder.headCount, enc = state.encoderRows, rows = state.capturedRows
        let row = segment.firstRow + beam * segment.steps + segment.steps - 1
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

    private func greedyStep(_ logits: UnsafeMutablePointer<Float>, state: DecoderState, segment: DecoderState.Segment) throws {
        let p = parameters
        firstStep = false
        try checkFinite(logits, count: vocab, step: sequence.count - promptLength)
        if p.captureAttention { greedyMaps.append(attentionMap(state, segment: segment, beam: 0)) }
        processors.apply(logits, vocab: vocab, sequence: sequence)
        var best = 0
        for i in 1..<vocab where logits[i] > logits[best] { best = i }   // torch.argmax: first maximum
        Kernels.logSoftmax(logits, count: vocab, into: logProbs)
        logProbSum += logProbs[best]
        sequence.append(best)
        nextTokens.removeAll(keepingCapacity: true)
        nextTokens.append(best)
        if p.eosTokenIds.contains(best) || sequence.count >= maxLength { isDone = true }
    }

    // MARK: beam search (transformers 5 `_beam_search`, batch size 1)

    /// Indices of the `k` largest of `values`, largest first, into `out`; ties keep the lower index
    /// first (torch.topk on CPU).
    private static func topK(_ values: [Float], _ k: Int, into out: inout [Int]) {
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: values.indices)
        out.sort { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }
        out.removeLast(max(0, out.count - k))
    }

    private func hypothesis(_ k: Int) -> Hypothesis {
        let c = top[k]
        var h = running[c.beam]
        h.tokens.append(c.token)
        if parameters.captureAttention { h.mapRefs.append(mapIndexOfRow[c.beam]) }
        return h
    }

    private func beamStep(_ logits: UnsafeMutablePointer<Float>, state: DecoderState, segment: DecoderState.Segment) throws {
        let p = parameters, beams = p.beamWidth, keep = keep
        let wasFirst = firstStep
        let liveRows = wasFirst ? 1 : beams
        try checkFinite(logits, count: liveRows * vocab, step: curLength - promptLength)
        for r in 0..<beams { mapIndexOfRow[r] = -1 }
        if p.captureAttention {
            for r in 0..<liveRows { mapIndexOfRow[r] = stepMaps.count; stepMaps.append(attentionMap(state, segment: segment, beam: r)) }
            if wasFirst { for r in 1..<beams { mapIndexOfRow[r] = mapIndexOfRow[0] } }
        }
        // log_softmax, processors on log-probs, + running beam score.
        // Candidate top-k over beams × vocab without sorting the whole product: keep the best `keep`
        // of each row (a candidate outside its row's top `keep` cannot be in the global top `keep`).
        candidates.removeAll(keepingCapacity: true)
        for b in 0..<beams {
            let row = logProbs + b * vocab
            Kernels.logSoftmax(logits + (wasFirst ? 0 : b) * vocab, count: vocab, into: row)
            processors.apply(row, vocab: vocab, sequence: running[b].tokens)
            let base = running[b].score
            // + running score and partial selection of this row's best `keep`, in one pass
            rowBest.removeAll(keepingCapacity: true)
            for i in 0..<vocab {
                let v = row[i] + base
                row[i] = v
                if rowBest.count == keep, let last = rowBest.last, !(v > last.score) { continue }
                var j = rowBest.count
                while j > 0 && rowBest[j - 1].score < v { j -= 1 }
                rowBest.insert(Candidate(score: v, beam: b, token: i), at: j)
                if rowBest.count > keep { rowBest.removeLast() }
            }
            candidates.append(contentsOf: rowBest)
        }
        // Global order: score descending, ties by flattened index (beam·V + token) ascending.
        candidates.sort { $0.score > $1.score || ($0.score == $1.score && ($0.beam, $0.token) < ($1.beam, $1.token)) }
        top.removeAll(keepingCapacity: true)
        top.append(contentsOf: candidates.prefix(keep))
        hitsStop.removeAll(keepingCapacity: true)
        for c in top { hitsStop.append(p.eosTokenIds.contains(c.token) || curLength + 1 >= maxLength) }

        // Next running beams: best `beams` candidates that did not stop.
        runningScores.removeAll(keepingCapacity: true)
        for k in top.indices { runningScores.append(top[k].score + (hitsStop[k] ? -1e9 : 0)) }
        Self.topK(runningScores, beams, into: &order)
        parents.removeAll(keepingCapacity: true)
        for (j, k) in order.enumerated() {
            let c = top[k]
            spareRunning[j].tokens.removeAll(keepingCapacity: true)
            spareRunning[j].tokens.append(contentsOf: running[c.beam].tokens)
            spareRunning[j].tokens.append(c.token)
            spareRunning[j].mapRefs.removeAll(keepingCapacity: true)
            if p.captureAttention {
                spareRunning[j].mapRefs.append(contentsOf: running[c.beam].mapRefs)
                spareRunning[j].mapRefs.append(mapIndexOfRow[c.beam])
            }
            spareRunning[j].score = runningScores[k]
            parents.append(c.beam)
        }

        // Finished hypotheses: merge the previous ones with candidates that stopped among the first `beams`.
        let allFull = isFinished.allSatisfy { $0 } && p.earlyStopping == .stopWhenFull
        let norm = powf(Float(curLength + 1 - promptLength), p.lengthPenalty)
        mergedScores.removeAll(keepingCapacity: true)
        mergedFinished.removeAll(keepingCapacity: true)
        for h in finished { mergedScores.append(h.score) }
        mergedFinished.append(contentsOf: isFinished)
        for k in top.indices {
            let didFinish = hitsStop[k] && k < beams
            var s = top[k].score / norm
            if allFull { s += -1e9 }
            if !heuristicUnsatisfied { s += -1e9 }
            if !didFinish { s += -1e9 }
            mergedScores.append(s)
            mergedFinished.append(didFinish)
        }
        Self.topK(mergedScores, beams, into: &order)
        // Only a stopped candidate that enters the finished list builds a new hypothesis.
        for (slotIndex, i) in order.enumerated() {
            if i < beams {
                spareFinished[slotIndex] = finished[i]
            } else {
                var h = hypothesis(i - beams); h.score = mergedScores[i]
                spareFinished[slotIndex] = h
            }
            isFinished[slotIndex] = mergedFinished[i]
        }
        swap(&finished, &spareFinished)
        swap(&running, &spareRunning)
        curLength += 1
        firstStep = false

        // _check_early_stop_heuristic
        let bestLength = (p.earlyStopping == .never && p.lengthPenalty > 0) ? maxLength - promptLength : curLength - promptLength
        let bestPossible = running[0].score / powf(Float(bestLength), p.lengthPenalty)
        var worstFinished = finished[0].score
        for h in finished { worstFinished = min(worstFinished, h.score) }
        let improvable = isFinished.contains { bestPossible > ($0 ? worstFinished : -1e9) }
        heuristicUnsatisfied = heuristicUnsatisfied && improvable

        let openBeam = !(isFinished.allSatisfy { $0 } && p.earlyStopping == .stopWhenFull)
        let validContinuations = !hitsStop.allSatisfy { $0 }
        if !(heuristicUnsatisfied && openBeam && validContinuations) { isDone = true; return }

        // Advance every live beam one token as one batch.
        if wasFirst { state.broadcastFirstBeam(to: beams, slot: slot) }
        state.reorder(parents: parents, slot: slot)
        nextTokens.removeAll(keepingCapacity: true)
        for h in running { nextTokens.append(h.tokens[curLength - 1]) }
    }
}
