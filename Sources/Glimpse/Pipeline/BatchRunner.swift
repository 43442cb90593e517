import Foundation

/// Captions a list of files in order, on both cores: a worker thread decodes, preprocesses and
/// encodes upcoming images (several per encoder pass) while the caller's thread decodes text for
/// several images at once (`DecodeBatch`: continuous batching, every weight read once per step for
/// all of them). Records are handed out in listing order as soon as they and every earlier one are
/// ready; nothing else accumulates, so memory stays flat.
///
/// Every record is independent of thread timing: images join the decode batch in listing order,
/// filling every free slot at each step boundary and waiting for the encoder when it is behind, so
/// the batch composition at each step is a function of the listing and the options alone.
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

    public init(pipeline: RecordPipeline, encoderBatch: Int = 1, decodeBatch: Int = 8, prefetchDepth: Int = 8) {
        self.pipeline = pipeline
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

    /// An image ready for the decoder (or the reason it is not), from the worker thread.
    struct Encoded {
        var file: String
        var wanted: Bool
        var prepared: Result<PreparedImage, Error>
        var states: Tensor?
        var encodeMilliseconds = 0.0
    }

    /// Runs the files of `listing` at the indices `include` accepts (a shard, minus what a resumed
    /// output already holds), emitting their records in listing order.
    ///
    /// Images are encoded in fixed groups of `encoderBatch` consecutive listing entries, whatever is
    /// included: the encoder's matrix products round differently with another batch composition (scores
    /// moved in the 7th digit, and a caption could flip on a near tie), so a resumed or sharded run
    /// encodes a partly wanted group whole, as an uninterrupted run does, and emits only its wanted
    /// files. That costs at most encoderBatch - 1 extra decodes per resume or shard edge, and makes every
    /// record independent of timing, kills, --resume and --shard. Unwanted images never join the
    /// decode batch. (Decode-batch composition may move scores in the last float bits as well; see
    /// `DecodeBatch`.)
    public func run(listing: [String], include: (Int) -> Bool, emit: (CaptionRecord) throws -> Void,
                    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> Summary {
        let start = ContinuousClock.now
        var summary = Summary()
        let model = pipeline.model, request = pipeline.request
        let batch = encoderBatch
        // Groups with at least one wanted file: every member is prepared (encoded), wanted ones emitted.
        var groups: [[(file: String, wanted: Bool)]] = []
        var total = 0
        for group in 0..<((listing.count + batch - 1) / batch) {
            let range = (group * batch)..<min(listing.count, (group + 1) * batch)
            let wanted = range.map(include)
            guard wanted.contains(true) else { continue }
            groups.append(zip(range, wanted).map { (listing[$0], $1) })
            total += wanted.filter { $0 }.count
        }
        let work = groups
        let (parameters, prompt) = Captioner.generation(request, model: model)
        let decoding = try model.makeDecodeBatch(parameters: parameters, promptLength: prompt.count, capacity: decodeBatch)
        let queue = PrefetchQueue<Encoded>(capacity: max(prefetchDepth, decodeBatch + batch))
        let worker = Thread {
            for group in work {
                if queue.isCancelled { break }
                let prepared = group.map { item in
                    Result { try Captioner.prepare(file: item.file, model: model, maxPixels: request.maxPixels) }
                }
                // Encode the group's prepared images together (padding included); failures keep their place.
                let ok = prepared.compactMap { try? $0.get() }
                let encoded = ok.isEmpty ? nil : Captioner.encode(ok, model: model)
                var index = 0
                for (item, result) in zip(group, prepared) {
                    var entry = Encoded(file: item.file, wanted: item.wanted, prepared: result)
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
        worker.stackSize = 8 << 20
        worker.start()
        defer { queue.cancel() }

        // Wanted images numbered in listing order, kept until emitted; a result waits in `ready`
        // until every earlier one is emitted.
        var entries: [Int: Encoded] = [:]
        var started: [Int: ContinuousClock.Instant] = [:]
        var taken = 0
        var ready: [Int: Result<CaptionResult, Error>] = [:]
        var emitted = 0
        let finish = { (i: Int, result: Result<[GeneratedSequence], Error>) in
            ready[i] = result.flatMap { sequences in
                guard let e = entries[i], let states = e.states, case .success(let prepared) = e.prepared else {
                    return .failure(ModelError.invalidInput("internal: decoded an image that was not encoded"))
                }
                return .success(CaptionResult(
                    file: e.file, image: prepared.image, sequences: sequences, texts: sequences.map { model.text(of: $0) },
                    encoderStates: states,
                    timing: .init(decodeMilliseconds: prepared.decodeMilliseconds, encodeMilliseconds: e.encodeMilliseconds,
                                  generateMilliseconds: milliseconds(since: started[i] ?? .now))))
            }
        }
        var exhausted = false
        while true {
            // Fill every free slot with the next wanted images, in order (waiting for the worker).
            while decoding.hasFreeSlot && !exhausted {
                guard let next = queue.take() else { exhausted = true; break }
                guard next.wanted else { continue }
                let i = taken
                taken += 1
                entries[i] = next
                started[i] = .now
                switch next.prepared {
                case .failure(let error): ready[i] = .failure(error)
                case .success:
                    guard let states = next.states else { ready[i] = .failure(ModelError.invalidInput("internal: image not encoded")); break }
                    do { try decoding.join(model: model, id: i, encoderStates: states, prompt: prompt, parameters: parameters) }
                    catch { ready[i] = .failure(error) }
                }
            }
            decoding.step(finish)
            while let result = ready.removeValue(forKey: emitted) {
                let file = entries.removeValue(forKey: emitted)?.file ?? ""
                started[emitted] = nil
                let record = pipeline.record(for: result, file: file)
                if record.isError { summary.failed += 1 } else { summary.captioned += 1 }
                emitted += 1
                try emit(record)
                progress(emitted, total)
            }
            if exhausted && decoding.activeCount == 0 && ready.isEmpty { break }
        }
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
