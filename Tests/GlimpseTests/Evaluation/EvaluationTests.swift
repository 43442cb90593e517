import Foundation
import XCTest
@testable import Glimpse

/// `glimpse eval` against pycocoevalcap 1.2 and pycocotools 2.0.10 (Fixtures/eval, made by
/// tools/make_eval_fixtures.py): every value within 1e-4.
final class EvaluationTests: XCTestCase {
    static func fixture(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/eval/\(name)", withExtension: nil))
    }

    static func expected() throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixture("expected.json"))) as? [String: Any])
    }

    func testPTBTokenizerEqualsStanfordCoreNLPOnTheCorpus() throws {
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture("ptb_tokenizer.json"))) as? [String: [String]])
        let sentences = try XCTUnwrap(json["sentences"]), tokenized = try XCTUnwrap(json["tokenized"])
        XCTAssertEqual(sentences.count, tokenized.count)
        XCTAssertGreaterThan(sentences.count, 100)
        for (s, t) in zip(sentences, tokenized) { XCTAssertEqual(PTBTokenizer.tokenize(s), t, "sentence: \(s)") }
    }

    func testPTBTokenizerRules() {
        XCTAssertEqual(PTBTokenizer.tokens("He can't (really) say \"hi\"."), ["he", "ca", "n't", "-lrb-", "really", "-rrb-", "say", "``", "hi", "''", "."])
        XCTAssertEqual(PTBTokenizer.tokenize("Mr. Smith's 1,000 e-mails, etc."), "mr. smith 's 1,000 e-mails etc.")
        XCTAssertEqual(PTBTokenizer.tokenize(""), "")
    }

    private func report(meteor: URL? = nil) throws -> COCOEvaluation.Report {
        try COCOEvaluation.evaluate(predictions: Self.fixture("predictions.jsonl"), references: Self.fixture("captions.json"),
                                    instances: Self.fixture("instances.json"), options: .init(meteorJar: meteor))
    }

    func testCaptionMetricsEqualPycocoevalcap() throws {
        let exp = try Self.expected()
        let caps = try XCTUnwrap(exp["captions"] as? [String: Any])
        let overall = try XCTUnwrap(caps["overall"] as? [String: Double])
        let perImage = try XCTUnwrap(caps["per_image"] as? [String: [String: Double]])
        let r = try report()
        XCTAssertEqual(r.images, 35)
        XCTAssertEqual(r.failed, 1)
        XCTAssertEqual(r.missing, 1)
        XCTAssertEqual(r.captionScores.map(\.0), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"])
        for (k, v) in r.captionScores { XCTAssertEqual(v, try XCTUnwrap(overall[k]), accuracy: 1e-4, k) }
        XCTAssertEqual(r.perImage.count, perImage.count)
        for p in r.perImage {
            let e = try XCTUnwrap(perImage[String(p.imageID)])
            for (k, v) in p.scores { XCTAssertEqual(v, try XCTUnwrap(e[k]), accuracy: 1e-4, "\(p.fileName) \(k)") }
        }
        // the scores are not all trivially equal: the fixture has perfect and poor captions
        let cider = r.perImage.compactMap { $0.scores.first { $0.0 == "CIDEr" }?.1 }
        XCTAssertGreaterThan(cider.max() ?? 0, 5)
        XCTAssertEqual(cider.min() ?? 1, 0, accuracy: 1e-9)
    }

    func testExactMatchCountsCaptionsEqualToAReference() throws {
        let r = try report()
        let rows = try COCOEvaluation.readCaptions(Self.fixture("captions.json"))
        let exact = r.perImage.filter { p in (rows.captions[p.imageID] ?? []).contains(p.caption) }.count
        XCTAssertGreaterThan(exact, 0)
        XCTAssertEqual(r.exactMatch, Double(exact) / 35, accuracy: 1e-12)
    }

    func testDetectionMetricsEqualCOCOeval() throws {
        let exp = try Self.expected()
        let r = try report()
        for (name, stats) in [("bbox", r.bbox), ("segm", r.segm)] {
            let e = try XCTUnwrap(exp[name] as? [String: Double])
            let s = try XCTUnwrap(stats)
            XCTAssertEqual(s.count, 12)
            for (k, v) in zip(DetectionEvaluation.statNames, s) { XCTAssertEqual(v, try XCTUnwrap(e[k]), accuracy: 1e-4, "\(name) \(k)") }
        }
        XCTAssertEqual(try XCTUnwrap(r.boxRecall50), try XCTUnwrap(exp["box_recall_50"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(r.unknownLabels, 1)
    }

    func testPolygonMasksHavePycocotoolsArea() throws {
        // the fixture's polygon annotations carry pycocotools' area of frPyObjects + merge
        let data = try Data(contentsOf: Self.fixture("instances.json"))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let anns = try XCTUnwrap(json["annotations"] as? [[String: Any]])
        let polys = anns.filter { $0["segmentation"] is [[Any]] }
        XCTAssertEqual(polys.count, 2)
        let inst = try COCOEvaluation.readInstances(Self.fixture("instances.json"))
        for a in polys {
            let id = try XCTUnwrap(a["id"] as? Int)
            let t = try XCTUnwrap(inst.truths.first { $0.id == id })
            XCTAssertEqual(Double(try XCTUnwrap(t.mask).area), try XCTUnwrap(a["area"] as? Double))
        }
    }

    /// METEOR runs java; only when GLIMPSE_METEOR_JAR names pycocoevalcap's meteor-1.5.jar (about a
    /// minute: the jar loads its paraphrase table).
    func testMeteorEqualsPycocoevalcapWhenJavaRuns() throws {
        guard let jar = ProcessInfo.processInfo.environment["GLIMPSE_METEOR_JAR"], Meteor.javaExecutable() != nil else {
            throw XCTSkip("set GLIMPSE_METEOR_JAR to pycocoevalcap's meteor-1.5.jar (and have java) to run")
        }
        let overall = try XCTUnwrap((try Self.expected()["captions"] as? [String: Any])?["overall"] as? [String: Double])
        let r = try report(meteor: URL(fileURLWithPath: jar))
        let m = try XCTUnwrap(r.captionScores.first { $0.0 == "METEOR" })
        XCTAssertEqual(m.1, try XCTUnwrap(overall["METEOR"]), accuracy: 1e-4)
    }

    func testMatchingByRelativeNameThenBaseName() throws {
        let images = [COCOEvaluation.Image(id: 1, fileName: "a/x.png"), COCOEvaluation.Image(id: 2, fileName: "y.png"),
                      COCOEvaluation.Image(id: 3, fileName: "z.png")]
        let records = [CaptionRecord(file: "root/a/x.png", error: "e"), CaptionRecord(file: "other/y.png", error: "e"),
                       CaptionRecord(file: "b/x.png", error: "e")]
        XCTAssertEqual(try COCOEvaluation.match(images, to: records, file: "refs").map { $0 ?? -1 }, [0, 1, -1])
        // two records with the image's base name in different folders: ambiguous, an error
        let twice = [CaptionRecord(file: "p/y.png", error: "e"), CaptionRecord(file: "q/y.png", error: "e")]
        XCTAssertThrowsError(try COCOEvaluation.match([images[1]], to: twice, file: "refs"))
    }

    func testBadInputsAreTypedErrorsNamingTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.jsonl")
        try Data("{\"file\": \"x.png\", \"error\": \"e\"}\nnot json\n".utf8).write(to: bad)
        XCTAssertThrowsError(try COCOEvaluation.readPredictions(bad)) { e in
            XCTAssertTrue("\(e)".contains("bad.jsonl") && "\(e)".contains("line 2"), "\(e)")
        }
        let refs = dir.appendingPathComponent("refs.json")
        try Data("{\"images\": [{\"id\": \"one\"}]}".utf8).write(to: refs)
        XCTAssertThrowsError(try COCOEvaluation.readCaptions(refs)) { e in XCTAssertTrue("\(e)".contains("images[0]"), "\(e)") }
        XCTAssertThrowsError(try COCOEvaluation.readCaptions(dir.appendingPathComponent("missing.json")))
    }

    func testCIDErAndBLEUOnATinyCorpusByHand() {
        // one image, hypothesis equal to its only reference: idf log(1) = 0, so CIDEr-D is 0 (as in
        // pycocoevalcap); BLEU is 1 up to the 1e-15/1e-9 guards.
        let c = CaptionMetrics.ciderD(hypotheses: ["a red circle"], references: [["a red circle"]])
        XCTAssertEqual(c.corpus, 0)
        let b = CaptionMetrics.bleu(hypotheses: ["a red circle"], references: [["a red circle"]], maxN: 3)
        for v in b.corpus { XCTAssertEqual(v, 1, accuracy: 1e-8) }
        let r = CaptionMetrics.rougeL(hypotheses: ["a red circle"], references: [["a big red circle"]])
        // LCS 3: precision 1, recall 0.75, beta 1.2
        XCTAssertEqual(r.corpus, (1 + 1.44) * 0.75 / (0.75 + 1.44), accuracy: 1e-12)
    }
}

final class PolygonMaskTests: XCTestCase {
    func testRasterizesLikeRleFrPolyAndRefusesBadPolygons() throws {
        // an axis-aligned square with corners at 1 and 3: pycocotools' frPyObjects gives rows 1-2 and
        // columns 1-2 (4 pixels; the right and bottom edges are outside)
        let m = try RLE(polygons: [[1, 1, 3, 1, 3, 3, 1, 3]], height: 5, width: 5)
        XCTAssertEqual(m.area, 4)
        XCTAssertEqual(m.boundingBoxValues, [1, 1, 2, 2])
        // from the runs, without decoding: a mask of 10^10 pixels with one set pixel at (x 7, y 3)
        let huge = try RLE(height: 100_000, width: 100_000, counts: [7 * 100_000 + 3, 1, 100_000 * 100_000 - 700_004])
        XCTAssertEqual(huge.boundingBoxValues, [7, 3, 1, 1])
        // a run across columns spans the full height
        let wrap = try RLE(height: 4, width: 3, counts: [3, 2, 7])
        XCTAssertEqual(wrap.boundingBoxValues, [0, 0, 2, 4])
        XCTAssertThrowsError(try RLE(polygons: [[1, 1, 2, 2]], height: 5, width: 5))
        XCTAssertThrowsError(try RLE(polygons: [[1, 1, 1e300, 1, 3, 3]], height: 5, width: 5))
        XCTAssertThrowsError(try RLE(polygons: [[1, 1, .nan, 1, 3, 3]], height: 5, width: 5))
    }
}
