import Foundation
import XCTest
@testable import Glimpse

/// Every file under Fixtures/regressions goes through the entry points of the fuzz harness its name
/// starts with (see fuzz/README.md); none may crash. Specific findings also pin their outcome.
final class RegressionFileTests: XCTestCase {
    private var directory: URL {
        get throws {
            try XCTUnwrap(Bundle.module.url(forResource: "regressions", withExtension: nil, subdirectory: "Fixtures"))
        }
    }

    private func file(_ name: String) throws -> Data { try Data(contentsOf: try directory.appendingPathComponent(name)) }

    func testEveryRegressionFileIsHandled() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: try directory.path).filter { $0 != "README.md" }.sorted()
        XCTAssertFalse(names.isEmpty)
        let scratch = try ScratchDirectory()
        for name in names {
            let data = try file(name)
            let target = String(name.prefix { $0 != "-" })
            switch target {
            case "jpeg", "png":
                _ = try? ImageDecoder.decode(data: data, name: name, maxPixels: 1 << 22)
            case "exif":
                data.withUnsafeBytes { bytes in
                    _ = EXIFOrientation.fromJPEG(bytes)
                    _ = EXIFOrientation.fromEXIF(bytes)
                }
            case "safetensors":
                _ = try? data.withUnsafeBytes { try SafeTensorsLayout.parse($0, file: name) }
            case "config":
                if let c = try? JSONConfig(data: data, file: name) {
                    _ = try? ViTConfig(c); _ = try? GPT2Config(c); _ = try? BLIP.configs(c)
                    _ = try? GenerationParameters(modelDirectory: scratch.url, config: c)
                }
                let url = scratch.url.appendingPathComponent("preprocessor_config.json")
                try data.write(to: url)
                _ = try? ImagePreprocessor(contentsOf: url)
            case "bpe":
                let split = data.firstIndex(of: 0) ?? data.endIndex
                let vocab = scratch.url.appendingPathComponent("vocab.json"), merges = scratch.url.appendingPathComponent("merges.txt")
                try data[..<split].write(to: vocab)
                try (split < data.endIndex ? data[(split + 1)...] : Data()).write(to: merges)
                if let t = try? BytePairTokenizer(vocabularyFile: vocab, mergesFile: merges) {
                    _ = t.decode(t.encode("a small red circle"), skipSpecialTokens: true)
                }
            case "resume":
                _ = ResumeIndex.jsonl(data)
                _ = ResumeIndex.csv(data)
            default:
                XCTFail("\(name): unknown harness prefix '\(target)'")
            }
        }
    }

    /// fuzz/png: a 145-byte PNG whose eXIf chunk claims 2 GB made libpng malloc 2 GB before reading it.
    /// It is a cut-off file, reported as such before libpng sees it.
    func testPNGChunkClaimingGigabytesIsTruncatedNotAllocated() throws {
        XCTAssertThrowsError(try ImageDecoder.decode(data: try file("png-exif-claims-2gb"), name: "exif.png")) { error in
            XCTAssertEqual(error as? ImageError, .truncated(file: "exif.png"))
        }
    }

    /// fuzz/resume: a file name holding a quote followed by a combining mark (one Character) was written
    /// to CSV without doubling that quote, so --resume misread the line and would caption the file again.
    func testCSVFieldsEscapeQuotesInsideGraphemeClusters() throws {
        let text = String(decoding: try file("resume-csv-quote-with-combining-mark"), as: UTF8.self)
        let cut = text.index(text.startIndex, offsetBy: text.count / 2)
        let name = String(text[..<cut]), error = String(text[cut...])
        for (file, cause) in [(name, error), ("a\u{0022}\u{0301}b.png", "x"), ("c,\u{0301}d.png", "y"), ("e\r\nf.png", "z")] {
            let line = [file, "", "", cause].map(BatchOutput.csvField).joined(separator: ",")
            XCTAssertEqual(ResumeIndex.csv(Data(("file,caption,score,error\n" + line + "\n").utf8)).files, [file], line)
        }
    }

    /// fuzz/resume: Foundation's JSONSerialization (Linux) drops a U+FEFF that starts a string value, so a
    /// file whose name starts with one was missed by --resume and captioned again each time.
    func testResumeReadsNamesStartingWithAByteOrderMark() throws {
        let text = String(decoding: try file("resume-name-starting-with-feff"), as: UTF8.self)
        let cut = text.index(text.startIndex, offsetBy: text.count / 2)
        for record in [CaptionRecord(file: String(text[..<cut]), error: String(text[cut...])),
                       CaptionRecord(file: "\u{FEFF}photo.png", error: "x")] {
            let line = RecordCoding.line(record) + "\n"
            XCTAssertEqual(ResumeIndex.jsonl(Data(line.utf8)).files, [record.file], line)
        }
    }

    /// fuzz/bpe: a vocab.json id of 2^32 or more trapped when the merge table packed it into 32 bits.
    func testVocabularyIdsBeyond32BitsAreAnError() throws {
        let scratch = try ScratchDirectory()
        let vocab = try scratch.file("vocab.json", bytes: Array(#"{"a": 5000000000, "b": 1, "ab": 2}"#.utf8))
        let merges = try scratch.file("merges.txt", bytes: Array("#version: 0.2\na b\n".utf8))
        XCTAssertThrowsError(try BytePairTokenizer(vocabularyFile: vocab, mergesFile: merges)) { error in
            XCTAssertEqual(error as? TokenizerError,
                           .invalidVocabulary(file: vocab.path, token: "a", reason: "id 5000000000 is larger than 2147483647"))
        }
    }

    /// A PNG whose IDAT stream inflates 1000 times past what its rows need decodes without inflating the
    /// rest (png_read_end used to), and a trailing eXIf still counts unless its CRC is wrong.
    func testPNGTailIsNotInflated() throws {
        let decoded = try ImageDecoder.decode(data: try file("png-stream-runs-past-image"), name: "bomb.png")
        XCTAssertEqual(decoded.image.width, 64)
        XCTAssertTrue(decoded.image.pixels.allSatisfy { $0 == 0 })
        let badCRC = try ImageDecoder.decode(data: try file("png-trailing-exif-bad-crc"), name: "bad.png")
        XCTAssertEqual(badCRC.info.orientation, 1, "an eXIf chunk with a bad CRC is dropped, as libpng drops it")
        // The same bytes with the right CRC: orientation 6 (rotated: 64x64 stays square, pixels move).
        var good = [UInt8](try file("png-trailing-exif-bad-crc"))
        let at = try XCTUnwrap(good.indices.first { good[$0..<min($0 + 4, good.count)].elementsEqual(Array("eXIf".utf8)) })
        let length = Int(good[at - 4]) << 24 | Int(good[at - 3]) << 16 | Int(good[at - 2]) << 8 | Int(good[at - 1])
        let crc = TestPNG.crc32(good[at..<(at + 4 + length)])
        good.replaceSubrange((at + 4 + length)..<(at + 8 + length), with: TestPNG.bigEndian(crc))
        let rotated = try ImageDecoder.decode(data: Data(good), name: "good.png")
        XCTAssertEqual(rotated.info.orientation, 6)
        XCTAssertNotEqual(rotated.image.pixels, badCRC.image.pixels)
    }
}
