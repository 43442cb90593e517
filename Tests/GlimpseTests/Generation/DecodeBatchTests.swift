import Foundation
import XCTest
@testable import Glimpse

/// Images decoded together (`DecodeBatch`, continuous batching) give the records of one-image-at-a-time
/// decoding: tokens identical, scores within 1e-5, attention maps within 1e-5. With OpenBLAS, a product
/// over several rows (sgemm) may round a row differently from the same row alone (sgemv), so scores are
/// compared with the tolerance issue 11 states rather than bit for bit.
final class DecodeBatchTests: XCTestCase {
    static let scoreTolerance: Float = 1e-5

    struct Job {
        var label: String
        var states: Tensor
        var prompt: [Int]
        var parameters: GenerationParameters
    }

    /// Every generate case of a parity fixture, each with its own options and prompt: greedy, beams
    /// 3/5, n-best, length penalties, n-gram and repetition rules, early stopping, min/max tokens.
    func jobs(_ f: ParityFixture, capture: Bool) throws -> [Job] {
        var encoded: [String: Tensor] = [:]
        return try f.cases.map { c in
            let image = c["image"] as? String ?? ""
            let states = try encoded[image] ?? f.encode(image)
            encoded[image] = states
            var p = try f.parameters(for: c["kwargs"] as? [String: Any] ?? [:])
            p.captureAttention = capture
            return Job(label: "\(image) \(c["label"] as? String ?? "?")", states: states, prompt: try f.prompt(for: c, parameters: p), parameters: p)
        }
    }

    func alone(_ f: ParityFixture, _ job: Job) throws -> [GeneratedSequence] {
        let state = f.decoder.makeState(beamCapacity: job.parameters.beamWidth, lengthCapacity: 64)
        f.decoder.setEncoderStates(job.states.data, rows: f.encoder.sequenceLength, state: state)
        return try Generator(decoder: f.decoder, parameters: job.parameters).generate(prompt: job.prompt, state: state)
    }

    /// Runs `jobs` through one batch of `capacity` slots, a free slot taking the next job at each step.
    /// Returns the results and the largest number of images that decoded in one step.
    func batched(_ f: ParityFixture, _ jobs: [Job], capacity: Int) throws -> ([[GeneratedSequence]], Int) {
        let beams = jobs.map(\.parameters.beamWidth).max() ?? 1
        let batch = try DecodeBatch(decoder: f.decoder, encoderRows: f.encoder.sequenceLength, beamCapacity: beams,
                                    lengthCapacity: 64, capacity: capacity)
        var results = [[GeneratedSequence]?](repeating: nil, count: jobs.count)
        var next = 0, widest = 0
        while next < jobs.count || batch.activeCount > 0 {
            while batch.hasFreeSlot && next < jobs.count {
                try batch.join(id: next, encoderStates: jobs[next].states.data, encoderRows: f.encoder.sequenceLength,
                               prompt: jobs[next].prompt, parameters: jobs[next].parameters)
                next += 1
            }
            widest = max(widest, batch.activeCount)
            batch.step { id, result in results[id] = try? result.get() }
        }
        return (try results.enumerated().map { i, r in try XCTUnwrap(r, jobs[i].label) }, widest)
    }

    func assertSame(_ ours: [GeneratedSequence], _ reference: [GeneratedSequence], _ label: String, maps: Bool) {
        XCTAssertEqual(ours.count, reference.count, label)
        for (a, b) in zip(ours, reference) {
            XCTAssertEqual(a.tokens, b.tokens, label)
            XCTAssertEqual(a.score, b.score, accuracy: Self.scoreTolerance, label)
            guard maps else { continue }
            XCTAssertEqual(a.crossAttention.count, b.crossAttention.count, label)
            for (x, y) in zip(a.crossAttention, b.crossAttention) {
                XCTAssertEqual(x.count, y.count, label)
                let worst = zip(x, y).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-5, "\(label) attention")
            }
        }
    }

    func testFixtureCasesBatchedEqualOneAtATime() throws {
        var checked = 0
        for name in ParityFixture.names {
            let f = try ParityFixture(name)
            let jobs = try self.jobs(f, capture: false)
            let reference = try jobs.map { try alone(f, $0) }
            // Jobs end at different steps (max 4 vs 16 tokens, EOS, early stopping), so slots are
            // refilled mid-run, and prompts of several tokens join next to one-token steps.
            let (ours, widest) = try batched(f, jobs, capacity: 5)
            XCTAssertEqual(widest, 5, name)
            for (i, job) in jobs.enumerated() { assertSame(ours[i], reference[i], "\(name) \(job.label)", maps: false) }
            checked += jobs.count
        }
        XCTAssertGreaterThanOrEqual(checked, 100)
    }

    func testCapturedAttentionMapsBatchedEqualOneAtATime() throws {
        let f = try ParityFixture("vit_gpt2_b")
        let jobs = Array(try self.jobs(f, capture: true).prefix(12))
        let reference = try jobs.map { try alone(f, $0) }
        let (ours, _) = try batched(f, jobs, capacity: 4)
        for (i, job) in jobs.enumerated() { assertSame(ours[i], reference[i], job.label, maps: true) }
    }

    /// The shipped default model on the committed samples: greedy and beam 3 after a prompt (beam 3 with its 3 best: the runner test below), each
    /// through `CaptionModel.generate(encoderStates:batchSize:)` with 1 and with 5 images at a time.
    func testDefaultModelSamplesBatchedEqualOneAtATime() throws {
        let root = DefaultModelTests.root
        let model = try CaptionModel(directory: root.appendingPathComponent("models/default"))
        let files = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("samples").path)
            .filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 10)
        let states = try files.map { file -> Tensor in
            let prepared = try Captioner.prepare(file: root.appendingPathComponent("samples/\(file)").path, model: model, maxPixels: 1 << 26)
            return Captioner.encode([prepared], model: model).states[index: 0]
        }
        var greedy = model.defaults; greedy.beamWidth = 1
        var beam3 = model.defaults; beam3.beamWidth = 3
        for (label, p, text) in [("greedy", greedy, nil), ("prompt", beam3, "a large")] {
            let prompt = model.decoderPrompt(text, parameters: p)
            let one = try model.generate(encoderStates: states, prompt: prompt, parameters: p, batchSize: 1)
            let five = try model.generate(encoderStates: states, prompt: prompt, parameters: p, batchSize: 5)
            var lengths = Set<Int>()
            for (i, file) in files.enumerated() {
                let a = try five[i].get(), b = try one[i].get()
                assertSame(a, b, "\(label) \(file)", maps: false)
                lengths.insert(b[0].tokens.count)
            }
            XCTAssertGreaterThan(lengths.count, 1, "\(label): images should finish at different steps")
        }
    }

    /// bf16 and int8 weights, 8 images × 5 beams = 40 rows a step, past the few-row kernels' 32: a
    /// decoder step still runs them on the few-row kernels (the large-product engine rounds activations to
    /// bf16), so each image gets the very bits it gets alone: tokens and scores equal exactly.
    func testReducedPrecisionStepsOfMoreThan32RowsEqualOneImageAtATime() throws {
        let root = DefaultModelTests.root
        let source = try CaptionModel(directory: root.appendingPathComponent("models/default"))
        let files = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("samples").path)
            .filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }.sorted().prefix(8)
        XCTAssertEqual(files.count, 8)
        for target in Quantizer.Target.allCases {
            let dir = try GlimpseCLI.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            try Quantizer.quantize(model: source, to: dir.appendingPathComponent("q"), target: target)
            let model = try CaptionModel(directory: dir.appendingPathComponent("q"))
            let states = try files.map { file -> Tensor in
                let prepared = try Captioner.prepare(file: root.appendingPathComponent("samples/\(file)").path, model: model,
                                                     maxPixels: 1 << 26)
                return Captioner.encode([prepared], model: model).states[index: 0]
            }
            var p = model.defaults
            p.beamWidth = 5
            XCTAssertGreaterThan(8 * p.beamWidth, SmallMatMul.maxRows)
            let one = try model.generate(encoderStates: states, prompt: model.decoderPrompt(nil, parameters: p), parameters: p, batchSize: 1)
            let eight = try model.generate(encoderStates: states, prompt: model.decoderPrompt(nil, parameters: p), parameters: p, batchSize: 8)
            for (i, file) in files.enumerated() {
                let a = try eight[i].get(), b = try one[i].get()
                XCTAssertEqual(a.map(\.tokens), b.map(\.tokens), "\(target) \(file)")
                XCTAssertEqual(a.map(\.score), b.map(\.score), "\(target) \(file)")
            }
        }
    }

    /// `BatchRunner` (worker threads encoding while the caller decodes 5 images at a time) gives the
    /// records of one thread decoding one image at a time, in listing order.
    func testBatchRunnerRecordsEqualOneImageAtATime() throws {
        let root = DefaultModelTests.root
        let model = try CaptionModel(directory: root.appendingPathComponent("models/default"))
        let files = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("samples").path)
            .filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }.sorted().map { root.appendingPathComponent("samples/\($0)").path }
        var p = model.defaults; p.beamWidth = 3; p.returnCount = 3
        let pipeline = try RecordPipeline(model: model, request: CaptionRequest(parameters: p))
        func records(decodeBatch: Int, threads: Int) throws -> [CaptionRecord] {
            var out: [CaptionRecord] = []
            _ = try BatchRunner(pipeline: pipeline, decodeBatch: decodeBatch, encoderThreads: threads)
                .run(listing: files + ["/nonexistent/missing.png"], include: { $0 != 1 }, emit: { out.append($0) })
            return out
        }
        let one = try records(decodeBatch: 1, threads: 1), five = try records(decodeBatch: 5, threads: 2)
        XCTAssertEqual(one.count, files.count)
        XCTAssertEqual(five.map(\.file), one.map(\.file))
        XCTAssertEqual(five.last?.isError, true, "the missing file keeps its place as an error record")
        for (a, b) in zip(five, one) where !b.isError {
            let ca = try XCTUnwrap(a.captions), cb = try XCTUnwrap(b.captions)
            XCTAssertEqual(ca.count, 3, a.file)
            XCTAssertEqual(ca.map(\.tokens), cb.map(\.tokens), a.file)
            XCTAssertEqual(ca.map(\.text), cb.map(\.text), a.file)
            for (x, y) in zip(ca, cb) { XCTAssertEqual(x.score, y.score, accuracy: Double(Self.scoreTolerance), a.file) }
        }
    }

    func testBatchSizeIsBoundedAndTheMemoryBudgetHolds() throws {
        let f = try ParityFixture("vit_gpt2_a")
        for bad in [0, -1, DecodeBatch.maximumCapacity + 1] {
            XCTAssertThrowsError(try DecodeBatch(decoder: f.decoder, encoderRows: f.encoder.sequenceLength, beamCapacity: 3,
                                                 lengthCapacity: 64, capacity: bad), "capacity \(bad)")
        }
        let perSlot = DecoderState.bytesPerSlot(layers: f.decoder.layerCount, width: f.decoder.hiddenSize, beamCapacity: 3,
                                                lengthCapacity: 64, encoderRows: f.encoder.sequenceLength)
        let batch = try DecodeBatch(decoder: f.decoder, encoderRows: f.encoder.sequenceLength, beamCapacity: 3,
                                    lengthCapacity: 64, capacity: 64, memoryBudget: 3 * perSlot + perSlot / 2)
        XCTAssertEqual(batch.capacity, 3)
        let states = try f.encode(f.imageNames[0])
        for i in 0..<3 {
            try batch.join(id: i, encoderStates: states.data, encoderRows: f.encoder.sequenceLength,
                           prompt: [f.defaults.decoderStartTokenId], parameters: f.defaults)
        }
        XCTAssertFalse(batch.hasFreeSlot)
        XCTAssertThrowsError(try batch.join(id: 3, encoderStates: states.data, encoderRows: f.encoder.sequenceLength,
                                            prompt: [f.defaults.decoderStartTokenId], parameters: f.defaults))
        var wide = f.defaults; wide.beamWidth = 4
        var done = 0
        batch.drain { _, result in if case .success = result { done += 1 } }
        XCTAssertEqual(done, 3)
        // A request needing more beams than the batch holds is refused at join, and the batch stays usable.
        XCTAssertThrowsError(try batch.join(id: 4, encoderStates: states.data, encoderRows: f.encoder.sequenceLength,
                                            prompt: [f.defaults.decoderStartTokenId], parameters: wide))
        XCTAssertEqual(batch.activeCount, 0)
    }
}
