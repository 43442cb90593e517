import Foundation

/// Mutable per-image decoding state, apart from the immutable model (whisper.cpp's split):
/// self-attention KV caches for every live beam, the encoder's cross-attention K/V (computed once
/// per image per layer and shared by all beams), and scratch buffers reused at every step.
public final class DecoderState {
    let layers: Int
    let width: Int                 // decoder hidden size E
    let beamCapacity: Int
    let lengthCapacity: Int
    /// Number of positions already cached (the same for all beams).
    public internal(set) var length = 0
    /// Live beams in the current batch.
    public internal(set) var beams = 1

    /// keys[l], values[l]: [beamCapacity, lengthCapacity, E]
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]
    /// crossKeyValues[l]: [encoderRows, 2E] — K in columns 0..<E, V in E..<2E.
    var crossKeyValues: [Scratch]
    var encoderRows = 0

    // Scratch reused across steps.
    let hidden = Scratch(), normed = Scratch(), qkv = Scratch(), context = Scratch()
    let mlp = Scratch(), scores = Scratch(), logits = Scratch(), gather = Scratch()
    /// Cross-attention probabilities of the last forward call: [layers, rows, heads, encoderRows]
    /// where rows = beams × new positions (filled when capture is on).
    let crossAttention = Scratch()
    public internal(set) var capturedRows = 0

    init(layers: Int, width: Int, beamCapacity: Int, lengthCapacity: Int) {
        self.layers = layers
        self.width = width
        self.beamCapacity = beamCapacity
        self.lengthCapacity = lengthCapacity
        let size = beamCapacity * lengthCapacity * width
        keys = (0..<layers).map { _ in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: size); p.initialize(repeating: 0, count: size); return p
        }
        values = (0..<layers).map { _ in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: size); p.initialize(repeating: 0, count: size); return p
        }
        crossKeyValues = (0..<layers).map { _ in Scratch() }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Start of beam `b`'s cache rows in layer `l`.
    @inline(__always) func keyRows(_ l: Int, beam b: Int) -> UnsafeMutablePointer<Float> { keys[l] + b * lengthCapacity * width }
    @inline(__always) func valueRows(_ l: Int, beam b: Int) -> UnsafeMutablePointer<Float> { values[l] + b * lengthCapacity * width }

    /// Clears the caches for a new sequence (the encoder K/V stay until the next image).
    public func reset() {
        length = 0
        beams = 1
    }

    /// Beam reordering after a search step: new beam i continues old beam `parents[i]`.
    /// Only the beams whose parent changed are rewritten, from a snapshot of the sources they need,
    /// so a beam that keeps its history costs nothing.
    public func reorder(parents: [Int]) {
        precondition(parents.count <= beamCapacity)
        let rowFloats = length * width
        let moved = parents.indices.filter { parents[$0] != $0 }
        if !moved.isEmpty && rowFloats > 0 {
            let sources = Array(Set(moved.map { parents[$0] })).sorted()
            let slot = Dictionary(uniqueKeysWithValues: sources.enumerated().map { ($1, $0) })
            let buffer = gather.reserve(sources.count * rowFloats * 2)
            for l in 0..<layers {
                for (j, s) in sources.enumerated() {
                    (buffer + (2 * j) * rowFloats).update(from: keyRows(l, beam: s), count: rowFloats)
                    (buffer + (2 * j + 1) * rowFloats).update(from: valueRows(l, beam: s), count: rowFloats)
                }
                for i in moved {
                    guard let j = slot[parents[i]] else { continue }
                    keyRows(l, beam: i).update(from: buffer + (2 * j) * rowFloats, count: rowFloats)
                    valueRows(l, beam: i).update(from: buffer + (2 * j + 1) * rowFloats, count: rowFloats)
                }
            }
        }
        beams = parents.count
    }

    /// Copies beam 0's cache to beams 1..<count (after a shared prompt was run once).
    func broadcastFirstBeam(to count: Int) {
        precondition(count <= beamCapacity)
        let rowFloats = length * width
        for l in 0..<layers {
            for b in 1..<max(count, 1) {
                keyRows(l, beam: b).update(from: keyRows(l, beam: 0), count: rowFloats)
                valueRows(l, beam: b).update(from: valueRows(l, beam: 0), count: rowFloats)
            }
        }
        beams = count
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

    func makeState(beamCapacity: Int, lengthCapacity: Int) -> DecoderState
    /// Computes every layer's cross-attention K/V from one image's encoder states [rows, encoderWidth].
    func setEncoderStates(_ states: UnsafePointer<Float>, rows: Int, state: DecoderState)
    /// Runs `tokens` ([state.beams × newPositions], row-major by beam) at positions state.length...,
    /// appends their K/V to the caches and returns logits: of each beam's last position [beams, V],
    /// or of every position [beams × newPositions, V] when `allPositions`.
    /// When `captureCrossAttention`, the cross-attention probabilities are stored in the state.
    func forward(tokens: [Int], state: DecoderState, allPositions: Bool, captureCrossAttention: Bool) -> UnsafeMutablePointer<Float>
}

extension TextDecoder {
    public var stepWeightBytes: Int { 0 }
}

// MARK: attention over the state's caches (shared by every decoder family)

extension DecoderState {
    /// Positions of the current forward call: `rows` = beams × `steps` new positions from `length`.
    struct StepShape {
        let beams: Int
        let steps: Int
        let start: Int
        var rows: Int { beams * steps }
    }

    /// Token + absolute position embeddings of `tokens` into `out` [rows, E]
    /// (torch: inputs_embeds + position_embeds with position_ids = arange(past, past + steps)).
    func embed(_ tokens: [Int], shape: StepShape, tokenTable: Tensor, positionTable: Tensor,
               into out: UnsafeMutablePointer<Float>) {
        for r in 0..<shape.rows {
            Kernels.embeddingRow(tokenTable.data, index: tokens[r], dim: width, into: out + r * width)
            Kernels.add(out + r * width, positionTable.data + (shape.start + r % shape.steps) * width, count: width)
        }
    }

    /// Causal self-attention of layer `layer` with KV caching: appends each beam's new K/V (from the
    /// fused [rows, 3E] `qkv` buffer: Q | K | V) to its cache and attends over its whole history.
    func cachedSelfAttention(layer: Int, qkv: UnsafeMutablePointer<Float>, shape: StepShape, heads: Int, scale: Float,
                             scores: UnsafeMutablePointer<Float>, into context: UnsafeMutablePointer<Float>) {
        let e = width, steps = shape.steps, start = shape.start
        for b in 0..<shape.beams {
            let keys = keyRows(layer, beam: b), values = valueRows(layer, beam: b)
            for s in 0..<steps {
                let src = qkv + (b * steps + s) * 3 * e
                (keys + (start + s) * e).update(from: src + e, count: e)
                (values + (start + s) * e).update(from: src + 2 * e, count: e)
            }
            Attention.attend(.init(query: qkv + b * steps * 3 * e, queryStride: 3 * e,
                                   key: keys, keyStride: e, value: values, valueStride: e,
                                   queryRows: steps, keyRows: start + steps,
                                   heads: heads, headDim: e / heads, scale: scale, causalOffset: start),
                             into: context + b * steps * e, outStride: e, scores: scores)
        }
    }

    /// Cross-attention of layer `layer` over the image's K/V (computed once per image, shared by all
    /// beams, so each head is one sgemm over every row). With `capture`, the probabilities are stored
    /// as [layer][rows][heads][encoderRows] in `crossAttention`.
    func cachedCrossAttention(layer: Int, query: UnsafePointer<Float>, rows: Int, heads: Int, scale: Float,
                              scores: UnsafeMutablePointer<Float>, capture: Bool,
                              into context: UnsafeMutablePointer<Float>) {
        let e = width, enc = encoderRows
        let perHead = capture ? gather.reserve(heads * rows * enc) : nil
        let kv = crossKeyValues[layer].pointer
        Attention.attend(.init(query: query, queryStride: e, key: kv, keyStride: 2 * e,
                               value: kv + e, valueStride: 2 * e, queryRows: rows, keyRows: enc,
                               heads: heads, headDim: e / heads, scale: scale, causalOffset: nil),
                         into: context, outStride: e, scores: scores, weights: perHead)
        guard let perHead else { return }
        // [heads, rows, enc] -> [layer][rows][heads][enc]
        let layerBase = crossAttention.pointer + layer * rows * heads * enc
        for h in 0..<heads {
            for r in 0..<rows {
                (layerBase + (r * heads + h) * enc).update(from: perHead + (h * rows + r) * enc, count: enc)
            }
        }
    }

    /// Reserves the scratch a forward call of `shape` needs and returns the score buffer.
    func prepareStep(_ shape: StepShape, layers: Int, heads: Int, inner: Int, capture: Bool) -> UnsafeMutablePointer<Float> {
        precondition(shape.start + shape.steps <= lengthCapacity, "sequence longer than the cache")
        hidden.reserve(shape.rows * width)
        normed.reserve(shape.rows * width)
        qkv.reserve(shape.rows * 3 * width)
        context.reserve(shape.rows * width)
        mlp.reserve(shape.rows * inner)
        if capture { crossAttention.reserve(layers * shape.rows * heads * encoderRows) }
        return scores.reserve(max(shape.steps * (shape.start + shape.steps), shape.rows * encoderRows))
    }
}
