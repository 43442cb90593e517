import Foundation

/// Captions a list of files in order, on every core: worker threads decode, preprocess and encode
/// upcoming images (several per encoder pass) while the caller's thread decodes text for
/// a group of images at once (`DecodeBatch`: every weight read once per step for all their beams).
/// Records are handed out in listing order as soon as their group is decoded; nothing else
/// accumulates, so memory stays flat.
public final class BatchRunner {
    public struct Summary: Sendable {
        public var captioned = 0
        public var failed = 0
        public var seconds = 0.0
        public var imagesPerSecond: Double { seconds > 0 ? Double(captioned + failed) / seconds : 0 }
    }

    public let pipeline: RecordPipeline
    public let encoderBatch: Int
    /// Images whose beams advance through the decoder together (bounded; see `DecodeBatch`).
    public let decodeBatch: Int
    /// How many encoded images may wait ahead of decoding (bounds memory).
    public let prefetchDepth: Int
    /// Worker threads that decode, preprocess and encode images (one per core by default).
    public let encoderThreads: Int

    public init(pipeline: RecordPipeline, encoderBatch: Int = 1, decodeBatch: Int = 8, prefetchDepth: Int = 8,
                encoderThreads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.pipeline = pipeline
        self.encoderThreads = min(max(1, encoderThreads), 16)
        self.encoderBatch = max(1, encoderBatch)
        self.decodeBatch = min(max(1, decodeBatch), DecodeBatch.maximumCapacity)
        self.prefetchDepth = max(1, prefetchDepth)
    }

    /// Runs `files`; `emit` receives each record in input order (it writes and flushes it).
    /// An error thrown by `emit` (e.g. disk full) stops the run and is rethrown.
    public func run(files: [String], emit: (CaptionRecord) throws -> Void,
                    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> Summary {
        try run(listing: files, include: { _ in true }, emit: emit, progress: progress)
    }

    /// An image ready for the decoder (or the reason it is not), from a worker thread.
    struct Encoded {
        var file: String
        var index: Int
        /// Its record is emitted.
        var wanted: Bool
        /// It is decoded (its decode group holds a wanted image).
        var needed: Bool
        var prepared: Result<PreparedImage, Error>
        var states: Tensor?
        var encodeMilliseconds = 0.0
    }

    /// Runs the files of `listing` at the indices `include` accepts (a shard, minus what a resumed
    /// output already holds), emitting their records in listing order.
    ///
    /// Batch composition is a function of the listing alone, so every record is independent of
    /// timing, kills, --resume and --shard, bit for bit: the matrix products round differently with
    /// another batch composition (scores moved in the 7th digit, and a caption could flip on a near tie).
    /// - Images are encoded in fixed groups of `encoderBatch` consecutive listing entries, and decoded
    ///   in fixed groups of `decodeBatch` (the decode batch's capacity) consecutive entries, all of a
    ///   group joining the batch at once. A resumed or sharded run processes a partly wanted group
    ///   whole, as an uninterrupted run does, and emits only its wanted files: at most
    ///   encoderBatch - 1 extra encodes and decodeBatch - 1 extra decodes per resume or shard edge.
    /// - Refilling slots as images finish (what `DecodeBatch` allows a service) would make a
    ///   record depend on where the run started, until the products compute each row independently
    ///   of the rows beside it.
    public func run(listing: [String], include: (Int) -> Bool, emit: (CaptionRecord) throws -> Void,
                    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> Summary {
        let start = ContinuousClock.now
        var summary = Summary()
        let model = pipeline.model, request = pipeline.request, pipeline = pipeline
        let generation = try Captioner.generation(request, model: model)
        let (parameters, prompt) = (generation.parameters, generation.decoderPrompt)
        let decoding = try DecodeScheduler(model: model, parameters: parameters, promptLength: prompt.count, capacity: decodeBatch)
        let decodeGroup = decoding.capacity, encodeGroup = encoderBatch, count = listing.count

        // Decode groups with a wanted file are decoded whole; encoder groups with such a member are encoded whole.
        var wanted = [Bool](repeating: false, count: count)
        var groupWanted = [Bool](repeating: false, count: (count + decodeGroup - 1) / decodeGroup)
        for i in 0..<count where include(i) { wanted[i] = true; groupWanted[i / decodeGroup] = true }
        let total = wanted.filter { $0 }.count
        var groups: [[(file: String, index: Int, wanted: Bool, needed: Bool)]] = []
        for group in 0..<((count + encodeGroup - 1) / encodeGroup) {
            let range = (group * encodeGroup)..<min(count, (group + 1) * encodeGroup)
            guard range.contains(where: { groupWanted[$0 / decodeGroup] }) else { continue }
            groups.append(range.map { (listing[$0], $0, wanted[$0], groupWanted[$0 / decodeGroup]) })
        }
        let work = groups

        // Encoder group g is encoded by worker g % W into its own queue and taken back in group order,
        // so the hand-off order (and everything after it) does not depend on which worker finishes first.
        let workers = min(encoderThreads, max(work.count, 1))
        let depth = max(prefetchDepth, decodeGroup + encodeGroup) / workers + encodeGroup
        let queues = (0..<workers).map { _ in PrefetchQueue<Encoded>(capacity: depth) }
        // Each worker encodes counted busy (`SmallMatMul.countedBusy`): its products take its own core
        // plus the ones no other worker holds, and a decode step takes the cores the workers leave
        // idle (all of them while the encoders wait on full queues).
        for w in 0..<workers {
            let queue = queues[w]
            let thread = Thread {
                for g in stride(from: w, to: work.count, by: workers) {
                    if queue.isCancelled { break }
                    let group = work[g]
                    let prepared = group.map { item in
                        Result { () throws -> PreparedImage in
                            var p = try Captioner.prepare(file: item.file, model: model, maxPixels: request.maxPixels)
                            pipeline.shed(&p)
                            return p
                        }
                    }
                    // Encode the group's prepared images together (padding included); failures keep their place.
                    let ok = prepared.compactMap { try? $0.get() }
                    let encoded = ok.isEmpty ? nil : SmallMatMul.countedBusy { Captioner.encode(ok, model: model, prompt: generation.encoderPrompt) }
                    var index = 0
                    for (item, result) in zip(group, prepared) {
                        var entry = Encoded(file: item.file, index: item.index, wanted: item.wanted, needed: item.needed, prepared: result)
                        if case .success = result, let encoded {
                            entry.states = encoded.states[index: index]
                            entry.encodeMilliseconds = encoded.millisecondsPerImage
                            index += 1
                        }
                        queue.put(entry)
                    }
                }
                queue.finish()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        defer { queues.forEach { $0.cancel() } }
        var nextGroup = 0, takenInGroup = 0
        /// The next encoded image in listing order (nil after the last).
        func take() -> Encoded? {
            while nextGroup < work.count && takenInGroup == work[nextGroup].count { nextGroup += 1; takenInGroup = 0 }
            guard nextGroup < work.count, let item = queues[nextGroup % workers].take() else { return nil }
            takenInGroup += 1
            return item
        }

        /// Decodes one decode group together, then emits its wanted records in order.
        func decodeAndEmit(_ group: [Encoded]) throws {
            var results = [Result<CaptionResult, Error>?](repeating: nil, count: group.count)
            for (i, e) in group.enumerated() {
                switch e.prepared {
                case .failure(let error): results[i] = .failure(error)
                case .success:
                    guard let states = e.states else { results[i] = .failure(ModelError.invalidInput("internal: image not encoded")); continue }
                    decoding.submit(.init(id: i, encoderStates: states, prompt: prompt, parameters: parameters))
                }
            }
            decoding.drain { outcome in
                let i = outcome.id, e = group[i]
                results[i] = outcome.result.flatMap { sequences in
                    guard let states = e.states, case .success(let prepared) = e.prepared else {
                        return .failure(ModelError.invalidInput("internal: decoded an image that was not encoded"))
                    }
                    return .success(CaptionResult(
                        file: e.file, image: prepared.image, sequences: sequences, texts: sequences.map { model.text(of: $0) },
                        encoderStates: states,
                        timing: .init(decodeMilliseconds: prepared.decodeMilliseconds, encodeMilliseconds: e.encodeMilliseconds,
                                      generateMilliseconds: outcome.generateMilliseconds)))
                }
            }
            for (i, e) in group.enumerated() where e.wanted {
                let record = pipeline.record(for: results[i] ?? .failure(ModelError.invalidInput("internal: missing result")), file: e.file)
                if record.isError { summary.failed += 1 } else { summary.captioned += 1 }
                try emit(record)
                progress(summary.captioned + summary.failed, total)
            }
        }

        var pending: [Encoded] = []
        pending.reserveCapacity(decodeGroup)
        while let next = take() {
            guard next.needed else { continue }
            pending.append(next)
            let g = next.index / decodeGroup
            if pending.count == min(decodeGroup, count - g * decodeGroup) {
                try decodeAndEmit(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        if !pending.isEmpty { try decodeAndEmit(pending) }
        summary.seconds = milliseconds(since: start) / 1000
        return summary
    }
}

/// A bounded single-producer/single-consumer queue.
final class PrefetchQueue<Item>: @unchecked Sendable {
    private var items: [Item] = []
    private var finished = false
    private(set) var isCancelled = false
    private let condition = NSCondition()
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func put(_ item: Item) {
        condition.lock(); defer { condition.unlock() }
        while items.count >= capacity && !isCancelled { condition.wait() }
        if isCancelled { return }
        items.append(item)
        condition.broadcast()
    }

    func take() -> Item? {
        condition.lock(); defer { condition.unlock() }
        while items.isEmpty && !finished && !isCancelled { condition.wait() }
        if items.isEmpty { return nil }
        let item = items.removeFirst()
        condition.broadcast()
        return item
    }

    var isEmptyNow: Bool { condition.lock(); defer { condition.unlock() }; return items.isEmpty }

    func finish() { condition.lock(); finished = true; condition.broadcast(); condition.unlock() }
    func cancel() { condition.lock(); isCancelled = true; condition.broadcast(); condition.unlock() }
}
