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
        let index = try writer.write(records: records, to: out)
        XCTAssertEqual(index.lastPathComponent, "index.html")
        let html = try String(contentsOf: index, encoding: .utf8)

        XCTAssertTrue(html.contains(#"a small red circle \u003c/script>"#), "record text embedded, '<' escaped")
        XCTAssertEqual(html.components(separatedBy: "</script>").count - 1, 1 + 3 + 1, "meta, 3 chunks of ≤500, the page script")
        XCTAssertTrue(html.contains(#""file": "images/broken.jpg", "error": "not an image"}"#))
        XCTAssertTrue(html.contains("caption number 1199"))
        XCTAssertTrue(html.contains(#""total":1202"#))
        XCTAssertTrue(html.contains(#""skipped":1"#))
        XCTAssertTrue(html.contains(#""errors":1"#))
        // relative, percent-encoded links to the image and its overlays
        XCTAssertTrue(html.contains(#"{"_href":"../images/two%20shapes.png","_overlays":["../overlays/two%20shapes/contact-sheet.png"],"file": "images/two shapes.png""#))
        // offline: no external URLs, lazy images, the RLE decoder is inline
        XCTAssertFalse(html.contains("http://"))
        XCTAssertFalse(html.contains("https://"))
        XCTAssertTrue(html.contains("loading = \"lazy\""))
        XCTAssertTrue(html.contains("function rleCounts"))
    }

    func testUnreadableRecordsFileIsAnError() {
        let missing = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString).jsonl")
        XCTAssertThrowsError(try ReportWriter.write(records: missing, to: FileManager.default.temporaryDirectory))
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
                                                         to: root.appendingPathComponent("report"))
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
        XCTAssertTrue(dom.contains("<canvas width=\"4\" height=\"3\""))
        XCTAssertTrue(dom.contains("page 2 / 13"))
        XCTAssertTrue(dom.contains("121 records, 1 error"))
    }
}
