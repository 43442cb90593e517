import Foundation
import Glimpse

/// What a request gets back for one image.
enum TicketOutcome: Sendable {
    case record(CaptionRecord)
    /// The request's deadline passed first (504).
    case timedOut
    /// The server stopped before the image was decoded (503).
    case cancelled
}

/// One image's answer, handed from the inference thread to the request's task. The first
/// `resolve` wins (the record, the deadline, or a cancelled request), so a late result is dropped.
final class Ticket: @unchecked Sendable {
    private let lock = NSLock()
    private var outcome: TicketOutcome?
    private var continuation: CheckedContinuation<TicketOutcome, Never>?

    /// Whether an outcome is set (the worker skips such images).
    var isResolved: Bool { lock.withLock { outcome != nil } }

    func resolve(_ value: TicketOutcome) {
        let waiting: CheckedContinuation<TicketOutcome, Never>? = lock.withLock {
            guard outcome == nil else { return nil }
            outcome = value
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume(returning: value)
    }

    /// The outcome, once set; a cancelled task resolves its ticket as cancelled.
    func wait() async -> TicketOutcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<TicketOutcome, Never>) in
                let ready: TicketOutcome? = lock.withLock {
                    if let outcome { return outcome }
                    continuation = c
                    return nil
                }
                if let ready { c.resume(returning: ready) }
            }
        } onCancel: { resolve(.cancelled) }
    }
}

/// An image waiting for the model: decoded and preprocessed already, with its request's pipeline
/// (options, heads) and the ticket its request waits on.
struct InferenceJob: @unchecked Sendable {
    var prepared: PreparedImage
    var pipeline: RecordPipeline
    var ticket: Ticket
    var enqueued = ContinuousClock.now
}

/// The threads that run the model. Requests put decoded images on one bounded queue; each thread
/// takes what is waiting, encodes it in one encoder pass and lets those images join its own
/// `DecodeScheduler` at the next step boundary (continuous batching: a finished image leaves, a
/// waiting one joins). With several threads each runs its products on one core (OpenBLAS is
/// single-threaded throughout: an idle pool thread spinning between a small model's products took a
/// third of the CPU the HTTP side needs). NIO's event loops never wait on
/// them: requests await their `Ticket`s.
final class InferenceWorker: @unchecked Sendable {
    struct Limits: Sendable {
        /// Images decoding at once (and encoded in one pass).
        var maxBatch: Int
        /// How long an idle worker waits for more images before starting a batch.
        var maxWait: Duration
        /// Images that may wait for the model; more are refused (503).
        var queueCapacity: Int
        /// Inference threads, each with its own decode batch.
        var threads = 1
    }

    let model: CaptionModel
    let limits: Limits
    let metrics: ServeMetrics
    private let condition = NSCondition()
    private var queue: [InferenceJob] = []
    private var stopping = false
    private var threads: [Thread] = []
    private let done = DispatchSemaphore(value: 0)

    init(model: CaptionModel, limits: Limits, metrics: ServeMetrics) {
        self.model = model
        self.limits = limits
        self.metrics = metrics
    }

    /// Images waiting for the model now.
    var queueDepth: Int { condition.lock(); defer { condition.unlock() }; return queue.count }

    /// A request on its way to the queue (its body being read, its images decoded): counted while it
    /// lasts, so an idle worker holds a batch open for `maxWait` only when more images are coming.
    final class Arrival: @unchecked Sendable {
        private weak var worker: InferenceWorker?
        private var ended = false
        fileprivate init(_ worker: InferenceWorker) { self.worker = worker }
        /// Ends the count (once; `enqueue` ends it with the queueing).
        func end() { worker?.endArrival(self) }
        fileprivate func take() -> Bool { defer { ended = true }; return !ended }
    }
    private var arrivals = 0

    func arriving() -> Arrival {
        condition.lock(); defer { condition.unlock() }
        arrivals += 1
        return Arrival(self)
    }

    fileprivate func endArrival(_ arrival: Arrival) {
        condition.lock(); defer { condition.unlock() }
        if arrival.take() { arrivals -= 1; condition.broadcast() }
    }

    /// Queues all of `jobs`, or none when they would pass the queue's capacity (false); either way
    /// `arrival` ends, in the same step, so a waiting worker sees the images and the count together.
    func enqueue(_ jobs: [InferenceJob], ending arrival: Arrival? = nil) -> Bool {
        condition.lock(); defer { condition.unlock() }
        if let arrival, arrival.take() { arrivals -= 1 }
        condition.broadcast()
        guard !stopping, queue.count + jobs.count <= limits.queueCapacity else { return false }
        queue.append(contentsOf: jobs)
        metrics.queueDepth(queue.count)
        return true
    }

    func start() {
        // Several threads: one core each, products never split (process-wide, until `stop`).
        if limits.threads > 1 {
            threadCountBefore = BLAS.threadCount
            BLAS.setThreadCount(1)
        }
        for i in 0..<max(1, limits.threads) {
            // Several threads keep the cores busy themselves: their products must not split further.
            let thread = Thread { [self] in
                if limits.threads > 1 { SmallMatMul.countedBusy { run() } } else { run() }
                done.signal()
            }
            thread.name = "glimpse-inference-\(i)"
            thread.stackSize = 8 << 20
            threads.append(thread)
            thread.start()
        }
    }

    /// Finishes every queued and live image, then ends the threads (waits for them).
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        for _ in threads { done.wait() }
        if let count = threadCountBefore { BLAS.setThreadCount(count) }
    }

    /// The product thread count before `start` lowered it, restored by `stop`.
    private var threadCountBefore: Int?

    private struct Live {
        var job: InferenceJob
        var states: Tensor
        var encodeMilliseconds: Double
    }

    private func run() {
        var scheduler: DecodeScheduler?
        var live: [Int: Live] = [:]
        var nextID = 0
        while true {
            let idle = scheduler?.isIdle ?? true
            guard let taken = take(blocking: idle, free: scheduler?.openSlots ?? limits.maxBatch) else { return }
            // A request that timed out or went away while its image waited costs no encode.
            let jobs = taken.filter { !$0.ticket.isResolved }
            // Images whose requests give the encoder the same prompt are encoded together.
            var groups: [[Int]: [(job: InferenceJob, generation: Captioner.Generation)]] = [:], order: [[Int]] = []
            for job in jobs {
                do {
                    let generation = try Captioner.generation(job.pipeline.request, model: model)
                    if groups[generation.encoderPrompt] == nil { order.append(generation.encoderPrompt) }
                    groups[generation.encoderPrompt, default: []].append((job, generation))
                } catch {
                    job.ticket.resolve(.record(job.pipeline.record(for: .failure(error), file: job.prepared.file)))
                }
            }
            for key in order {
                guard let group = groups[key] else { continue }
                let (states, encodeMs) = Captioner.encode(group.map(\.job.prepared), model: model, prompt: key)
                for (i, (job, generation)) in group.enumerated() {
                    let (parameters, prompt) = (generation.parameters, generation.decoderPrompt)
                    if scheduler == nil {
                        do {
                            scheduler = try DecodeScheduler(model: model, parameters: parameters, promptLength: prompt.count,
                                                            capacity: limits.maxBatch)
                        } catch {
                            job.ticket.resolve(.record(job.pipeline.record(for: .failure(error), file: job.prepared.file)))
                            continue
                        }
                    }
                    let id = nextID
                    nextID += 1
                    live[id] = Live(job: job, states: states[index: i], encodeMilliseconds: encodeMs)
                    scheduler?.submit(.init(id: id, encoderStates: states[index: i], prompt: prompt, parameters: parameters))
                }
            }
            guard let scheduler else { continue }
            if scheduler.activeCount + scheduler.waitingCount > 0 {
                metrics.decodeBatch(scheduler.activeCount + min(scheduler.waitingCount, scheduler.capacity - scheduler.activeCount))
            }
            scheduler.step { outcome in
                guard let entry = live.removeValue(forKey: outcome.id) else { return }
                let job = entry.job
                let result = outcome.result.map { sequences in
                    CaptionResult(file: job.prepared.file, image: job.prepared.image, sequences: sequences,
                                  texts: sequences.map { model.text(of: $0) }, encoderStates: entry.states,
                                  timing: .init(decodeMilliseconds: job.prepared.decodeMilliseconds,
                                                encodeMilliseconds: entry.encodeMilliseconds,
                                                generateMilliseconds: outcome.generateMilliseconds))
                }
                metrics.imageDone()
                job.ticket.resolve(.record(job.pipeline.record(for: result, file: job.prepared.file)))
            }
        }
    }

    /// Up to `free` queued images. When the model is idle, waits for the first one, then, while other
    /// requests are on their way, up to `maxWait` from its arrival for a fuller batch. Nil when
    /// stopping with nothing left.
    private func take(blocking: Bool, free: Int) -> [InferenceJob]? {
        condition.lock(); defer { condition.unlock() }
        if blocking {
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty { return nil }
            let deadline = Date().addingTimeInterval(Self.seconds(limits.maxWait - (ContinuousClock.now - queue[0].enqueued)))
            while queue.count < free && arrivals > 0 && !stopping && Date() < deadline { _ = condition.wait(until: deadline) }
        }
        let count = min(free, queue.count)
        let taken = Array(queue.prefix(count))
        queue.removeFirst(count)
        metrics.queueDepth(queue.count)
        return taken
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
