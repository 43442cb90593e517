import Foundation

/// Several images' searches advanced together, one decoder call per step (continuous batching):
/// the rows of every live beam of every image go through each weight matrix at once, grouped per
/// image for attention (each image's own self-attention caches and encoder K/V). An image joins
/// at a step boundary (`join`) and leaves when its search ends (`step` reports it), so a caller can
/// keep the batch full from a stream of images, e.g. an HTTP service feeding concurrent requests.
///
/// Records equal one-image-at-a-time decoding: the search arithmetic is per image, and the products
/// compute each row as it would alone (up to the last bits where the matrix-product door's kernels
/// round differently with the number of rows; see `DecodeBatchTests`).
/// One `DecodeBatch` serves one thread.
public final class DecodeBatch {
    /// The largest batch a caller may ask for (the memory budget may allow fewer).
    public static let maximumCapacity = 256
    /// Default bound on the caches of one batch: self and cross K/V of every slot.
    public static let defaultMemoryBudget = 512 << 20

    public let decoder: TextDecoder
    public let state: DecoderState
    /// Images that can decode at once.
    public var capacity: Int { state.slotCapacity }
    public var activeCount: Int { active }
    public var hasFreeSlot: Bool { active < capacity }

    private var searches: [SequenceSearch?]
    private var ids: [Int]
    private var active = 0

    /// How many images of `beamCapacity` beams × `lengthCapacity` positions fit `memoryBudget` bytes
    /// of caches, at most `requested`.
    public static func capacity(decoder: TextDecoder, encoderRows: Int, beamCapacity: Int, lengthCapacity: Int,
                                requested: Int, memoryBudget: Int = defaultMemoryBudget) -> Int {
        let perSlot = DecoderState.bytesPerSlot(layers: decoder.layerCount, width: decoder.hiddenSize, beamCapacity: beamCapacity,
                                                lengthCapacity: min(lengthCapacity, decoder.maxPositions), encoderRows: encoderRows)
        return max(1, min(requested, memoryBudget / max(perSlot, 1)))
    }

    /// A batch of `capacity` slots (1...maximumCapacity, reduced to what `memoryBudget` allows), each
    /// holding up to `beamCapacity` beams of up to `lengthCapacity` positions over `encoderRows` image rows.
    public init(decoder: TextDecoder, encoderRows: Int, beamCapacity: Int, lengthCapacity: Int, capacity: Int,
                memoryBudget: Int = DecodeBatch.defaultMemoryBudget) throws {
        guard (1...Self.maximumCapacity).contains(capacity) else {
            throw ModelError.invalidInput("decode batch size must be between 1 and \(Self.maximumCapacity) (got \(capacity))")
        }
        guard beamCapacity >= 1, lengthCapacity >= 1, encoderRows >= 1 else {
            throw ModelError.invalidInput("decode batch needs at least one beam, position and encoder row")
        }
        guard memoryBudget > 0 else { throw ModelError.invalidInput("decode batch memory budget must be positive") }
        let slots = Self.capacity(decoder: decoder, encoderRows: encoderRows, beamCapacity: beamCapacity,
                                  lengthCapacity: lengthCapacity, requested: capacity, memoryBudget: memoryBudget)
        self.decoder = decoder
        state = decoder.makeState(beamCapacity: beamCapacity, lengthCapacity: lengthCapacity, slotCapacity: slots)
        searches = [SequenceSearch?](repeating: nil, count: slots)
        ids = [Int](repeating: -1, count: slots)
    }

    /// Starts image `id` (the caller's ticket, reported back by `step`) from its encoder states
    /// [encoderRows, encoderWidth] in the lowest free slot. Throws when the request does not fit the
    /// batch (beams, length) or is invalid; the batch is unchanged then.
    public func join(id: Int, encoderStates: UnsafePointer<Float>, encoderRows: Int, prompt: [Int],
                     parameters: GenerationParameters) throws {
        guard let slot = searches.firstIndex(where: { $0 == nil }) else {
            throw ModelError.invalidInput("decode batch is full (\(capacity) images)")
        }
        if active > 0 && encoderRows != state.encoderRows {
            throw ModelError.invalidInput("image has \(encoderRows) encoder rows; the batch decodes \(state.encoderRows)")
        }
        let search = try SequenceSearch(decoder: decoder, parameters: parameters, prompt: prompt, state: state, slot: slot)
        decoder.setEncoderStates(encoderStates, rows: encoderRows, state: state, slot: slot)
        searches[slot] = search
        ids[slot] = id
        active += 1
    }

    /// One decoder call for every live image; `finished` receives each image whose search ended in
    /// this step (its id and its hypotheses, best first, or the error that stopped it, e.g. NaN
    /// logits: that image fails alone). Does nothing when no image is live.
    public func step(_ finished: (_ id: Int, _ result: Result<[GeneratedSequence], Error>) -> Void) {
        guard active > 0 else { return }
        state.beginStep()
        var capture = false
        for search in searches {
            guard let search else { continue }
            search.schedule(into: state)
            capture = capture || search.parameters.captureAttention
        }
        let logits = decoder.forwardScheduled(state: state, allPositions: false, captureCrossAttention: capture)
        var outRow = 0
        for segment in state.segments {
            guard let search = searches[segment.slot] else { continue }
            do {
                try search.consume(logits: logits + outRow * decoder.vocabularySize, state: state, segment: segment)
                if search.isDone { finished(ids[segment.slot], .success(try search.results())); leave(segment.slot) }
            } catch {
                finished(ids[segment.slot], .failure(error))
                leave(segment.slot)
            }
            outRow += segment.beams
        }
    }

    /// Runs every live image to the end.
    public func drain(_ finished: (_ id: Int, _ result: Result<[GeneratedSequence], Error>) -> Void) {
        while active > 0 { step(finished) }
    }

    private func leave(_ slot: Int) {
        searches[slot] = nil
        ids[slot] = -1
        active -= 1
    }
}
