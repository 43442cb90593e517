import XCTest
@testable import Glimpse

/// ViT + GPT-2 against transformers 5.24 on random tiny checkpoints (tools/make_fixtures.py).
/// Tolerances: hidden states and attention 1e-4, logits 1e-3, tokens identical, scores 1e-3.
final class VisionEncoderDecoderParityTests: XCTestCase {
    static let models = ["vit_gpt2_a", "vit_gpt2_b", "vit_gpt2_c"]

    func testEncoderHiddenStatesMatchTransformers() throws {
        for name in Self.models {
            let f = try ParityFixture(name)
            for image in f.imageNames {
                let ours = try f.encode(image)
                let theirs = try f.tensor("\(image).encoder_hidden")
                XCTAssertEqual(ours.count, theirs.count, "\(name) \(image)")
                XCTAssertLessThan(maxAbsDifference(ours.data, theirs.data, count: theirs.count), 1e-4, "\(name) \(image)")
            }
        }
    }

    func testTeacherForcedLogitsAndCrossAttentionMatchTransformers() throws {
        for name in Self.models {
            let f = try ParityFixture(name)
            let ids = f.teacherForcedIds
            XCTAssertFalse(ids.isEmpty)
            for image in f.imageNames {
                let hidden = try f.encode(image)
                let state = f.decoder.makeState(beamCapacity: 1, lengthCapacity: 64)
                f.decoder.setEncoderStates(hidden.data, rows: f.encoder.sequenceLength, state: state)
                let logits = f.decoder.forward(tokens: ids, state: state, allPositions: true, captureCrossAttention: true)
                let expected = try f.tensor("\(image).logits")
                XCTAssertEqual(expected.count, ids.count * f.decoder.vocabularySize)
                XCTAssertLessThan(maxAbsDifference(logits, expected.data, count: expected.count), 1e-3, "\(name) \(image) logits")
                // cross_attentions.L: [1, heads, T, N]; ours: [layer][row][head][N]
                let heads = f.decoder.headCount, n = f.encoder.sequenceLength, t = ids.count
                for l in 0..<f.decoder.layerCount {
                    let ref = try f.tensor("\(image).cross_attentions.\(l)")
                    var worst: Float = 0
                    for h in 0..<heads { for r in 0..<t { for j in 0..<n {
                        let ours = state.crossAttention.pointer[((l * t + r) * heads + h) * n + j]
                        worst = max(worst, abs(ours - ref.data[(h * t + r) * n + j]))
                    } } }
                    XCTAssertLessThan(worst, 1e-4, "\(name) \(image) cross-attention layer \(l)")
                }
            }
        }
    }

    func testGenerateMatchesTransformersOnEveryCase() throws {
        var checked = 0
        for name in Self.models {
            let f = try ParityFixture(name)
            var encoded: [String: Tensor] = [:]
            for c in f.cases {
                let label = c["label"] as? String ?? "?", image = c["image"] as? String ?? ""
                let hidden = try encoded[image] ?? f.encode(image)
                encoded[image] = hidden
                let p = f.parameters(for: c["kwargs"] as? [String: Any] ?? [:])
                let state = f.decoder.makeState(beamCapacity: p.beamWidth, lengthCapacity: 64)
                f.decoder.setEncoderStates(hidden.data, rows: f.encoder.sequenceLength, state: state)
                let out = try Generator(decoder: f.decoder, parameters: p).generate(prompt: f.prompt(for: c, parameters: p), state: state)
                let expected = try XCTUnwrap(c["sequences"] as? [[Int]], label)
                XCTAssertEqual(out.count, expected.count, "\(name) \(label): number of sequences")
                let width = expected.first?.count ?? 0
                for (seq, exp) in zip(out, expected) {
                    // transformers pads shorter returned sequences with pad_token_id to a common length.
                    let padded = seq.tokens + Array(repeating: p.padTokenId ?? 0, count: max(0, width - seq.tokens.count))
                    XCTAssertEqual(padded, exp, "\(name) \(image) \(label)")
                }
                if let scores = c["sequences_scores"] as? [Double] {
                    for (seq, s) in zip(out, scores) {
                        XCTAssertEqual(Double(seq.score), s, accuracy: 1e-3, "\(name) \(image) \(label) score")
                    }
                }
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 40)
    }

    /// Each generated token's captured cross-attention equals the map transformers returned for the
    /// hypothesis' own beam (following beam_indices through reorders).
    func testGenerationAttentionMapsFollowTheBeamHistory() throws {
        var checked = 0
        for name in Self.models {
            let f = try ParityFixture(name)
            for c in f.cases {
                let label = c["label"] as? String ?? "?", image = c["image"] as? String ?? ""
                guard let steps = c["cross_attentions_steps"] as? Int, steps > 0 else { continue }
                var p = f.parameters(for: c["kwargs"] as? [String: Any] ?? [:])
                p.captureAttention = true
                let hidden = try f.encode(image)
                let state = f.decoder.makeState(beamCapacity: p.beamWidth, lengthCapacity: 64)
                f.decoder.setEncoderStates(hidden.data, rows: f.encoder.sequenceLength, state: state)
                let best = try XCTUnwrap(Generator(decoder: f.decoder, parameters: p)
                    .generate(prompt: f.prompt(for: c, parameters: p), state: state).first)
                let beamIndices = (c["beam_indices"] as? [[Int]])?.first
                let heads = f.decoder.headCount, n = f.encoder.sequenceLength
                // One map per generated token of the returned hypothesis (beam search may have run longer).
                XCTAssertEqual(best.crossAttention.count, best.tokens.count - best.promptLength, "\(name) \(label) steps")
                if beamIndices == nil { XCTAssertEqual(best.crossAttention.count, steps, "\(name) \(label) greedy steps") }
                for s in 0..<min(steps, best.crossAttention.count) {
                    let row = s == 0 ? 0 : (beamIndices?[s] ?? 0)
                    for l in 0..<f.decoder.layerCount {
                        let ref = try f.tensor("\(image).\(label).cross_attentions.\(s).\(l)")  // [rows, heads, q, N]
                        let q = ref.shape[2]
                        var worst: Float = 0
                        for h in 0..<heads { for j in 0..<n {
                            let theirs = ref.data[((row * heads + h) * q + (q - 1)) * n + j]
                            worst = max(worst, abs(best.crossAttention[s][(l * heads + h) * n + j] - theirs))
                        } }
                        XCTAssertLessThan(worst, 1e-4, "\(name) \(image) \(label) step \(s) layer \(l)")
                    }
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }
}
