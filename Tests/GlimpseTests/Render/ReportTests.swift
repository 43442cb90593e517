import XCTest
@testable import Glimpse

final class ReportTests: XCTestCase {
    func testReportEmbedsRecordsAndIsOffline() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("glimpse-report-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: root) }
        let images = root.appendingPathComponent("images")
        try fm.createDirectory(at: images, withIntermediateDirectories: true)
        try Data([0]).write(to: images.appendingPathComponent("two shapes.png"))
        let overlays = root.appendingPathComponent("overlays/two shapes")
        try fm.createDirectory(at: overlays, withIntermediateDirectories: true)
        try Data([0]).write(to: overlays.appendingPathComponent("contact-sheet.png"))

        var lines = [
            #"{"file": "images/two shapes.png", "width": 4, "height": 3, "captions": [{"text": "a small red circle </script>", "score": -0.12, "tokens": [1]}], "detections": [{"label": "red circle", "word": "circle", "token_index": 4, "box": [1, 0, 2, 2], "score": 0.9, "mask": {"size": [3, 4], "counts": "32103"}}]}"#,
            #"{"file": "images/broken.jpg", "error": "not an image"}"#,
        ]
        for i in 0..<1200 { lines.append(#"{"file": "images/gen-\#(i).png", "width": 8, "height": 8, "captions": [{"text": "caption number \#(i)", "score": -1}]}"#) }
        lines.append(#"{"file": "images/cut-off.png", "capt"#)      // a killed run's last line
        let records = root.appendingPathComponent("results.jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: records)

        let out = root.appendingPathComponent("report")
        let writer = ReportWriter(overlaysDirectory: root.appendingPathComponent("overlays"))
        let written = try writer.write(records: records, to: out)
        XCTAssertEqual(written.index.lastPathComponent, "index.html")
        XCTAssertEqual(written.records, 1202)
        XCTAssertEqual(written.skippedLines, [1203])
        let html = try String(contentsOf: written.index, encoding: .utf8)

        XCTAssertTrue(html.contains(#"a small red circle \u003c/script>"#), "record text embedded, '<' escaped")
        XCTAssertEqual(html.components(separatedBy: "</script>").count - 1, 1 + 3 + 1, "meta, 3 chunks of ≤500, the page script")
        XCTAssertNotNil(html.range(of: #"\{"file":"images/broken.jpg","href":"[^"]*images/broken.jpg","error":"not an image"\}"#, options: .regularExpression))
        XCTAssertTrue(html.contains("caption number 1199"))
        XCTAssertTrue(html.contains(#""total":1202"#))
        XCTAssertTrue(html.contains(#""skipped":1,"skippedLines":[1203]"#))
        XCTAssertTrue(html.contains(#""errors":1"#))
        // relative, percent-encoded links to the image and its overlays; the mask re-encoded as the page reads it
        XCTAssertTrue(html.contains(#"{"file":"images/two shapes.png","href":"../images/two%20shapes.png","overlays":["../overlays/two%20shapes/contact-sheet.png"],"width":4,"height":3,"captions":[{"text":"a small red circle \u003c/script>","score":-0.12}],"detections":[{"label":"red circle","box":[1,0,2,2],"score":0.9,"mask":"32103"}]}"#))
        // offline: no external URLs, lazy images, the RLE decoder is inline
        XCTAssertFalse(html.contains("http://"))
        XCTAssertFalse(html.contains("https://"))
        XCTAssertTrue(html.contains("loading = \"lazy\""))
        XCTAssertTrue(html.contains("function rleCounts"))
    }

    /// Item 14: every link is relative, `./`-prefixed unless it climbs, and percent-encoded segment by
    /// segment, so no file name reads as a scheme, query or fragment.
    func testLinksArePercentEncodedRelativePaths() {
        let out = URL(fileURLWithPath: "/data/photos")
        XCTAssertEqual(ReportWriter.link(from: out, to: URL(fileURLWithPath: "/data/photos/javascript:alert(1).png")),
                       "./javascript%3Aalert%281%29.png")
        XCTAssertEqual(ReportWriter.link(from: out, to: URL(fileURLWithPath: "/data/photos/a b/it's #1?;.png")),
                       "./a%20b/it%27s%20%231%3F%3B.png")
        XCTAssertEqual(ReportWriter.link(from: out, to: URL(fileURLWithPath: "/data/other/café.png")), "../other/caf%C3%A9.png")
        XCTAssertEqual(ReportWriter.link(from: out, to: URL(fileURLWithPath: "/data/photos/sub/../x~y_z-1.png")), "./x~y_z-1.png")
        XCTAssertEqual(ReportWriter.link(from: out, to: URL(fileURLWithPath: "/e\"v<i>l&.png")), "../../e%22v%3Ci%3El%26.png")
    }

    /// Item 15: each record is rebuilt from the fields the report defines and written by JSONText;
    /// other fields (`_href`) never reach the page, wrong types are dropped, masks are checked.
    func testRecordsKeepOnlyTheReportsFieldsWithTheirTypes() throws {
        func record(_ text: String) throws -> ReportRecord? {
            ReportRecord(json: try JSONSerialization.jsonObject(with: Data(text.utf8)))
        }
        let r = try XCTUnwrap(try record(#"{"file": "a.png", "_href": "javascript:alert(1)", "onload": "x", "width": 4, "height": 3, "model": "/m", "captions": [{"text": "hi", "score": true}, {"text": 5}], "detections": [{"word": "circle", "box": [1, 0, 2, "x"], "score": 0.5, "mask": {"size": [3, 4], "counts": [0, 5, 7]}}, {"label": "big", "box": [0, 0, 4, 3], "mask": {"size": [3, 4], "counts": [0, 5, 8]}}]}"#))
        XCTAssertEqual(r.json(href: "./a.png", overlayLinks: []),
                       #"{"file":"a.png","href":"./a.png","width":4,"height":3,"captions":[{"text":"hi"}],"detections":[{"label":"circle","score":0.5,"mask":"057"},{"label":"big","box":[0,0,4,3]}]}"#)
        XCTAssertNil(try record("[1, 2]"))
        XCTAssertEqual(try record(#"{"file": "x.png", "error": {"code": 3}}"#)?.error, "error")
        XCTAssertNil(try record(#"{"file": "x.png", "width": 1e300, "height": -3}"#)?.width)
        XCTAssertEqual(try record(#"{"file": "x.png", "width": 4.0}"#)?.width, 4)
        // A classification record shows its classes, best first, with their probabilities.
        let classified = try XCTUnwrap(try record(#"{"file": "c.png", "width": 2, "height": 2, "labels": [{"label": "tabby cat", "id": 281, "score": 0.75}, {"label": 7, "id": 1}, {"label": "daisy", "id": 3, "score": "x"}]}"#))
        XCTAssertEqual(classified.captions, [.init(text: "tabby cat", score: 0.75), .init(text: "daisy", score: nil)])
    }

    func testSHA256KnownAnswers() {
        func hex(_ s: String) -> String { SHA256.hex(Array(s.utf8)) }
        XCTAssertEqual(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(Digest.cspSource("abc"), "'sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0='")
    }

    /// The page's policy allows exactly its own script and style, by hash.
    func testContentSecurityPolicyPinsThePagesScriptAndStyle() throws {
        let root = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        try Data(#"{"file": "a.png"}"#.utf8).write(to: root.appendingPathComponent("r.jsonl"))
        let html = try String(contentsOf: try ReportWriter.write(records: root.appendingPathComponent("r.jsonl"), to: root).index, encoding: .utf8)
        let csp = try XCTUnwrap(html.range(of: #"<meta http-equiv="Content-Security-Policy" content="[^"]*">"#, options: .regularExpression).map { String(html[$0]) })
        XCTAssertTrue(csp.contains("default-src 'none'"), csp)
        XCTAssertFalse(csp.contains("unsafe-inline"), csp)
        let script = try XCTUnwrap(html.components(separatedBy: "<script>").last?.components(separatedBy: "</script>").first)
        let style = try XCTUnwrap(html.components(separatedBy: "<style>").last?.components(separatedBy: "</style>").first)
        XCTAssertTrue(csp.contains("script-src \(Digest.cspSource(script));"), csp)
        XCTAssertTrue(csp.contains("style-src \(Digest.cspSource(style));"), csp)
        XCTAssertEqual(html.components(separatedBy: "<script>").count - 1, 1, "one executable script; the rest is application/json")
    }

    /// An index.html that glimpse report did not write is never replaced; its own is.
    func testForeignIndexHTMLIsKept() throws {
        let root = try GlimpseCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let records = root.appendingPathComponent("r.jsonl")
        try Data(#"{"file": "a.png"}"#.utf8).write(to: records)
        let index = root.appendingPathComponent("index.html")
        try Data("<html>my own page</html>".utf8).write(to: index)
        XCTAssertThrowsError(try ReportWriter.write(records: records, to: root)) { error in
            XCTAssertTrue("\(error)".contains("\(index.path): exists and was not written by glimpse report"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: index, encoding: .utf8), "<html>my own page</html>")
        try FileManager.default.removeItem(at: index)
        try ReportWriter.write(records: records, to: root)
        try Data(#"{"file": "b.png"}"#.utf8).write(to: records)
        try ReportWriter.write(records: records, to: root)          // its own page is rewritten
        XCTAssertTrue(try String(contentsOf: index, encoding: .utf8).contains(#""file":"b.png""#))
        XCTAssertThrowsError(try ReportWriter.write(records: records, to: records)) { error in   // --out is a file
            XCTAssertTrue("\(error)".contains("exists and is not a directory"), "\(error)")
        }
    }

    func testUnreadableRecordsFileIsAnError() {
        let missing = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString).jsonl")
        XCTAssertThrowsError(try ReportWriter.write(records: missing, to: FileManager.default.temporaryDirectory)) { error in
            XCTAssertEqual("\(error)", "\(missing.path): cannot read: no such file")
        }
        // a directory instead of the results file: said in words, not as a Foundation error code
        let dir = FileManager.default.temporaryDirectory
        XCTAssertThrowsError(try ReportWriter.write(records: dir, to: dir.appendingPathComponent("r-\(UUID().uuidString)"))) { error in
            XCTAssertTrue("\(error)".hasSuffix("is a directory; give the JSON Lines file that glimpse batch wrote (--out)"), "\(error)")
        }
    }
}

/// The report's script runs in a real browser: Debian's headless Chromium renders the cards
/// (skipped where Chromium is not installed: `apt-get install -y chromium`).
final class ReportBrowserTests: XCTestCase {
    func testRendersInHeadlessChromium() throws {
        let fm = FileManager.default
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: fm.isExecutableFile(atPath:)) else {
            throw XCTSkip("chromium is not installed")
        }
        let root = fm.temporaryDirectory.appendingPathComponent("glimpse-browser-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: root) }
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        var lines = [#"{"file": "bad.jpg", "error": "not an image"}"#]
        for i in 0..<120 {
            lines.append(#"{"file": "img-\#(i).png", "width": 4, "height": 3, "captions": [{"text": "caption \#(i)", "score": -0.5}], "detections": [{"label": "red circle", "word": "circle", "token_index": 4, "box": [1, 0, 2, 2], "score": 0.9, "mask": {"size": [3, 4], "counts": "32103"}}]}"#)
        }
        try Data(lines.joined(separator: "\n").utf8).write(to: root.appendingPathComponent("r.jsonl"))
        let index = try ReportWriter(pageSize: 10).write(records: root.appendingPathComponent("r.jsonl"),
                                                         to: root.appendingPathComponent("report")).index
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chromium)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
                       "--dump-dom", index.absoluteString + "#2"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let dom = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        // page 2 of 10-record pages: records 10..<20 (the error record was record 0, on page 1)
        XCTAssertEqual(dom.components(separatedBy: "<article class=\"card\"").count - 1, 10)
        XCTAssertTrue(dom.contains("caption 9<"))          // record 10 is "caption 9"
        XCTAssertFalse(dom.contains("caption 19<"))
        XCTAssertEqual(dom.components(separatedBy: "<canvas width=").count - 1, 10, "one canvas per card, sized by the page")
        XCTAssertTrue(dom.contains("page 2 / 13"))
        XCTAssertTrue(dom.contains("121 records, 1 error"))
    }
}
