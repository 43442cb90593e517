import Foundation

/// The one driver of a `DecodeBatch`: callers submit encoded images, and each `step` first moves
/// waiting images into free slots (in submission order, at the step boundary), then advances every
/// live image one token and reports the ones that finished. `caption`, `batch` and `serve` all
/// decode through it; they differ only in when they submit (a fixed group at once, or a stream of
/// requests joining as slots free up).
///
/// The batch is sized for the first parameters it is made with. An image whose beams or length do
/// not fit it waits, with every image behind it, until the batch has emptied; the batch is then
/// remade to fit. One `DecodeScheduler` serves one thread (it owns the batch's caches).
public final class DecodeScheduler {
    /// One image to decode: the caller's ticket, its encoder states (a view [sequenceLength,
    /// hiddenSize]), its decoder prompt and its generation parameters.
    public struct Job {
        public var id: Int
        public var encoderStates: Tensor
        public var prompt: [Int]
        public var parameters: GenerationParameters

        public init(id: Int, encoderStates: Tensor, prompt: [Int], parameters: GenerationParameters) {
            self.id = id
            self.encoderStates = encoderStates
            self.prompt = prompt
            self.parameters = parameters
        }
    }

    /// A finished image: its hypotheses (best first) or the error that stopped it (a join that was
    /// refused, NaN logits), and the time from joining the batch to the end of its search.
    public struct Outcome {
        public var id: Int
        public var result: Result<[GeneratedSequence], Error>
        public var generateMilliseconds: Double
    }

    public let model: CaptionModel
    /// Images the caller asked to decode at once (the memory budget may allow fewer; see `capacity`).
    public let requestedCapacity: Int
    private var batch: DecodeBatch
    private var waiting: [Job] = []
    private var joinedAt: [Int: ContinuousClock.Instant] = [:]

    /// A scheduler whose first batch fits `parameters` after a prompt of `promptLength` tokens, with
    /// up to `capacity` images at once (1...DecodeBatch.maximumCapacity).
    public init(model: CaptionModel, parameters: GenerationParameters, promptLength: Int, capacity: Int) throws {
        self.model = model
        requestedCapacity = capacity
        batch = try model.makeDecodeBatch(parameters: parameters, promptLength: promptLength, capacity: capacity)
    }

    /// Images that decode at once in the current batch.
    public var capacity: Int { batch.capacity }
    /// Images in the batch now.
    public var activeCount: Int { batch.activeCount }
    /// Images submitted that have not joined yet.
    public var waitingCount: Int { waiting.count }
    /// Slots that the images waiting now will not fill.
    public var openSlots: Int { max(0, batch.capacity - batch.activeCount - waiting.count) }
    /// Nothing live and nothing waiting.
    public var isIdle: Bool { batch.activeCount == 0 && waiting.isEmpty }

    /// Queues an image; it joins at the next step boundary with a free slot.
    public func submit(_ job: Job) { waiting.append(job) }

    /// Joins waiting images to free slots, then runs one decoder call for every live image;
    /// `finished` receives each image whose search ended (or whose join was refused) in this step.
    public func step(_ finished: (Outcome) -> Void) {
        admit(finished)
        batch.step { id, result in
            let start = joinedAt.removeValue(forKey: id) ?? .now
            finished(Outcome(id: id, result: result, generateMilliseconds: milliseconds(since: start)))
        }
    }

    /// Runs every submitted image to the end.
    public func drain(_ finished: (Outcome) -> Void) {
        while !isIdle { step(finished) }
    }

    /// Moves waiting images into free slots in submission order; stops at the first that does not fit
    /// the batch (remaking the batch for it once the batch is empty).
    private func admit(_ finished: (Outcome) -> Void) {
        var admitted = 0
        while admitted < waiting.count && batch.hasFreeSlot {
            let job = waiting[admitted]
            if !fits(job) {
                guard batch.activeCount == 0 else { break }
                do {
                    batch = try model.makeDecodeBatch(parameters: job.parameters, promptLength: job.prompt.count,
                                                      capacity: requestedCapacity,
                                                      encoderPromptLength: max(0, rows(job) - model.encoder.sequenceLength))
                } catch {
                    finished(Outcome(id: job.id, result: .failure(error), generateMilliseconds: 0))
                    admitted += 1
                    continue
                }
            }
            admitted += 1
            do {
                try batch.join(model: model, id: job.id, encoderStates: job.encoderStates, prompt: job.prompt,
                               parameters: job.parameters)
                joinedAt[job.id] = .now
            } catch {
                finished(Outcome(id: job.id, result: .failure(error), generateMilliseconds: 0))
            }
        }
        waiting.removeFirst(admitted)
    }

    /// Whether the current batch's caches hold `job`'s beams and length, and its encoder rows are the
    /// batch's (an encoder that reads a prompt gives rows per prompt length; one batch decodes one count).
    private func fits(_ job: Job) -> Bool {
        let length = min(job.parameters.resolvedMaxLength(promptLength: job.prompt.count), model.decoder.maxPositions)
        return batch.state.beamCapacity >= max(job.parameters.beamWidth, 1) && batch.state.lengthCapacity >= length
            && (batch.activeCount == 0 || batch.state.encoderRows == rows(job))
    }

    private func rows(_ job: Job) -> Int { job.encoderStates.count / model.encoder.hiddenSize }
}
