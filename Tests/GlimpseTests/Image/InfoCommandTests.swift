import Foundation
import XCTest

/// `glimpse info` end to end, through the built executable (skipped when it is not built).
final class InfoCommandTests: XCTestCase {
    private func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = try GlimpseCLI.run(arguments)
        return (out.status, out.stdout, out.stderr)
    }

    private func fixtures(bad: Bool) throws -> [String] {
        let files = try XCTUnwrap(try ImageFixtures.json("expected.json")["files"] as? [[String: Any]])
        return files.filter { ($0["error"] != nil) == bad }.compactMap { $0["file"] as? String }
            .map { ImageFixtures.url($0).path }
    }

    func testEveryValidFixtureReportsAndExitsZero() throws {
        let files = try fixtures(bad: false)
        let result = try run(["info", "--json"] + files)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "")
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, files.count)
        for (line, file) in zip(lines, files) {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(object["file"] as? String, file)
            XCTAssertNotNil(object["width"] as? Int)
            XCTAssertNotNil(object["layout"] as? String)
            XCTAssertNil(object["error"])
        }
        let text = try run(["info", ImageFixtures.url("jpeg_orientation_6_be.jpg").path])
        XCTAssertEqual(text.status, 0)
        XCTAssertTrue(text.stdout.hasSuffix("jpeg_orientation_6_be.jpg: jpeg 24x40 rgb 8-bit orientation 6\n"), text.stdout)
    }

    func testBadFixturesReportErrorsAndExitNonZero() throws {
        let files = try fixtures(bad: true)
        let result = try run(["info", "--json"] + files)
        XCTAssertEqual(result.status, 1)
        let errors = result.stderr.split(separator: "\n")
        XCTAssertEqual(errors.count, files.count)
        for (line, file) in zip(errors, files) { XCTAssertTrue(line.contains(file), String(line)) }
        for line in result.stdout.split(separator: "\n") {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(Set(object.keys), ["file", "error"])
        }
        // One bad file among good ones still fails the run.
        let mixed = try run(["info", ImageFixtures.url("png_rgb8.png").path, ImageFixtures.url("bad_empty.jpg").path])
        XCTAssertEqual(mixed.status, 1)
        XCTAssertEqual(mixed.stdout.split(separator: "\n").count, 1)
    }

    func testMaxPixelsOption() throws {
        let file = ImageFixtures.url("png_rgb8.png").path
        let refused = try run(["info", "--max-pixels", "100", file])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("image too large (37x23 = 851 pixels, limit 100)"), refused.stderr)
        XCTAssertEqual(try run(["info", "--max-pixels", "851", file]).status, 0)
    }
}
