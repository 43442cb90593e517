import Foundation

/// Mutable decoding state, apart from the immutable model (whisper.cpp's split), for up to
/// `slotCapacity` images decoded together (continuous batching: an image takes a free slot at a
/// step boundary and gives it back when its search ends). Per slot: self-attention KV caches for
/// every live beam, the encoder's cross-attention K/V (computed once per image per layer and shared
/// by all its beams) and cached length. Scratch buffers are shared by all slots and reused at every
/// step; everything a step needs is allocated here, never in the step. The state keeps its own books:
/// a step is `beginStep`, `schedule` per slot (its beam count given by the search that owns it), the
/// decoder's layers, then `endStep` (called by `TextDecoder.forwardScheduled`, not by each decoder).
public final class DecoderState {
    let layers: Int
    let width: Int                 // decoder hidden size E
    public let beamCapacity: Int
    public let lengthCapacity: Int
    public let slotCapacity: Int
    /// Positions already cached in each slot (the same for all its beams).
    var slotLength: [Int]

    /// keys[l], values[l]: [slotCapacity · beamCapacity, lengthCapacity, E]
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]
    /// crossKeyValues[slot · layers + l]: [encoderRows, 2E] — K in columns 0..<E, V in E..<2E.
    var crossKeyValues: [Scratch]
    var encoderRows = 0

    /// One slot's rows in the next forward call: `beams` × `steps` new positions from `start`,
    /// tokens row-major by beam at `stepTokens[firstRow...]`, hidden rows `firstRow...`.
    struct Segment {
        var slot: Int
        var beams: Int
        var steps: Int
        var start: Int
        var firstRow: Int
        var rows: Int { beams * steps }
    }
    /// The next forward call's schedule (capacity reserved once: appending never allocates).
    var segments: [Segment] = []
    var stepTokens: [Int] = []
    var scheduledRows = 0

    // Scratch reused across steps.
    let hidden = Scratch(), normed = Scratch(), qkv = Scratch(), context = Scratch()
    let mlp = Scratch(), scores = Scratch(), logits = Scratch(), gather = Scratch()
    /// Cross-attention probabilities of the last forward call: [layers, rows, heads, encoderRows]
    /// where rows = every scheduled row of that call (filled when capture is on).
    let crossAttention = Scratch()
    public internal(set) var capturedRows = 0
    /// Beam bookkeeping for `reorder` (no allocation per step).
    private let sourceSlot: UnsafeMutablePointer<Int>

    init(layers: Int, width: Int, beamCapacity: Int, lengthCapacity: Int, slotCapacity: Int = 1) {
        precondition(beamCapacity >= 1 && lengthCapacity >= 1 && slotCapacity >= 1)
        self.layers = layers
        self.width = width
        self.beamCapacity = beamCapacity
        self.lengthCapacity = lengthCapacity
        self.slotCapacity = slotCapacity
        slotLength = [Int](repeating: 0, count: slotCapacity)
        // Left unwritten: a cache row is written before any attention reads it, and zeroing the whole
        // capacity up front (every slot, beam and position) cost a one-image caption 8% of its time in
        // page faults; untouched pages now cost nothing.
        let size = slotCapacity * beamCapacity * lengthCapacity * width
        keys = (0..<layers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: size) }
        values = (0..<layers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: size) }
        crossKeyValues = (0..<(slotCapacity * layers)).map { _ in Scratch() }
        segments.reserveCapacity(slotCapacity)
        stepTokens.reserveCapacity(slotCapacity * beamCapacity * lengthCapacity)
        sourceSlot = .allocate(capacity: beamCapacity)
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
        sourceSlot.deallocate()
    }

    /// Bytes one slot's caches take: self K/V for every beam and position plus the cross K/V.
    static func bytesPerSlot(layers: Int, width: Int, beamCapacity: Int, lengthCapacity: Int, encoderRows: Int) -> Int {
        4 * layers * width * (2 * beamCapacity * lengthCapacity + 2 * encoderRows)
    }

    /// Positions cached in slot 0 (the single-image API).
    public internal(set) var length: Int {
        get { slotLength[0] }
        set { slotLength[0] = newValue }
    }

    /// Start of beam `b`'s cache rows in layer `l` of `slot`.
    @inline(__always) func keyRows(_ l: Int, beam b: Int, slot: Int = 0) -> UnsafeMutablePointer<Float> {
        keys[l] + (slot * beamCapacity + b) * lengthCapacity * width
    }
    @inline(__always) func valueRows(_ l: Int, beam b: Int, slot: Int = 0) -> UnsafeMutablePointer<Float> {
        values[l] + (slot * beamCapacity + b) * lengthCapacity * width
    }
    @inline(__always) func crossKeyValue(layer l: Int, slot: Int) -> Scratch { crossKeyValues[slot * layers + l] }

    /// Clears a slot's caches for a new sequence (its encoder K/V stay until the next image).
    public func reset(slot: Int = 0) {
        slotLength[slot] = 0
    }

    /// Starts a step: empties the schedule of the next forward call.
    func beginStep() {
        segments.removeAll(keepingCapacity: true)
        stepTokens.removeAll(keepingCapacity: true)
        scheduledRows = 0
    }

    /// Adds `slot`'s rows to the next forward call: its `beams` live beams × `steps` new positions,
    /// whose tokens (row-major by beam) `write` appends to `stepTokens`. Returns the segment's index.
    @discardableResult
    func schedule(slot: Int, beams: Int, steps: Int, _ write: (inout [Int]) -> Void) -> Int {
        let before = stepTokens.count
        write(&stepTokens)
        precondition(beams >= 1 && beams <= beamCapacity, "beams outside 1...beamCapacity")
        precondition(stepTokens.count - before == beams * steps, "tokens must be beams × positions")
        precondition(slotLength[slot] + steps <= lengthCapacity, "sequence longer than the cache")
        segments.append(Segment(slot: slot, beams: beams, steps: steps, start: slotLength[slot], firstRow: scheduledRows))
        scheduledRows += beams * steps
        return segments.count - 1
    }

    /// Beam reordering after a search step: new beam i of `slot` continues old beam `parents[i]`.
    /// Only the beams whose parent changed are rewritten, from a snapshot of the sources they need,
    /// so a beam that keeps its history costs nothing.
    public func reorder(parents: [Int], slot: Int = 0) {
        precondition(parents.count <= beamCapacity)
        let rowFloats = slotLength[slot] * width
        // sourceSlot[s]: where old beam s is snapshotted (-1: not needed).
        var sources = 0
        for s in 0..<beamCapacity { sourceSlot[s] = -1 }
        for i in parents.indices where parents[i] != i && sourceSlot[parents[i]] < 0 {
            sourceSlot[parents[i]] = sources
            sources += 1
        }
        if sources > 0 && rowFloats > 0 {
            let buffer = gather.reserve(sources * rowFloats * 2)
            for l in 0..<layers {
                for s in 0..<beamCapacity where sourceSlot[s] >= 0 {
                    let j = sourceSlot[s]
                    (buffer + (2 * j) * rowFloats).update(from: keyRows(l, beam: s, slot: slot), count: rowFloats)
                    (buffer + (2 * j + 1) * rowFloats).update(from: valueRows(l, beam: s, slot: slot), count: rowFloats)
                }
                for i in parents.indices where parents[i] != i {
                    let j = sourceSlot[parents[i]]
                    keyRows(l, beam: i, slot: slot).update(from: buffer + (2 * j) * rowFloats, count: rowFloats)
                    valueRows(l, beam: i, slot: slot).update(from: buffer + (2 * j + 1) * rowFloats, count: rowFloats)
                }
            }
        }
    }

    /// Copies beam 0's cache of `slot` to beams 1..<count (after a shared prompt was run once).
    func broadcastFirstBeam(to count: Int, slot: Int = 0) {
        precondition(count <= beamCapacity)
        let rowFloats = slotLength[slot] * width
        for l in 0..<layers {
            for b in 1..<max(count, 1) {
                keyRows(l, beam: b, slot: slot).update(from: keyRows(l, beam: 0, slot: slot), count: rowFloats)
                valueRows(l, beam: b, slot: slot).update(from: valueRows(l, beam: 0, slot: slot), count: rowFloats)
            }
        }
    }
}

/// What generation needs from a text decoder of any family (GPT-2, BLIP's BERT decoder).
public protocol TextDecoder: AnyObject, Sendable {
    var vocabularySize: Int { get }
    var layerCount: Int { get }
    var headCount: Int { get }
    var maxPositions: Int { get }
    /// Hidden size E (the width of every cached key and value row).
    var hiddenSize: Int { get }
    /// Bytes of weights one decoding step reads (every per-token matrix + the LM head): the
    /// step's memory-bandwidth floor is this over the machine's copy bandwidth.
    var stepWeightBytes: Int { get }

    /// Computes every layer's cross-attention K/V of `slot` from one image's encoder states [rows, encoderWidth].
    func setEncoderStates(_ states: UnsafePointer<Float>, rows: Int, state: DecoderState, slot: Int)
    /// The layers over the rows scheduled in `state`, called by `forwardScheduled` (which keeps the
    /// state's books): writes their K/V at each slot's cached length and returns the logits rows.
    func logits(state: DecoderState, allPositions: Bool, captureCrossAttention: Bool) -> UnsafeMutablePointer<Float>
}

extension TextDecoder {
    public var stepWeightBytes: Int { 0 }

    /// A decoding state for `slotCapacity` images of up to `beamCapacity` beams × `lengthCapacity` positions.
    public func makeState(beamCapacity: Int, lengthCapacity: Int, slotCapacity: Int = 1) -> DecoderState {
        DecoderState(layers: layerCount, width: hiddenSize, beamCapacity: beamCapacity,
                     lengthCapacity: min(lengthCapacity, maxPositions), slotCapacity: slotCapacity)
    }

    /// One image's cross-attention K/V into slot 0 (the single-image API).
    public func setEncoderStates(_ states: UnsafePointer<Float>, rows: Int, state: DecoderState) {
        setEncoderStates(states, rows: rows, state: state, slot: 0)
    }

    /// Runs the rows scheduled in `state` (`DecoderState.schedule`: per slot, its beams × new positions
    /// from the slot's cached length; rows of all slots concatenated in schedule order), appends their K/V
    /// to each slot's caches and returns logits: of each beam's last position, [Σ beams, V] in schedule
    /// order, or of every row [Σ rows, V] when `allPositions`. Every weight matrix is read once for all rows;
    /// attention stays within each slot (self-attention per beam, cross-attention over the slot's image).
    /// When `captureCrossAttention`, the cross-attention probabilities of every row are stored in the state.
    public func forwardScheduled(state: DecoderState, allPositions: Bool, captureCrossAttention: Bool) -> UnsafeMutablePointer<Float> {
        let out = BLAS.batchInvariant { logits(state: state, allPositions: allPositions, captureCrossAttention: captureCrossAttention) }
        state.endStep(capture: captureCrossAttention)
        return out
    }

    /// Runs `tokens` ([beams × newPositions], row-major by beam) of slot 0 at positions
    /// state.length...: the single-image form of `forwardScheduled`.
    public func forward(tokens: [Int], beams: Int = 1, state: DecoderState, allPositions: Bool,
                        captureCrossAttention: Bool) -> UnsafeMutablePointer<Float> {
        precondition(beams > 0 && tokens.count % beams == 0, "tokens must be beams × positions")
        state.beginStep()
        state.schedule(slot: 0, beams: beams, steps: tokens.count / beams) { $0.append(contentsOf: tokens) }
        return forwardScheduled(state: state, allPositions: allPositions, captureCrossAttention: captureCrossAttention)
    }
}

// MARK: attention over the state's caches (shared by every decoder family)

extension DecoderState {
    /// Token + absolute position embeddings of the scheduled tokens into `out` [rows, E]
    /// (torch: inputs_embeds * scale + position_embeds with position_ids = arange(past, past + steps)
    /// + positionOffset, per slot). BART's learned positions start at row 2 (`offset = 2`) and its
    /// token embeddings may be scaled by sqrt(d_model) (`scale_embedding`); GPT-2 and BERT use neither.
    func embed(tokenTable: Tensor, positionTable: Tensor, positionOffset: Int = 0, scale: Float = 1,
               into out: UnsafeMutablePointer<Float>) {
        for segment in segments {
            for r in 0..<segment.rows {
                let row = segment.firstRow + r, x = out + row * width
                Kernels.embeddingRow(tokenTable.data, index: stepTokens[row], dim: width, into: x)
                if scale != 1 { for i in 0..<width { x[i] *= scale } }
                Kernels.add(x, positionTable.data + (positionOffset + segment.start + r % segment.steps) * width, count: width)
            }
        }
    }

    /// Causal self-attention of layer `layer` with KV caching: appends each beam's new K/V (from the
    /// fused [rows, 3E] `qkv` buffer: Q | K | V) to its slot's cache and attends over its whole history.
    func cachedSelfAttention(layer: Int, qkv: UnsafeMutablePointer<Float>, heads: Int, scale: Float,
                             scores: UnsafeMutablePointer<Float>, into context: UnsafeMutablePointer<Float>) {
        let e = width
        for segment in segments {
            let steps = segment.steps, start = segment.start
            for b in 0..<segment.beams {
                let keys = keyRows(layer, beam: b, slot: segment.slot), values = valueRows(layer, beam: b, slot: segment.slot)
                let first = segment.firstRow + b * steps
                for s in 0..<steps {
                    let src = qkv + (first + s) * 3 * e
                    (keys + (start + s) * e).update(from: src + e, count: e)
                    (values + (start + s) * e).update(from: src + 2 * e, count: e)
                }
                Attention.attend(.init(query: qkv + first * 3 * e, queryStride: 3 * e,
                                       key: keys, keyStride: e, value: values, valueStride: e,
                                       queryRows: steps, keyRows: start + steps,
                                       heads: heads, headDim: e / heads, scale: scale, causalOffset: start),
                                 into: context + first * e, outStride: e, scores: scores)
            }
        }
    }

    /// Cross-attention of layer `layer` over each slot's image K/V (computed once per image, shared by
    /// all its beams, so each head is one product over the slot's rows). With `capture`, the
    /// probabilities are stored as [layer][rows][heads][encoderRows] in `crossAttention`.
    func cachedCrossAttention(layer: Int, query: UnsafePointer<Float>, heads: Int, scale: Float,
                              scores: UnsafeMutablePointer<Float>, capture: Bool,
                              into context: UnsafeMutablePointer<Float>) {
        let e = width, enc = encoderRows, total = scheduledRows
        for segment in segments {
            let rows = segment.rows, first = segment.firstRow
            let perHead = capture ? gather.reserve(heads * rows * enc) : nil
            let kv = crossKeyValue(layer: layer, slot: segment.slot).pointer
            Attention.attend(.init(query: query + first * e, queryStride: e, key: kv, keyStride: 2 * e,
                                   value: kv + e, valueStride: 2 * e, queryRows: rows, keyRows: enc,
                                   heads: heads, headDim: e / heads, scale: scale, causalOffset: nil),
                             into: context + first * e, outStride: e, scores: scores, weights: perHead)
            guard let perHead else { continue }
            // [heads, rows, enc] -> [layer][row][heads][enc]
            let layerBase = crossAttention.pointer + layer * total * heads * enc
            for h in 0..<heads {
                for r in 0..<rows {
                    (layerBase + ((first + r) * heads + h) * enc).update(from: perHead + (h * rows + r) * enc, count: enc)
                }
            }
        }
    }

    /// The scratch of one forward call, sized by `prepareStep` for the scheduled rows.
    struct StepBuffers {
        let hidden, normed, qkv, context, mlp, scores: UnsafeMutablePointer<Float>
    }

    /// Reserves the scratch the scheduled forward call needs (`inner`: the MLP width).
    func prepareStep(layers: Int, heads: Int, inner: Int, capture: Bool) -> StepBuffers {
        precondition(!segments.isEmpty, "nothing scheduled")
        let rows = scheduledRows
        if capture { crossAttention.reserve(layers * rows * heads * encoderRows) }
        var scoreFloats = 0
        for s in segments {
            scoreFloats = max(scoreFloats,
                              Attention.scoreFloats(queryRows: s.steps, keyRows: s.start + s.steps, headDim: width / heads, heads: heads),
                              Attention.scoreFloats(queryRows: s.rows, keyRows: encoderRows, headDim: width / heads, heads: heads))
        }
        return StepBuffers(hidden: hidden.reserve(rows * width), normed: normed.reserve(rows * width),
                           qkv: qkv.reserve(rows * 3 * width), context: context.reserve(rows * width),
                           mlp: mlp.reserve(rows * inner), scores: scores.reserve(scoreFloats))
    }

    /// Ends a step after the decoder's layers ran: each scheduled slot has `steps` more cached
    /// positions, and the captured cross-attention holds this call's rows (none without capture).
    func endStep(capture: Bool) {
        for s in segments { slotLength[s.slot] = s.start + s.steps }
        capturedRows = capture ? scheduledRows : 0
    }

    /// The hidden row whose logits generation needs for output row `r` (each beam's last position,
    /// or every row when `allPositions`), and the number of output rows.
    var outputRowCount: Int { segments.reduce(0) { $0 + $1.beams } }
    func forEachOutputRow(allPositions: Bool, _ body: (_ outRow: Int, _ hiddenRow: Int) -> Void) {
        if allPositions { for r in 0..<scheduledRows { body(r, r) }; return }
        var out = 0
        for s in segments {
            for b in 0..<s.beams { body(out, s.firstRow + b * s.steps + s.steps - 1); out += 1 }
        }
    }

    /// Copies those hidden rows ([scheduledRows, width]) packed into `out`; returns how many.
    func gatherOutputRows(_ hidden: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, allPositions: Bool) -> Int {
        let e = width
        forEachOutputRow(allPositions: allPositions) { o, r in (out + o * e).update(from: hidden + r * e, count: e) }
        return allPositions ? scheduledRows : outputRowCount
    }
}
