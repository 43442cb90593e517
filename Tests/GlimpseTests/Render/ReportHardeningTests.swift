import Foundation
import XCTest
@testable import Glimpse

/// Issue 14, items 14, 15 and 22, end to end: `glimpse report` written into the image directory, with
/// hostile file names and lines, then the page as Debian's headless Chromium runs and draws it (the
/// browser tests skip where Chromium is not installed: `apt-get install -y chromium`).
final class ReportHardeningTests: XCTestCase {
    static let red = RGB(220, 40, 40)

    /// Images named to attack the page, and a results file with a foreign `_href`, a trailing comma
    /// (Foundation reads it, `JSON.parse` does not), a line that is not JSON and a script in a caption.
    func corpus() throws -> (root: URL, results: URL) {
        let root = try GlimpseCLI.temporaryDirectory()
        let image = RGBImage.filled(width: 40, height: 30, color: Self.red)
        for name in ["javascript:alert(1).png", "b.png", "c.png", "d.png"] {
            try PNGWriter.write(image, to: root.appendingPathComponent(name))
        }
        var mask = BitMask(width: 40, height: 30)
        for y in 8..<22 { for x in 10..<30 { mask[x, y] = true } }
        let lines = [
            #"{"file": "javascript:alert(1).png", "width": 40, "height": 30, "captions": [{"text": "a small red square", "score": -0.1}], "detections": [{"label": "red square", "word": "square", "token_index": 4, "box": [10, 8, 20, 14], "score": 0.9, "mask": {"size": [30, 40], "counts": "\#(RLE(mask: mask).compressedString)"}}]}"#,
            #"{"file": "b.png", "_href": "javascript:alert(2)", "captions": [{"text": "own href"}]}"#,
            #"{"file":"c.png","captions":[{"text":"trailing comma"}],}"#,
            #"{"file": nope}"#,
            #"{"file": "d.png", "captions": [{"text": "</script><script>document.title='pwned'</script>"}]}"#,
        ]
        let results = root.appendingPathComponent("results.jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: results)
        return (root, results)
    }

    func report(_ results: URL, into dir: URL) throws -> String {
        let out = try GlimpseCLI.run(["report", results.path, "--out", dir.path])
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertTrue(out.stderr.contains("results.jsonl: 1 line is not a JSON record and was skipped (line 4)"), out.stderr)
        return try String(contentsOf: dir.appendingPathComponent("index.html"), encoding: .utf8)
    }

    func testHostileNamesAndLinesThroughTheCLI() throws {
        let (root, results) = try corpus()
        defer { try? FileManager.default.removeItem(at: root) }
        let before = try Data(contentsOf: root.appendingPathComponent("b.png"))
        let html = try report(results, into: root)
        let chunk = try XCTUnwrap(html.components(separatedBy: #"class="chunk" data-index="0">"#).last?.components(separatedBy: "</script>").first)
        XCTAssertTrue(chunk.hasPrefix(#"[{"file":"javascript:alert(1).png","href":"./javascript%3Aalert%281%29.png","width":40,"height":30,"#), chunk)
        XCTAssertTrue(chunk.contains(#"{"file":"b.png","href":"./b.png","captions":[{"text":"own href"}]}"#), chunk)
        XCTAssertFalse(html.contains("alert(2)"), "a record's own _href never reaches the page")
        XCTAssertTrue(chunk.contains(#"{"file":"c.png","href":"./c.png","captions":[{"text":"trailing comma"}]}"#), "re-serialized")
        XCTAssertTrue(chunk.contains(#""text":"\u003c/script>\u003cscript>document.title='pwned'\u003c/script>""#))
        XCTAssertTrue(html.contains(#""total":4,"errors":0,"skipped":1,"skippedLines":[4]"#))
        XCTAssertEqual(try Data(contentsOf: root.appendingPathComponent("b.png")), before, "images are not touched")
    }

    // MARK: - In a browser

    func chromium() throws -> String {
        guard let path = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw XCTSkip("chromium is not installed")
        }
        return path
    }

    /// Runs headless Chromium on `page` with `arguments` (--dump-dom prints the DOM after the script ran).
    func browse(_ page: URL, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try chromium())
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=4000",
                       "--force-device-scale-factor=1"] + arguments + [page.absoluteString]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return text
    }

    func matches(_ pattern: String, in text: String) throws -> [[String]] {
        let re = try NSRegularExpression(pattern: pattern)
        let ns = text as NSString
        return re.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { m in
            (0..<m.numberOfRanges).map { m.range(at: $0).location == NSNotFound ? "" : ns.substring(with: m.range(at: $0)) }
        }
    }

    func testEveryCardShowsAndEveryLinkIsARelativePath() throws {
        _ = try chromium()
        let (root, results) = try corpus()
        defer { try? FileManager.default.removeItem(at: root) }
        _ = try report(results, into: root)
        let dom = try browse(root.appendingPathComponent("index.html"), ["--window-size=1200,900", "--dump-dom"])
        XCTAssertEqual(dom.components(separatedBy: "<article class=\"card\"").count - 1, 4, "the trailing-comma line does not blank the page")
        XCTAssertTrue(dom.contains(">trailing comma<"))
        XCTAssertTrue(dom.contains("<title>Glimpse report</title>"), "the caption's script did not run")
        XCTAssertTrue(dom.contains("4 records, 0 errors, 1 unreadable line"))
        XCTAssertTrue(dom.contains("1 line of results.jsonl could not be read as a record and is not shown (line 4)."))
        let links = try matches(#"(?:href|src)="([^"]*)""#, in: dom).map { $0[1] }
        XCTAssertGreaterThanOrEqual(links.count, 4 + 4 + 1, "image, card and file links")
        for link in links {
            XCTAssertTrue(link.hasPrefix("./") || link.hasPrefix("../"), link)
            XCTAssertFalse(link.contains(":"), link)
        }
        XCTAssertTrue(links.contains("./javascript%3Aalert%281%29.png"))
    }

    /// Labels on a small image: inside the canvas, over no other label, one size whatever the image's.
    func testLabelsStayInsideTheImageAndDoNotOverlap() throws {
        _ = try chromium()
        let root = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        try PNGWriter.write(.filled(width: 40, height: 30, color: .white), to: root.appendingPathComponent("small.png"))
        // three boxes at the right edge: labels drawn at their boxes would leave the image and overlap
        let line = #"{"file": "small.png", "width": 40, "height": 30, "captions": [{"text": "x"}], "detections": ["#
            + #"{"label": "red circle", "box": [30, 0, 10, 10], "score": 0.91}, {"label": "blue star", "box": [32, 2, 8, 8], "score": 0.8},"#
            + #"{"label": "green hexagon", "box": [28, 20, 12, 10], "score": 0.7}]}"#
        try Data(line.utf8).write(to: root.appendingPathComponent("r.jsonl"))
        let index = try ReportWriter.write(records: root.appendingPathComponent("r.jsonl"), to: root.appendingPathComponent("report")).index
        let dom = try browse(index, ["--window-size=1200,900", "--dump-dom"])
        let canvases = try matches(#"<canvas width="(\d+)" height="(\d+)" data-labels="([^"]*)""#, in: dom)
        XCTAssertEqual(canvases.count, 1, dom)
        guard let c = canvases.first, let w = Int(c[1]), let h = Int(c[2]) else { return }
        XCTAssertGreaterThan(w, 200, "drawn at the card's size, not the image's 40 px")
        let rects = c[3].split(separator: ";").map { $0.split(separator: ",").compactMap { Int($0) } }
        XCTAssertEqual(rects.count, 3, "every label placed")
        for (i, r) in rects.enumerated() {
            XCTAssertEqual(r.count, 4)
            guard r.count == 4 else { continue }
            XCTAssertTrue(r[0] >= 0 && r[1] >= 0 && r[0] + r[2] <= w && r[1] + r[3] <= h, "label \(r) inside \(w)x\(h)")
            XCTAssertLessThanOrEqual(r[3], 16, "an 11 px label, not scaled up with the 40 px image")
            for s in rects[(i + 1)...] where s.count == 4 {
                XCTAssertFalse(r[0] < s[0] + s[2] && s[0] < r[0] + r[2] && r[1] < s[1] + s[3] && s[1] < r[1] + r[3], "\(r) overlaps \(s)")
            }
        }
    }

    /// The mask is an outline and a light fill: inside it the object keeps its colour, outside the
    /// box the image is unchanged.
    func testMaskFillKeepsTheObjectsColour() throws {
        _ = try chromium()
        let (root, results) = try corpus()
        defer { try? FileManager.default.removeItem(at: root) }
        let lines = try String(contentsOf: results, encoding: .utf8).split(separator: "\n")
        // the red image with its mask, under a plain name (this test is about colours, not links)
        try Data(lines[0].replacingOccurrences(of: "javascript:alert(1).png", with: "b.png").utf8).write(to: results)
        _ = try GlimpseCLI.run(["report", results.path, "--out", root.path])
        let shot = root.appendingPathComponent("shot.png")
        _ = try browse(root.appendingPathComponent("index.html"), ["--window-size=600,700", "--screenshot=\(shot.path)"])
        let image = try ImageDecoder.decode(contentsOf: shot).image
        func near(_ p: RGB, _ q: RGB, _ t: Int) -> Bool {
            abs(Int(p.r) - Int(q.r)) <= t && abs(Int(p.g) - Int(q.g)) <= t && abs(Int(p.b) - Int(q.b)) <= t
        }
        // where the picture is: the pixels of the image's own red
        var x0 = Int.max, y0 = Int.max, x1 = -1, y1 = -1
        for y in 0..<image.height { for x in 0..<image.width where near(image.pixel(x: x, y: y), Self.red, 6) {
            x0 = min(x0, x); y0 = min(y0, y); x1 = max(x1, x); y1 = max(y1, y)
        } }
        XCTAssertTrue(x1 >= 0 && x1 - x0 > 200, "the card's picture is in the screenshot")
        guard x1 >= 0 && x1 - x0 > 200 else { return }
        let sx = Double(x1 - x0 + 1) / 40, sy = Double(y1 - y0 + 1) / 30
        var inside = 0, changed = 0
        // the mask is x 10..<30, y 8..<22 of the image; keep 4 px off its outline
        for y in (y0 + Int(8 * sy) + 4)..<(y0 + Int(22 * sy) - 4) {
            for x in (x0 + Int(10 * sx) + 4)..<(x0 + Int(30 * sx) - 4) {
                inside += 1
                if !near(image.pixel(x: x, y: y), Self.red, 36) { changed += 1 }
            }
        }
        XCTAssertGreaterThan(inside, 1000)
        XCTAssertEqual(changed, 0, "pixels inside the mask whose colour moved more than 36 levels from the object's")
        var outside = 0
        // (rows clear of the card's rounded corners)
        for y in (y0 + 8)...(y1 - 8) { for x in x0..<(x0 + Int(9 * sx)) where !near(image.pixel(x: x, y: y), Self.red, 4) { outside += 1 } }
        XCTAssertEqual(outside, 0, "left of the box the image is unchanged")
    }
}
