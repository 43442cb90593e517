import Foundation
import XCTest
@testable import Glimpse

/// `glimpse overlay` and `glimpse report` as a user meets them: what the contact sheet shows, and
/// messages that name the file and the problem instead of a Foundation error dump (issue 14, items 19, 22).
final class OverlayCLITests: XCTestCase {
    func testContactSheetShowsTheCaptionTheOriginalAndTheLegend() throws {
        let model = try GlimpseCLI.fixtureModel(), image = try GlimpseCLI.fixtureImage("shapes_40x30.png")
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = try GlimpseCLI.run(["overlay", image.path, "--model", model.path, "--out", dir.path, "--max-tokens", "8"])
        XCTAssertEqual(out.status, 0, out.stderr)
        let caption = String(out.lines[0])
        let words = caption.split(separator: " ").count
        let sheet = try ImageDecoder.decode(contentsOf: dir.appendingPathComponent("contact-sheet.png")).image
        let original = try ImageDecoder.decode(contentsOf: image).image
        let l = ContactSheet().layout(count: words, imageWidth: 40, imageHeight: 30, caption: caption)
        XCTAssertEqual([sheet.width, sheet.height], [l.width, l.height])
        guard sheet.width == l.width, sheet.height == l.height else { return }
        XCTAssertFalse(l.titleLines.isEmpty)
        var ink = 0
        for y in 0..<l.titleHeight { for x in 0..<l.width where sheet.pixel(x: x, y: y) == .black { ink += 1 } }
        XCTAssertGreaterThan(ink, 50, "the caption is printed as the title")
        let o = l.origin(of: 0, margin: 8), tile = original.resized(width: l.tileWidth, height: l.tileHeight)
        for (x, y) in [(3, 3), (l.tileWidth / 2, l.tileHeight / 2), (l.tileWidth - 3, l.tileHeight - 3)] {
            XCTAssertEqual(sheet.pixel(x: o.x + x, y: o.y + y), tile.pixel(x: x, y: y), "the first tile is the original")
        }
        let legend = (0..<l.width).map { sheet.pixel(x: $0, y: l.legendTop + 4) }
        XCTAssertTrue(legend.contains(Colormap.viridis.color(0)) && legend.contains(Colormap.viridis.color(1)), "the colour scale")
    }

    func testOutputProblemsAreNamedInWords() throws {
        let model = try GlimpseCLI.fixtureModel(), image = try GlimpseCLI.fixtureImage("shapes_40x30.png")
        let dir = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("a-file")
        try Data("mine".utf8).write(to: file)
        let overlay = try GlimpseCLI.run(["overlay", image.path, "--model", model.path, "--out", file.path, "--max-tokens", "4"])
        XCTAssertEqual(overlay.status, 1)
        XCTAssertTrue(overlay.stderr.contains("glimpse: \(file.path): cannot create the output directory: \(file.path) exists and is not a directory"), overlay.stderr)
        XCTAssertFalse(overlay.stderr.contains("Error Domain"), overlay.stderr)

        let results = dir.appendingPathComponent("r.jsonl")
        try Data(#"{"file": "a.png"}"#.utf8).write(to: results)
        let report = try GlimpseCLI.run(["report", results.path, "--out", file.path])
        XCTAssertEqual(report.status, 1)
        XCTAssertTrue(report.stderr.contains("exists and is not a directory"), report.stderr)
        let notResults = try GlimpseCLI.run(["report", dir.path, "--out", dir.appendingPathComponent("out").path])
        XCTAssertEqual(notResults.status, 1)
        XCTAssertTrue(notResults.stderr.contains("\(dir.path): is a directory; give the JSON Lines file that glimpse batch wrote (--out)"), notResults.stderr)
        for out in [overlay, report, notResults] { XCTAssertFalse(out.stderr.contains("NSCocoaErrorDomain"), out.stderr) }
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "mine")
    }
}
