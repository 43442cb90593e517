import Foundation
import XCTest
@testable import Glimpse

final class WeightsSafeTensorsFileTests: XCTestCase {
    // MARK: Valid files

    func testReadsReferenceFileWithF32F16AndBF16() throws {
        let expected = try FixtureExpectation.load("valid.json")
        let file = try SafeTensorsFile(url: safetensorsFixture("valid.safetensors"))
        XCTAssertEqual(file.tensorNames, expected.tensors.keys.sorted())
        XCTAssertEqual(file.metadata, expected.metadata)
        for (name, entry) in expected.tensors {
            let info = try XCTUnwrap(file.info(name))
            XCTAssertEqual(info.dtype.rawValue, entry.dtype, name)
            XCTAssertEqual(info.shape, entry.shape, name)
            let tensor = try file.tensor(name)
            XCTAssertEqual(tensor.shape, entry.shape, name)
            assertBitsEqual(tensor.scalars, entry.floats, name)
        }
        XCTAssertNil(file.info("nope"))
        try file.checkFinite()
    }

    func testF32IsBorrowedFromTheMappingAndConversionsAreCached() throws {
        let file = try SafeTensorsFile(url: safetensorsFixture("valid.safetensors"))
        let weight = try file.tensor("encoder.layer.0.weight")
        XCTAssertTrue(file.isInPlace(weight), "aligned F32 must not be copied")
        let half = try file.tensor("decoder.half")
        XCTAssertFalse(file.isInPlace(half))
        XCTAssertTrue(try file.tensor("decoder.half").storage === half.storage, "F16 must be converted once")
        XCTAssertTrue(try file.tensor("decoder.brain").storage === file.tensor("decoder.brain").storage)
    }

    func testBorrowedTensorOutlivesTheFileObject() throws {
        let expected = try FixtureExpectation.load("valid.json")
        var file: SafeTensorsFile? = try SafeTensorsFile(url: safetensorsFixture("valid.safetensors"))
        let tensor = try XCTUnwrap(file).tensor("encoder.layer.0.weight")
        weak let weakFile = file
        file = nil
        XCTAssertNil(weakFile)
        assertBitsEqual(tensor.scalars, try XCTUnwrap(expected.tensors["encoder.layer.0.weight"]).floats, "after release")
    }

    func testMisalignedF32IsCopiedWithCorrectValues() throws {
        let scratch = try ScratchDirectory()
        // Unpadded header of odd length: the data section starts at an odd address.
        let header = #"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#
        XCTAssertNotEqual((8 + header.utf8.count) % 4, 0)
        let url = try scratch.safetensors("odd.safetensors", header: header, data: f32Bytes([1.5, -2, 1e-3]), padTo: 1)
        let file = try SafeTensorsFile(url: url)
        let x = try file.tensor("x")
        XCTAssertFalse(file.isInPlace(x))
        assertBitsEqual(x.scalars, [1.5, -2, 1e-3], "misaligned")
    }

    func testGapsAndEmptyTensorsAreAccepted() throws {
        let scratch = try ScratchDirectory()
        // 'b' leaves a 4-byte gap after 'a'; the empty tensors sit at offsets other tensors own.
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"#
            + #""e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"f":{"dtype":"BF16","shape":[2,0],"data_offsets":[9,9]}}"#
        let file = try SafeTensorsFile(url: scratch.safetensors("gap.safetensors", header: header, data: f32Bytes([1, 99, 2])))
        XCTAssertEqual(try file.tensor("b").scalars, [2])
        XCTAssertEqual(try file.tensor("e").count, 0)
        XCTAssertEqual(try file.tensor("f").shape, [2, 0])
        XCTAssertEqual(file.metadata, [:])
    }

    func testHalfConversionMatchesFloat16ForEveryBitPattern() throws {
        #if (os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64)
        throw XCTSkip("Float16 is unavailable on macOS x86_64")
        #else
        for bits in 0...UInt16.max {
            let reference = Float(Float16(bitPattern: bits))
            let ours = halfToFloat(bits)
            if reference.isNaN {
                XCTAssertTrue(ours.isNaN, "\(bits)")
            } else if ours.bitPattern != reference.bitPattern {
                XCTFail("half \(bits): \(ours) != \(reference)")
            }
        }
        #endif
    }

    func testMissingTensorNamesFileAndTensor() throws {
        let url = try safetensorsFixture("valid.safetensors")
        let file = try SafeTensorsFile(url: url)
        expectWeightError(["missing tensor 'nope'", url.path]) { _ = try file.tensor("nope") }
    }

    // MARK: Opt-in finiteness check

    func testCheckFiniteNamesTheTensor() throws {
        let url = try safetensorsFixture("nonfinite.safetensors")
        let file = try SafeTensorsFile(url: url)
        try file.checkFinite("fine")
        let nan = expectWeightError(["'has_nan'", "2 non-finite values", "nan at flat index 1", url.path]) {
            try file.checkFinite("has_nan")
        }
        guard case .nonFinite(_, "has_nan", 2, 1, let value)? = nan else { return XCTFail("\(String(describing: nan))") }
        XCTAssertTrue(value.isNaN)
        expectWeightError(["'half_inf'", "1 non-finite value", "-inf at flat index 1"]) { try file.checkFinite("half_inf") }
        // Whole file: the first offender in name order.
        expectWeightError(["'half_inf'"]) { try file.checkFinite() }
        // Reading without the check still works: the check is opt-in.
        XCTAssertEqual(try file.tensor("has_nan").count, 4)
    }

    func testCheckFiniteOnBF16() throws {
        let scratch = try ScratchDirectory()
        let header = #"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#
        // 1.0 (0x3F80) and +inf (0x7F80), little-endian.
        let file = try SafeTensorsFile(url: scratch.safetensors("b.safetensors", header: header, data: [0x80, 0x3F, 0x80, 0x7F]))
        XCTAssertEqual(try file.tensor("b").scalars, [1, .infinity])
        expectWeightError(["'b'", "inf at flat index 1"]) { try file.checkFinite() }
    }

    // MARK: Malformed files: each validation rule, each with its own message

    func testTruncatedFile() throws {
        let scratch = try ScratchDirectory()
        for size in [0, 5] {
            let url = try scratch.file("short\(size).safetensors", bytes: Array(repeating: 1, count: size))
            let error = expectWeightError(["truncated", "\(size) bytes", url.path]) { _ = try SafeTensorsFile(url: url) }
            guard case .truncated? = error else { return XCTFail("\(String(describing: error))") }
        }
    }

    func testUnreadableFile() throws {
        let scratch = try ScratchDirectory()
        let missing = scratch.url.appendingPathComponent("absent.safetensors")
        expectWeightError(["cannot read", missing.path]) { _ = try SafeTensorsFile(url: missing) }
        expectWeightError(["not a regular file"]) { _ = try SafeTensorsFile(url: scratch.url) }
    }

    func testHeaderLengthPastEnd() throws {
        let scratch = try ScratchDirectory()
        let url = try scratch.safetensors("past.safetensors", header: "{}", claimedLength: 1000)
        let error = expectWeightError(["header length 1000", "past the end of the file (16 bytes)", url.path]) {
            _ = try SafeTensorsFile(url: url)
        }
        guard case .headerPastEnd? = error else { return XCTFail("\(String(describing: error))") }
    }

    func testMultiGigabyteHeaderLengthFailsBeforeAllocating() throws {
        let scratch = try ScratchDirectory()
        for claim: UInt64 in [5_000_000_000, UInt64.max] {
            let url = try scratch.safetensors("huge.safetensors", header: "{}", claimedLength: claim)
            let error = expectWeightError(["header length \(claim)", "exceeds the limit of 100000000", url.path]) {
                _ = try SafeTensorsFile(url: url)
            }
            guard case .headerTooLarge? = error else { return XCTFail("\(String(describing: error))") }
        }
    }

    func testBadJSON() throws {
        let scratch = try ScratchDirectory()
        let cases: [(String, String)] = [
            (#"{"a": {"dtype": "F32""#, "not well-formed JSON"),
            ("\u{0}\u{0}\u{0}", "not well-formed JSON"),
            (#"[1, 2]"#, "must be a JSON object"),
            (#"{"__metadata__": {"k": 3}}"#, "__metadata__ must be an object of string values"),
        ]
        for (i, (header, message)) in cases.enumerated() {
            let url = try scratch.safetensors("bad\(i).safetensors", header: header)
            let error = expectWeightError(["invalid safetensors header", message, url.path]) { _ = try SafeTensorsFile(url: url) }
            guard case .invalidHeader? = error else { return XCTFail("\(String(describing: error))") }
        }
    }

    func testMalformedEntryFieldsNameTheTensor() throws {
        let scratch = try ScratchDirectory()
        let cases: [(String, String)] = [
            (#"{"w": [1]}"#, "entry must be an object"),
            (#"{"w": {"shape": [1], "data_offsets": [0, 4]}}"#, "missing field dtype"),
            (#"{"w": {"dtype": "F32", "data_offsets": [0, 4]}}"#, "missing field shape"),
            (#"{"w": {"dtype": "F32", "shape": [1]}}"#, "missing field data_offsets"),
            (#"{"w": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}}"#, "field dtype must be a string"),
            (#"{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#, "field shape must be an array of integers"),
            (#"{"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}}"#, "field shape must be an array of integers"),
            (#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 99999999999999999999]}}"#, "field data_offsets must be"),
            (#"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#, "negative dimension -1"),
            (#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}"#, "data_offsets must be [begin, end]"),
            (#"{"w": {"dtype": "F32", "shape": [0], "data_offsets": [-4, -4]}}"#, "are negative"),
        ]
        for (i, (header, message)) in cases.enumerated() {
            let url = try scratch.safetensors("entry\(i).safetensors", header: header, data: f32Bytes([1, 2]))
            let error = expectWeightError(["tensor 'w'", message, url.path]) { _ = try SafeTensorsFile(url: url) }
            guard case .invalidEntry? = error else { return XCTFail("\(String(describing: error))") }
        }
    }

    func testUnsupportedDType() throws {
        let scratch = try ScratchDirectory()
        let header = #"{"ok":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"ids":{"dtype":"I64","shape":[1],"data_offsets":[4,12]}}"#
        let url = try scratch.safetensors("i64.safetensors", header: header, data: Array(repeating: 0, count: 12))
        let error = expectWeightError(["unsupported dtype I64 for tensor 'ids'", url.path]) { _ = try SafeTensorsFile(url: url) }
        guard case .unsupportedDType(_, "ids", "I64")? = error else { return XCTFail("\(String(describing: error))") }
    }

    func testShapeAndByteLengthMismatch() throws {
        let scratch = try ScratchDirectory()
        let header = #"{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}}"#
        let url = try scratch.safetensors("len.safetensors", header: header, data: Array(repeating: 0, count: 16))
        let error = expectWeightError(["tensor 'w'", "shape [2, 3] of F16 needs 12 bytes but data_offsets span 8", url.path]) {
            _ = try SafeTensorsFile(url: url)
        }
        guard case .byteLengthMismatch? = error else { return XCTFail("\(String(describing: error))") }
    }

    func testOffsetsPastEnd() throws {
        let scratch = try ScratchDirectory()
        let header = #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        let url = try scratch.safetensors("end.safetensors", header: header, data: f32Bytes([1, 2, 3]))
        let error = expectWeightError(["tensor 'w'", "end 16 is past the end of the data section (12 bytes)", url.path]) {
            _ = try SafeTensorsFile(url: url)
        }
        guard case .offsetsPastEnd? = error else { return XCTFail("\(String(describing: error))") }
    }

    func testOverlappingTensors() throws {
        let scratch = try ScratchDirectory()
        // 'long' spans everything; 'c' overlaps it though it does not overlap its neighbour 'b'.
        let header = #"{"long":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},"#
            + #""c":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#
        let url = try scratch.safetensors("overlap.safetensors", header: header, data: f32Bytes([1, 2, 3, 4, 5]))
        let error = expectWeightError(["tensors 'long' and 'c' have overlapping data_offsets", url.path]) {
            _ = try SafeTensorsFile(url: url)
        }
        guard case .overlappingTensors? = error else { return XCTFail("\(String(describing: error))") }

        // A tensor nested inside a long one, with another after it, is caught through the furthest end.
        let nested = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        let url2 = try scratch.safetensors("nested.safetensors", header: nested, data: f32Bytes([1, 2, 3, 4]))
        expectWeightError(["tensors 'a' and 'b' have overlapping data_offsets"]) { _ = try SafeTensorsFile(url: url2) }
    }

    func testBeginAfterEnd() throws {
        let scratch = try ScratchDirectory()
        let header = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#
        let url = try scratch.safetensors("rev.safetensors", header: header, data: f32Bytes([1, 2, 3]))
        let error = expectWeightError(["tensor 'w'", "begin 8 is after end 4", url.path]) { _ = try SafeTensorsFile(url: url) }
        guard case .offsetsReversed? = error else { return XCTFail("\(String(describing: error))") }
    }

    func testShapeOverflow() throws {
        let scratch = try ScratchDirectory()
        // Each dimension fits in an Int; their product (and the byte size) does not. The running product
        // is checked as the reference does, so a later zero does not excuse an earlier overflow.
        for shape in ["[4294967296, 4294967296]", "[2305843009213693952, 2]", "[9223372036854775807, 0, 9223372036854775807, 2]"] {
            let header = #"{"w":{"dtype":"F32","shape":\#(shape),"data_offsets":[0,4]}}"#
            let url = try scratch.safetensors("overflow.safetensors", header: header, data: f32Bytes([1]))
            let error = expectWeightError(["tensor 'w'", "overflows", url.path]) { _ = try SafeTensorsFile(url: url) }
            guard case .shapeOverflow? = error else { return XCTFail("\(String(describing: error))") }
        }
    }
}
