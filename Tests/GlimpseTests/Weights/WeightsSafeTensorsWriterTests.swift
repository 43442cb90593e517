import Foundation
import XCTest
@testable import Glimpse

final class WeightsSafeTensorsWriterTests: XCTestCase {
    func testMatchesTheReferenceWriterByteForByte() throws {
        let expected = try FixtureExpectation.load("writer_reference.json")
        // Given in reverse name order: the writer must sort as the reference does.
        let entries = expected.tensors.sorted { $0.key > $1.key }.map {
            SafeTensorsWriter.Entry(name: $0.key, shape: $0.value.shape, values: $0.value.floats)
        }
        let ours = try SafeTensorsWriter.encode(entries, metadata: expected.metadata)
        let reference = try Data(contentsOf: safetensorsFixture("writer_reference.safetensors"))
        XCTAssertEqual(ours, reference, "\(String(decoding: ours, as: UTF8.self))")
    }

    func testRoundTripThroughTheReader() throws {
        let scratch = try ScratchDirectory()
        var generator = SystemRandomNumberGenerator()
        let big = Tensor(shape: [3, 5, 7], values: (0..<105).map { _ in Float.random(in: -4...4, using: &generator) })
        let row = big[index: 1]  // a view with a non-zero offset: only its own elements are written
        let odd: [Float] = [.leastNonzeroMagnitude, -0.0, .greatestFiniteMagnitude, 1e-30]
        let metadata = ["format": "pt", "quote\"and\\slash": "line\nbreak\u{1}", "unicodé": "ναι"]
        let url = scratch.url.appendingPathComponent("round.safetensors")
        try SafeTensorsWriter.write([
            .init(name: "big", tensor: big),
            .init(name: "row", tensor: row),
            .init(name: "odd", shape: [2, 2], values: odd),
            .init(name: "scalar", shape: [], values: [7]),
            .init(name: "empty", shape: [0, 3], values: []),
            .init(name: "héllo \"x\"", shape: [1], values: [1]),
        ], metadata: metadata, to: url)

        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.layout.dataStart % 8, 0, "header must be padded to 8 bytes")
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(file.tensorNames.sorted(), ["big", "empty", "héllo \"x\"", "odd", "row", "scalar"].sorted())
        assertBitsEqual(try file.tensor("big").scalars, big.scalars, "big")
        XCTAssertEqual(try file.tensor("big").shape, [3, 5, 7])
        assertBitsEqual(try file.tensor("row").scalars, row.scalars, "row")
        XCTAssertEqual(try file.tensor("row").shape, [5, 7])
        assertBitsEqual(try file.tensor("odd").scalars, odd, "odd")
        XCTAssertEqual(try file.tensor("scalar").shape, [])
        XCTAssertEqual(try file.tensor("scalar").scalars, [7])
        XCTAssertEqual(try file.tensor("empty").shape, [0, 3])
        XCTAssertEqual(try file.tensor("héllo \"x\"").scalars, [1])
        XCTAssertTrue(file.isInPlace(try file.tensor("big")))
        try file.checkFinite()
    }

    func testDictionaryConvenienceAndNoMetadata() throws {
        let scratch = try ScratchDirectory()
        let url = scratch.url.appendingPathComponent("dict.safetensors")
        try SafeTensorsWriter.write(["a": Tensor(shape: [2], values: [1, 2])], to: url)
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.metadata, [:])
        XCTAssertEqual(try file.tensor("a").scalars, [1, 2])
        let header = String(decoding: try Data(contentsOf: url).dropFirst(8).prefix(file.layout.dataStart - 8), as: UTF8.self)
        XCTAssertFalse(header.contains("__metadata__"))
    }

    func testDuplicateAndReservedNamesAreRefused() throws {
        let scratch = try ScratchDirectory()
        let url = scratch.url.appendingPathComponent("dup.safetensors")
        expectWeightError(["tensor 'a' given twice", url.path]) {
            try SafeTensorsWriter.write([.init(name: "a", shape: [1], values: [1]), .init(name: "a", shape: [1], values: [2])], to: url)
        }
        expectWeightError(["'__metadata__' is reserved"]) {
            _ = try SafeTensorsWriter.encode([.init(name: "__metadata__", shape: [1], values: [1])])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    func testUnwritableTargetIsAWeightError() throws {
        let scratch = try ScratchDirectory()
        let url = scratch.url.appendingPathComponent("no/such/dir/x.safetensors")
        expectWeightError(["cannot write safetensors file", url.path]) {
            try SafeTensorsWriter.write([.init(name: "a", shape: [1], values: [1])], to: url)
        }
    }
}
