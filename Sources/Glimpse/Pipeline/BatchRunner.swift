import Foundation

/// Captions a list of files in order: a prefetch thread decodes and preprocesses upcoming images
/// while the caller's thread encodes (several images per encoder pass) and generates. Results are
/// handed out one by one as soon as they are ready; nothing accumulates, so memory stays flat.
public final class BatchRunner {
    public struct Summary: Sendable {
        public var captioned = 0
        public var failed = 0
        public var seconds = 0.0
        public var imagesPerSecond: Double { seconds > 0 ? Double(captioned + failed) / seconds : 0 }
    }

    public let pipeline: RecordPipeline
    public let encoderBatch: Int
    /// How many prepared images may wait ahead of inference (bounds memory).
    public let prefetchDepth: Int

    public init(pipeline: RecordPipeline, encoderBatch: Int = 1, prefetchDepth: Int = 8) {
        self.pipeline = pipeline
        self.encoderBatch = max(1, encoderBatch)
        self.prefetchDepth = max(1, prefetchDepth)
    }

    /// Runs `files`; `emit` receives each record in input order (it writes and flushes it).
    /// An error thrown by `emit` (e.g. disk full) stops the run and is rethrown.
    public func run(files: [String], emit: (CaptionRecord) throws -> Void,
                    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> Summary {
        try run(listing: files, include: { _ in true }, emit: emit, progress: progress)
    }

    /// Runs the files of `listing` at the indices `include` accepts (a shard, minus what a resumed
    /// output already holds), emitting their records in listing order.
    ///
    /// Images are encoded in fixed groups of `encoderBatch` consecutive listing entries, whatever is
    /// included: the encoder's matrix products round differently with another batch composition (scores
    /// moved in the 7th digit, and a caption could flip on a near tie), so a resumed or sharded run
    /// encodes a partly wanted group whole, as an uninterrupted run does, and emits only its wanted
    /// files. That costs at most encoderBatch - 1 extra decodes per resume or shard edge, and makes every
    /// record independent of timing, kills, --resume and --shard.
    public func run(listing: [String], include: (Int) -> Bool, emit: (CaptionRecord) throws -> Void,
                    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> Summary {
        let start = ContinuousClock.now
        var summary = Summary()
        let model = pipeline.model, request = pipeline.request
        let batch = encoderBatch
        // Groups with at least one wanted file: every member is prepared (encoded), wanted ones emitted.
        var work: [(file: String, group: Int, wanted: Bool)] = []
        var total = 0
        for group in 0..<((listing.count + batch - 1) / batch) {
            let range = (group * batch)..<min(listing.count, (group + 1) * batch)
            let wanted = range.map(include)
            guard wanted.contains(true) else { continue }
            for (i, w) in zip(range, wanted) { work.append((listing[i], group, w)) }
            total += wanted.filter { $0 }.count
        }
        let items = work
        let queue = PrefetchQueue(capacity: prefetchDepth)
        let producer = Thread {
            for item in items {
                if queue.isCancelled { break }
                let prepared: Result<PreparedImage, Error> = Result {
                    var p = try Captioner.prepare(file: item.file, model: model, maxPixels: request.maxPixels)
                    // Records need only the image's size: its decoded pixels go now, so a queued or pending image
                    // holds its model input (3 x side x side floats), not its full decode (300 MB for 100 MP).
                    p.image.pixels = []
                    return p
                }
                queue.put((item.file, prepared))
            }
            queue.finish()
        }
        producer.stackSize = 8 << 20
        producer.start()
        defer { queue.cancel() }

        let captioner = Captioner(model: model, beamWidth: request.parameters.beamWidth)
        var done = 0
        var pending: [(file: String, item: Result<PreparedImage, Error>, wanted: Bool)] = []
        func flush() throws {
            // Encode the group's prepared images together (padding included); failures keep their place.
            let prepared = pending.compactMap { try? $0.item.get() }
            let wanted = pending.compactMap { entry -> Bool? in (try? entry.item.get()) == nil ? nil : entry.wanted }
            var results = captioner.caption(prepared, request: request, generate: wanted).makeIterator()
            for entry in pending {
                // Every prepared image of the group consumes its result, wanted or not (order matters).
                let result: Result<CaptionResult, Error>
                switch entry.item {
                case .failure(let error): result = .failure(error)
                case .success: result = results.next() ?? .failure(ModelError.invalidInput("internal: missing result"))
                }
                guard entry.wanted else { continue }
                let record = pipeline.record(for: result, file: entry.file)
                if record.isError { summary.failed += 1 } else { summary.captioned += 1 }
                try emit(record)
                done += 1
                progress(done, total)
            }
            pending.removeAll(keepingCapacity: true)
        }
        var index = 0, group = -1
        while let next = queue.take() {
            let item = items[index]
            index += 1
            if item.group != group {
                if !pending.isEmpty { try flush() }
                group = item.group
            }
            pending.append((next.0, next.1, item.wanted))
        }
        if !pending.isEmpty { try flush() }
        summary.seconds = milliseconds(since: start) / 1000
        return summary
    }
}

/// A bounded single-producer/single-consumer queue.
final class PrefetchQueue: @unchecked Sendable {
    private var items: [(String, Result<PreparedImage, Error>)] = []
    private var finished = false
    private(set) var isCancelled = false
    private let condition = NSCondition()
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func put(_ item: (String, Result<PreparedImage, Error>)) {
        condition.lock(); defer { condition.unlock() }
        while items.count >= capacity && !isCancelled { condition.wait() }
        if isCancelled { return }
        items.append(item)
        condition.broadcast()
    }

    func take() -> (String, Result<PreparedImage, Error>)? {
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
