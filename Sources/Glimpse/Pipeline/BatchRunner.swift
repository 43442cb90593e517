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
        let start = ContinuousClock.now
        var summary = Summary()
        let model = pipeline.model, request = pipeline.request
        let queue = PrefetchQueue(capacity: prefetchDepth)
        let producer = Thread {
            for file in files {
                if queue.isCancelled { break }
                let item: Result<PreparedImage, Error> = Result {
                    try Captioner.prepare(file: file, model: model, maxPixels: request.maxPixels)
                }
                queue.put((file, item))
            }
            queue.finish()
        }
        producer.stackSize = 8 << 20
        producer.start()
        defer { queue.cancel() }

        let captioner = Captioner(model: model, beamWidth: request.parameters.beamWidth)
        var done = 0
        var pending: [(String, Result<PreparedImage, Error>)] = []
        func flush() throws {
            // Encode the prepared images of `pending` together; failures keep their place in order.
            let prepared = pending.compactMap { try? $0.1.get() }
            var results = captioner.caption(prepared, request: request).makeIterator()
            for (file, item) in pending {
                let record: CaptionRecord
                switch item {
                case .failure(let error): record = pipeline.record(for: .failure(error), file: file)
                case .success: record = pipeline.record(for: results.next() ?? .failure(ModelError.invalidInput("internal: missing result")), file: file)
                }
                if record.isError { summary.failed += 1 } else { summary.captioned += 1 }
                try emit(record)
                done += 1
                progress(done, files.count)
            }
            pending.removeAll(keepingCapacity: true)
        }
        while let next = queue.take() {
            pending.append(next)
            if pending.count >= encoderBatch || queue.isEmptyNow { try flush() }
        }
        try flush()
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
