import Foundation

/// Model-level measurements for `glimpse bench`: one encoder pass, decoder steps for greedy and
/// beam search at a fixed number of new tokens, and process memory.
public enum ModelBenchmark {
    public struct Figures: Sendable {
        public var encoderMilliseconds: Double
        public var greedyMilliseconds: Double
        public var beamMilliseconds: Double
        /// One decoder step: (a caption of `newTokens` − a caption of one token) / (`newTokens` − 1),
        /// so the per-caption setup (cross-attention keys and values of the image, the prompt) is out.
        public var greedyStepMilliseconds: Double
        public var beamStepMilliseconds: Double
        /// That setup: a one-token caption less one step.
        public var greedySetupMilliseconds: Double
        public var beamSetupMilliseconds: Double
        public var newTokens: Int
        public var beamWidth: Int
        public var stepWeightBytes: Int
        /// Beam search for `batchImages` images decoded together (`DecodeBatch`), per image.
        public var batchedBeamMillisecondsPerImage: Double
        public var batchImages: Int
    }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }

    /// Times `model` on a synthetic image (pixel values in [-1, 1]) with exactly `newTokens` tokens.
    public static func run(model: CaptionModel, newTokens: Int = 16, beamWidth: Int = 3, repeats: Int = 3,
                           batchImages: Int = 8) throws -> Figures {
        let size = model.encoder.imageSize
        var pixels = [Float](repeating: 0, count: 3 * size * size)
        for i in pixels.indices { pixels[i] = Float((i * 7919) % 255) / 127.5 - 1 }
        _ = model.encode(pixelValues: pixels, count: 1)  // warm-up
        var encodeTimes: [Double] = []
        var states = model.encode(pixelValues: pixels, count: 1)
        for _ in 0..<repeats {
            let start = ContinuousClock.now
            states = model.encode(pixelValues: pixels, count: 1)
            encodeTimes.append(milliseconds(since: start))
        }
        func parameters(beams: Int, tokens: Int = newTokens) -> GenerationParameters {
            var p = model.defaults
            p.beamWidth = beams
            p.returnCount = 1
            p.maxNewTokens = tokens
            p.minNewTokens = tokens
            p.noRepeatNgramSize = 0
            p.repetitionPenalty = 1
            return p
        }
        func generate(beams: Int, tokens: Int = newTokens) throws -> Double {
            let p = parameters(beams: beams, tokens: tokens)
            let state = model.makeState(beamWidth: beams, maxLength: p.resolvedMaxLength(promptLength: 1) + 8)
            let prompt = model.decoderPrompt(nil, parameters: p)
            _ = try model.generate(encoderStates: states[index: 0], prompt: prompt, parameters: p, state: state)
            var times: [Double] = []
            for _ in 0..<repeats {
                let start = ContinuousClock.now
                _ = try model.generate(encoderStates: states[index: 0], prompt: prompt, parameters: p, state: state)
                times.append(milliseconds(since: start))
            }
            return median(times)
        }
        let greedy = try generate(beams: 1)
        let beam = try generate(beams: beamWidth)
        let greedyOne = newTokens > 1 ? try generate(beams: 1, tokens: 1) : greedy
        let beamOne = newTokens > 1 ? try generate(beams: beamWidth, tokens: 1) : beam
        let steps = Double(max(1, newTokens - 1))
        let greedyStep = newTokens > 1 ? max(0, greedy - greedyOne) / steps : greedy
        let beamStep = newTokens > 1 ? max(0, beam - beamOne) / steps : beam
        // The same image `batchImages` times, decoded together (every image runs exactly `newTokens` steps).
        let p = parameters(beams: beamWidth), prompt = model.decoderPrompt(nil, parameters: p)
        let images = max(1, batchImages)
        let batch = try DecodeScheduler(model: model, parameters: p, promptLength: prompt.count, capacity: images)
        func decodeTogether() throws -> Double {
            let start = ContinuousClock.now
            for i in 0..<batch.capacity { batch.submit(.init(id: i, encoderStates: states[index: 0], prompt: prompt, parameters: p)) }
            var failure: Error?
            batch.drain { if case .failure(let error) = $0.result { failure = error } }
            if let failure { throw failure }
            return milliseconds(since: start) / Double(batch.capacity)
        }
        _ = try decodeTogether()
        let batchTimes = try (0..<repeats).map { _ in try decodeTogether() }
        return Figures(encoderMilliseconds: median(encodeTimes), greedyMilliseconds: greedy, beamMilliseconds: beam,
                       greedyStepMilliseconds: greedyStep, beamStepMilliseconds: beamStep,
                       greedySetupMilliseconds: max(0, greedyOne - greedyStep), beamSetupMilliseconds: max(0, beamOne - beamStep),
                       newTokens: newTokens, beamWidth: beamWidth, stepWeightBytes: model.decoder.stepWeightBytes,
                       batchedBeamMillisecondsPerImage: median(batchTimes), batchImages: batch.capacity)
    }
}

/// Process memory from /proc/self/status (Linux): current and peak resident set size in MiB.
public enum ProcessMemory {
    public static func residentMiB() -> (current: Double, peak: Double) {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func value(_ key: String) -> Double {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return 0 }
            return Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0").map { $0 / 1024 } ?? 0
        }
        return (value("VmRSS:"), value("VmHWM:"))
    }
}
