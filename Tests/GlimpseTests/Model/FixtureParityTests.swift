import XCTest
@testable import Glimpse

/// Every model fixture under Fixtures/models (random tiny checkpoints of each family with
/// transformers 5.24's numbers, tools/make_fixtures.py), loaded through the family registry.
/// Tolerances: hidden states and attention 1e-4, logits 1e-3, tokens identical, scores 1e-3.
/// Family-specific rules (config defaults, weight tying, prompt rules) have their own tests.
final class FixtureParityTests: XCTestCase {
    private var fixtures: [ParityFixture] {
        get throws { try ParityFixture.names.map { try ParityFixture($0) } }
    }

    func testEveryFamilyHasAFixture() throws {
        var covered = Set(try fixtures.map(\.family.name))
        for name in ParityFixture.names(matching: { $0 is any ClassifierFamily }) {
            covered.insert(try ClassifierFixture(name).model.family.name)
        }
        for name in ParityFixture.names(matching: { ($0 as? any CaptionFamily)?.taskTokens.isEmpty == false }) {
            covered.insert(try ParityFixture(name).family.name)
        }
        for family in ModelFamilies.all {
            XCTAssertTrue(covered.contains(family.name), "no parity fixture of family \(family.name) in Fixtures/models")
        }
    }

    func testEncoderHiddenStatesMatchTransformers() throws {
        for f in try fixtures {
            for image in f.imageNames {
                let pixels = try f.tensor("\(image).pixel_values")
                let ours = f.encoder.encode(pixelValues: pixels.data, count: 1)
                let theirs = try f.tensor("\(image).encoder_hidden")
                XCTAssertEqual(ours.shape, theirs.shape, "\(f.name) \(image)")
                assertClose(ours.data, theirs, count: ours.count, tolerance: 1e-4, "\(f.name) \(image) encoder last_hidden_state")
            }
        }
    }

    func testBatchedEncoderEqualsOneByOne() throws {
        for f in try fixtures {
            let names = f.imageNames
            var pixels: [Float] = []
            for image in names { pixels += try f.tensor("\(image).pixel_values").scalars }
            let batch = pixels.withUnsafeBufferPointer { buffer in
                buffer.baseAddress.map { f.encoder.encode(pixelValues: $0, count: names.count) }
            }
            let together = try XCTUnwrap(batch)
            XCTAssertEqual(together.shape, [names.count, f.encoder.sequenceLength, f.encoder.hiddenSize], f.name)
            for (i, image) in names.enumerated() {
                let alone = try f.encode(image)
                // Same math; only gemm blocking over more rows may round differently.
                assertClose(together[index: i].data, alone, count: alone.count, tolerance: 1e-5, "\(f.name) \(image) batched vs alone")
            }
        }
    }

    func testTeacherForcedLogitsAndCrossAttentionMatchTransformers() throws {
        for f in try fixtures {
            let ids = f.teacherForcedIds
            XCTAssertFalse(ids.isEmpty, f.name)
            let layers = f.decoder.layerCount, heads = f.decoder.headCount, vocab = f.decoder.vocabularySize
            for image in f.imageNames {
                let what = "\(f.name) \(image)"
                let hidden = try f.encode(image)
                let state = f.decoder.makeState(beamCapacity: 1, lengthCapacity: f.decoder.maxPositions)
                f.decoder.setEncoderStates(hidden.data, rows: f.encoder.sequenceLength, state: state)
                let logits = f.decoder.forward(tokens: ids, state: state, allPositions: true, captureCrossAttention: true)
                let expected = try f.tensor("\(image).logits")
                assertClose(logits, expected, count: ids.count * vocab, tolerance: 1e-3, "\(what) logits")

                // cross_attentions.L: [1, heads, T, N]; ours: [layer][row][head][N]
                let enc = state.encoderRows, t = ids.count
                XCTAssertEqual(enc, f.encoder.sequenceLength, what)
                XCTAssertEqual(state.capturedRows, t, what)
                for l in 0..<layers {
                    let ref = try f.tensor("\(image).cross_attentions.\(l)")
                    let mine = crossAttentionAsTorch(state, layer: l, rows: t, heads: heads)
                    assertClose(mine, ref, count: mine.count, tolerance: 1e-4, "\(what) cross-attention layer \(l)")
                }

                // The KV cache: feeding the same ids one at a time gives the same last-position logits.
                state.reset()
                var last: UnsafeMutablePointer<Float>?
                for id in ids { last = f.decoder.forward(tokens: [id], state: state, allPositions: false, captureCrossAttention: false) }
                let lastRow = Tensor(shape: [vocab], storage: expected.storage, offset: expected.offset + (t - 1) * vocab)
                assertClose(try XCTUnwrap(last), lastRow, count: vocab, tolerance: 1e-3, "\(what) incremental logits")
            }
        }
    }

    func testGenerateMatchesTransformersOnEveryCase() throws {
        var total = 0
        for f in try fixtures {
            XCTAssertFalse(f.cases.isEmpty, f.name)
            var encoded: [String: Tensor] = [:]
            var checked = 0
            for c in f.cases {
                let label = try XCTUnwrap(c["label"] as? String), image = try XCTUnwrap(c["image"] as? String)
                let what = "\(f.name) \(image) \(label)"
                let hidden = try encoded[image] ?? f.encode(image)
                encoded[image] = hidden
                let p = try f.parameters(for: try XCTUnwrap(c["kwargs"] as? [String: Any], what))
                let prompt = try f.prompt(for: c, parameters: p)
                let out = try f.generate(hidden, prompt: prompt, parameters: p)
                assertSequences(out, match: c, prompt: prompt, parameters: p, what)
                checked += 1
            }
            XCTAssertEqual(checked, f.cases.count, f.name)
            total += checked
        }
        XCTAssertGreaterThanOrEqual(total, 40)
    }

    /// Each generated token's captured cross-attention equals transformers' for the returned
    /// hypothesis. Two reference forms under `cross_attentions_prefix`: per generate step with beam rows
    /// when the case has `cross_attentions_steps` (followed through `beam_indices`), else the returned
    /// sequence teacher-forced (decoder-only generate returns no cross-attentions: row p predicted token p + 1).
    func testGenerationAttentionMapsMatchTransformers() throws {
        var checked = 0
        for f in try fixtures {
            let heads = f.decoder.headCount, n = f.encoder.sequenceLength, layers = f.decoder.layerCount
            for c in f.cases {
                let label = try XCTUnwrap(c["label"] as? String), image = try XCTUnwrap(c["image"] as? String)
                let what = "\(f.name) \(image) \(label)"
                let steps = c["cross_attentions_steps"] as? Int ?? 0
                let prefix = c["cross_attentions_prefix"] as? String
                guard steps > 0 || prefix != nil else { continue }
                var p = try f.parameters(for: try XCTUnwrap(c["kwargs"] as? [String: Any], what))
                p.captureAttention = true
                let prompt = try f.prompt(for: c, parameters: p)
                let out = try f.generate(try f.encode(image), prompt: prompt, parameters: p)
                // Capturing the maps changes no token.
                assertSequences(out, match: c, prompt: prompt, parameters: p, "\(what) (capturing)")
                let best = try XCTUnwrap(out.first, what)
                // One map per generated token of the returned hypothesis (beam search may have run longer).
                XCTAssertEqual(best.crossAttention.count, best.tokens.count - best.promptLength, "\(what): one map per generated token")
                if steps > 0 {
                    let beamIndices = (c["beam_indices"] as? [[Int]])?.first
                    if beamIndices == nil { XCTAssertEqual(best.crossAttention.count, steps, "\(what) greedy steps") }
                    for s in 0..<min(steps, best.crossAttention.count) {
                        let row = s == 0 ? 0 : (beamIndices?[s] ?? 0)
                        for l in 0..<layers {
                            let ref = try f.tensor("\(image).\(label).cross_attentions.\(s).\(l)")  // [rows, heads, q, N]
                            let q = ref.shape[2]
                            var worst: Float = 0
                            for h in 0..<heads { for j in 0..<n {
                                let theirs = ref.data[((row * heads + h) * q + (q - 1)) * n + j]
                                worst = max(worst, abs(best.crossAttention[s][(l * heads + h) * n + j] - theirs))
                            } }
                            XCTAssertLessThan(worst, 1e-4, "\(what) step \(s) layer \(l)")
                        }
                    }
                } else if let prefix {
                    // Generated token S (at position P + S) came from row P - 1 + S of the teacher-forced pass.
                    for l in 0..<layers {
                        let ref = try f.tensor("\(prefix).\(l)")   // [1, heads, q, N]
                        let q = ref.shape[2]
                        for (s, map) in best.crossAttention.enumerated() {
                            let row = prompt.count - 1 + s
                            guard row < q else { XCTFail("\(what): step \(s) beyond the reference rows"); continue }
                            var worst: Float = 0
                            for h in 0..<heads { for j in 0..<n {
                                worst = max(worst, abs(map[(l * heads + h) * n + j] - ref.data[(h * q + row) * n + j]))
                            } }
                            XCTAssertLessThanOrEqual(worst, 1e-4, "\(what): cross-attention step \(s) layer \(l)")
                        }
                    }
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }

    // MARK: helpers

    /// `out` equals the case's `sequences` (shorter hypotheses filled as transformers fills them:
    /// `pad_token_id or eos_token_id[0]`) and, for beam cases, its `sequences_scores`.
    private func assertSequences(_ out: [GeneratedSequence], match c: [String: Any], prompt: [Int], parameters p: GenerationParameters,
                                 _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let expected = c["sequences"] as? [[Int]] else { return XCTFail("\(what): no sequences", file: file, line: line) }
        XCTAssertEqual(out.count, expected.count, "\(what): number of sequences", file: file, line: line)
        let width = out.map(\.tokens.count).max() ?? 0
        for (i, seq) in out.enumerated() where i < expected.count {
            let padded = seq.tokens + Array(repeating: p.outputFillTokenId, count: width - seq.tokens.count)
            XCTAssertEqual(padded, expected[i], "\(what): sequence \(i)", file: file, line: line)
            XCTAssertEqual(seq.promptLength, prompt.count, "\(what): prompt length", file: file, line: line)
        }
        if let scores = c["sequences_scores"] as? [Double] {
            for (i, s) in scores.enumerated() where i < out.count {
                XCTAssertEqual(Double(out[i].score), s, accuracy: 1e-3, "\(what): sequences_scores[\(i)]", file: file, line: line)
            }
        }
    }
}
