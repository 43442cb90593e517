import Foundation
import XCTest
@testable import Glimpse

/// A scratch directory removed when the test case ends.
final class ScratchDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-weights-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    /// Writes raw bytes to `name` and returns its URL.
    func file(_ name: String, bytes: [UInt8]) throws -> URL {
        let target = url.appendingPathComponent(name)
        try Data(bytes).write(to: target)
        return target
    }

    /// A hand-made safetensors file: `header` JSON, padded with spaces to `padTo` bytes (1 = no padding),
    /// then `data`. `claimedLength` overrides the header length field.
    func safetensors(_ name: String, header: String, data: [UInt8] = [], padTo: Int = 8,
                     claimedLength: UInt64? = nil) throws -> URL {
        var json = Array(header.utf8)
        json += Array(repeating: UInt8(ascii: " "), count: (padTo - json.count % padTo) % padTo)
        var bytes: [UInt8] = []
        withUnsafeBytes(of: (claimedLength ?? UInt64(json.count)).littleEndian) { bytes += $0 }
        return try file(name, bytes: bytes + json + data)
    }
}

/// Little-endian bytes of Float32 values.
func f32Bytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
}

/// The fixture `name` under Fixtures/safetensors.
func safetensorsFixture(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
    let base = (name as NSString).deletingPathExtension, ext = (name as NSString).pathExtension
    return try XCTUnwrap(Bundle.module.url(forResource: base, withExtension: ext, subdirectory: "Fixtures/safetensors"),
                         "fixture \(name) missing", file: file, line: line)
}

/// Runs `body`, expecting a `WeightError` whose message contains every string in `fragments`;
/// returns the error for pattern checks.
@discardableResult
func expectWeightError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                       _ body: () throws -> Void) -> WeightError? {
    do {
        try body()
        XCTFail("expected an error containing \(fragments)", file: file, line: line)
        return nil
    } catch let error as WeightError {
        for fragment in fragments {
            XCTAssertTrue(error.description.contains(fragment), "\"\(error)\" lacks \"\(fragment)\"", file: file, line: line)
        }
        return error
    } catch {
        XCTFail("expected a WeightError, got \(error)", file: file, line: line)
        return nil
    }
}

/// Exact comparison by bit pattern (distinguishes -0 and checks NaN-free fixtures exactly).
func assertBitsEqual(_ actual: [Float], _ expected: [Float], _ message: String,
                     file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "\(message): \(actual) vs \(expected)",
                   file: file, line: line)
}

/// The expectations written by tools/make_safetensors_fixtures.py.
struct FixtureExpectation: Decodable {
    struct Entry: Decodable {
        let dtype: String
        let shape: [Int]
        let values: [Double]
        var floats: [Float] { values.map { Float($0) } }
    }
    let metadata: [String: String]
    let tensors: [String: Entry]

    static func load(_ name: String) throws -> FixtureExpectation {
        try JSONDecoder().decode(FixtureExpectation.self, from: Data(contentsOf: safetensorsFixture(name)))
    }
}
