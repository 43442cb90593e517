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
