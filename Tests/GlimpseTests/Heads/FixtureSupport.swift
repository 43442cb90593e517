import Foundation
import XCTest

/// Reads a JSON fixture made by tools/make_heads_fixtures.py.
func headsFixture(_ name: String) throws -> Any {
    guard let root = Bundle.module.resourceURL else { throw XCTSkip("no test resources") }
    let url = root.appendingPathComponent("Fixtures/heads/\(name)")
    return try JSONSerialization.jsonObject(with: Data(contentsOf: url))
}

func headsFixtureURL(_ name: String) -> URL? {
    Bundle.module.resourceURL?.appendingPathComponent("Fixtures/heads/\(name)")
}

func floats(_ any: Any?) -> [Float] { (any as? [NSNumber])?.map { $0.floatValue } ?? [] }
func ints(_ any: Any?) -> [Int] { (any as? [NSNumber])?.map { $0.intValue } ?? [] }

func assertClose(_ a: [Float], _ b: [Float], tolerance: Float, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "count \(message)", file: file, line: line)
    for i in 0..<min(a.count, b.count) where abs(a[i] - b[i]) > tolerance * max(1, abs(b[i])) {
        XCTFail("\(message) [\(i)]: \(a[i]) vs \(b[i])", file: file, line: line)
        return
    }
}
