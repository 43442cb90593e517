import Foundation
import XCTest
@testable import Glimpse

/// The shipped default model on the committed samples, through the CLI as users run it:
/// - parity: captions, scores, boxes and masks equal what PyTorch computed for the same checkpoint
///   and heads (samples/expected.jsonl, written by tools/make_samples.py);
/// - truth: captions exact against the scene world's grammar (samples/truth.jsonl) and boxes on the
///   objects (IoU >= 0.5).
final class DefaultModelTests: XCTestCase {
    /// The repository root (this file is Tests/GlimpseTests/CLI/DefaultModelTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func jsonLines(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
        return try text.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    static func iou(_ a: [Double], _ b: [Double]) -> Double {
        let x0 = max(a[0], b[0]), y0 = max(a[1], b[1])
        let x1 = min(a[0] + a[2], b[0] + b[2]), y1 = min(a[1] + a[3], b[1] + b[3])
        let inter = max(0, x1 - x0) * max(0, y1 - y0)
        return inter / (a[2] * a[3] + b[2] * b[3] - inter)
    }

    static func box(_ d: [String: Any]) -> [Double] {
        (d["box"] as? [Double]) ?? ((d["box"] as? [Int]) ?? []).map(Double.init)
    }

    /// A mask from the contract's JSON: compressed string (ours) or counts list (pycocotools' uncompressed form).
    static func mask(_ d: [String: Any]) throws -> BitMask {
        let m = try XCTUnwrap(d["mask"] as? [String: Any])
        let size = try XCTUnwrap(m["size"] as? [Int])
        if let s = m["counts"] as? String { return try RLE(height: size[0], width: size[1], compressed: s).decode() }
        return try RLE(height: size[0], width: size[1], counts: try XCTUnwrap(m["counts"] as? [Int])).decode()
    }

    func run(_ files: [String]) throws -> [[String: Any]] {
        let paths = files.map { Self.root.appendingPathComponent($0).path }
        let out = try GlimpseCLI.run(["caption", "--json", "--segment", "--model", Self.root.appendingPathComponent("models/default").path] + paths)
        XCTAssertEqual(out.status, 0, out.stderr)
        return try out.lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    func testSamplesEqualPyTorchOnTheShippedCheckpoint() throws {
        let expected = try jsonLines("samples/expected.jsonl")
        XCTAssertGreaterThanOrEqual(expected.count, 10)
        let records = try run(expected.compactMap { $0["file"] as? String })
        XCTAssertEqual(records.count, expected.count)
        for (ours, theirs) in zip(records, expected) {
            let file = theirs["file"] as? String ?? "?"
            let c = try XCTUnwrap((ours["captions"] as? [[String: Any]])?.first)
            let e = try XCTUnwrap((theirs["captions"] as? [[String: Any]])?.first)
            XCTAssertEqual(c["tokens"] as? [Int], e["tokens"] as? [Int], file)
            XCTAssertEqual(c["text"] as? String, e["text"] as? String, file)
            XCTAssertEqual(try XCTUnwrap(c["score"] as? Double), try XCTUnwrap(e["score"] as? Double), accuracy: 1e-3, file)
            let dets = ours["detections"] as? [[String: Any]] ?? [], edets = theirs["detections"] as? [[String: Any]] ?? []
            XCTAssertEqual(dets.map { $0["label"] as? String }, edets.map { $0["label"] as? String }, file)
            for (d, ed) in zip(dets, edets) {
                XCTAssertEqual(d["token_index"] as? Int, ed["token_index"] as? Int, file)
                XCTAssertGreaterThanOrEqual(Self.iou(Self.box(d), Self.box(ed)), 0.95, "\(file) box")
                XCTAssertEqual(try XCTUnwrap(d["score"] as? Double), try XCTUnwrap(ed["score"] as? Double), accuracy: 1e-3, file)
                let a = try Self.mask(d), b = try Self.mask(ed)
                var inter = 0, union = 0
                for y in 0..<a.height { for x in 0..<a.width {
                    if a[x, y] && b[x, y] { inter += 1 }
                    if a[x, y] || b[x, y] { union += 1 }
                } }
                XCTAssertGreaterThanOrEqual(Double(inter) / Double(max(union, 1)), 0.95, "\(file) mask")
            }
        }
    }

    /// `batch` keeps a queued image's pixels for the heads that refine masks from them: its records'
    /// boxes and masks are `caption`'s.
    func testBatchDetectionsEqualCaptions() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-batch-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: out) }
        let run = try GlimpseCLI.run(["batch", Self.root.appendingPathComponent("samples").path, "--segment", "--quiet",
                                      "--model", Self.root.appendingPathComponent("models/default").path, "--out", out.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        let text = try String(contentsOf: out, encoding: .utf8)
        let batch = try text.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let byName = Dictionary(batch.map { (URL(fileURLWithPath: $0["file"] as? String ?? "").lastPathComponent, $0) },
                                uniquingKeysWith: { a, _ in a })
        let files = try jsonLines("samples/truth.jsonl").compactMap { ($0["file"] as? String).map { "samples/" + $0 } }
        XCTAssertEqual(byName.count, files.count)
        var masks = 0
        for record in try self.run(files) {
            let name = URL(fileURLWithPath: record["file"] as? String ?? "").lastPathComponent
            let theirs = try XCTUnwrap(byName[name], name)
            let ours = record["detections"] as? [[String: Any]] ?? []
            XCTAssertEqual(ours as NSArray, (theirs["detections"] as? [[String: Any]] ?? []) as NSArray, name)
            masks += ours.filter { $0["mask"] != nil }.count
        }
        XCTAssertGreaterThan(masks, 20)
    }

    func testSamplesCaptionTheSceneWithBoxesOnTheObjects() throws {
        let truths = try jsonLines("samples/truth.jsonl")
        let records = try run(truths.compactMap { ($0["file"] as? String).map { "samples/" + $0 } })
        var exact = 0
        for (truth, record) in zip(truths, records) {
            let file = truth["file"] as? String ?? "?"
            XCTAssertEqual(record["width"] as? Int, truth["width"] as? Int, file)
            XCTAssertEqual(record["height"] as? Int, truth["height"] as? Int, file)
            let caption = (record["captions"] as? [[String: Any]])?.first?["text"] as? String
            guard caption == truth["caption"] as? String else { continue }
            exact += 1
            let detections = record["detections"] as? [[String: Any]] ?? []
            for object in truth["objects"] as? [[String: Any]] ?? [] {
                let label = "\(object["color"] as? String ?? "") \(object["shape"] as? String ?? "")"
                let truthBox = ((object["box"] as? [Int]) ?? []).map(Double.init)
                let matching = detections.filter { $0["label"] as? String == label }
                let best = matching.map { Self.iou(Self.box($0), truthBox) }.max() ?? 0
                XCTAssertGreaterThanOrEqual(best, 0.5, "\(file): \(label)")
                // The heads refine masks from the pixels (heads.json version 2): 0.99 mean IoU on the
                // model card's 500 scenes; 0.85 is issue 15's bound for the mean, asked here of each object.
                let truthMask = try Self.mask(object)
                let maskIoU = try matching.map { d -> Double in
                    let m = try Self.mask(d)
                    var inter = 0, union = 0
                    for y in 0..<m.height { for x in 0..<m.width {
                        if m[x, y] && truthMask[x, y] { inter += 1 }
                        if m[x, y] || truthMask[x, y] { union += 1 }
                    } }
                    return Double(inter) / Double(max(union, 1))
                }.max() ?? 0
                XCTAssertGreaterThanOrEqual(maskIoU, 0.85, "\(file): \(label) mask")
            }
        }
        // The model card's exact match is 93%; the shipped weights caption all 12 samples exactly
        // (the weights before them read one-small-shape-tiny-canvas.png's small star as a triangle);
        // this bound allows one miss and no more.
        XCTAssertGreaterThanOrEqual(exact, truths.count - 1, "exact captions on the samples")
    }
}
