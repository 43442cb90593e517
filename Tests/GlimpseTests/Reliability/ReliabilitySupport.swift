import Foundation
import XCTest
@testable import Glimpse

// Shared helpers of the reliability tests: a minimal PNG writer (stored or fixed-Huffman deflate, so
// tests can make ordinary images and decompression bombs without zlib), the built CLI, fixture paths.

enum TestPNG {
    private static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for x in bytes { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
        return b << 16 | a
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }

    static func ihdr(width: UInt32, height: UInt32, bitDepth: UInt8 = 8, colorType: UInt8 = 2, interlaced: Bool = false) -> [UInt8] {
        chunk("IHDR", bigEndian(width) + bigEndian(height) + [bitDepth, colorType, 0, 0, interlaced ? 1 : 0])
    }

    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// An 8-bit RGB PNG of `rgb` (width * height * 3 bytes), deflate with stored blocks.
    static func encode(width: Int, height: Int, rgb: [UInt8], interlaced: Bool = false) -> [UInt8] {
        precondition(rgb.count == width * height * 3)
        var raw: [UInt8] = []
        // Adam7 passes (x0, y0, dx, dy); an empty pass writes nothing.
        let passes = interlaced ? [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
                                : [(0, 0, 1, 1)]
        for (x0, y0, dx, dy) in passes where x0 < width && y0 < height {
            for y in stride(from: y0, to: height, by: dy) {
                raw.append(0)
                for x in stride(from: x0, to: width, by: dx) { raw += rgb[((y * width + x) * 3)..<((y * width + x) * 3 + 3)] }
            }
        }
        var z: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, raw.count - offset)
            let final: UInt8 = offset + n == raw.count ? 1 : 0
            z += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            z += raw[offset..<(offset + n)]
            offset += n
        } while offset < raw.count
        z += bigEndian(adler32(raw))
        return signature + ihdr(width: UInt32(width), height: UInt32(height), interlaced: interlaced) + chunk("IDAT", z) + chunk("IEND", [])
    }

    /// A zlib stream that inflates to `count` zero bytes: one literal, then fixed-Huffman <258, 1> matches
    /// (13 bits per 258 bytes, about 1:160). Its Adler-32 has a closed form for zeros.
    static func zeros(inflatingTo count: Int) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var accumulator: UInt64 = 0, bits = 0
        func put(_ value: UInt64, _ n: Int) {
            accumulator |= value << UInt64(bits); bits += n
            while bits >= 8 { out.append(UInt8(accumulator & 0xFF)); accumulator >>= 8; bits -= 8 }
        }
        // Huffman codes go most significant bit first.
        func code(_ value: UInt64, _ n: Int) {
            var reversed: UInt64 = 0
            for i in 0..<n { reversed |= ((value >> UInt64(i)) & 1) << UInt64(n - 1 - i) }
            put(reversed, n)
        }
        put(1, 1); put(1, 2)                    // BFINAL, BTYPE = fixed Huffman
        code(0x30, 8)                           // literal 0
        var left = count - 1
        // Code 285 (length 258) = 11000101, then distance code 0 (distance 1) = 00000.
        let pair: UInt64 = 0b11000101, pairBits = 8
        // 3 + 8 bits so far; one pair more (13 bits) reaches a byte boundary, after which every 8 pairs
        // are the same 13 bytes: copied, so a gigabyte-long stream takes milliseconds to make.
        if left >= 258 { code(pair, pairBits); code(0, 5); left -= 258 }
        if bits == 0 && left >= 2 * 8 * 258 {
            let start = out.count
            for _ in 0..<8 { code(pair, pairBits); code(0, 5) }
            left -= 8 * 258
            let block = Array(out[start...])
            let repeats = left / (8 * 258)
            out.reserveCapacity(out.count + repeats * block.count + 64)
            for _ in 0..<repeats { out.append(contentsOf: block) }
            left -= repeats * 8 * 258
        }
        while left >= 258 { code(pair, pairBits); code(0, 5); left -= 258 }
        for _ in 0..<left { code(0x30, 8) }
        code(0, 7)                              // end of block
        if bits > 0 { put(0, 8 - bits) }
        out += bigEndian(UInt32(count % 65521) << 16 | 1)
        return out
    }

    /// A PNG whose header claims `width` x `height` (8-bit RGB) and whose IDAT inflates to `inflated` zeros.
    static func bomb(width: UInt32, height: UInt32, inflated: Int, interlaced: Bool = false) -> [UInt8] {
        signature + ihdr(width: width, height: height, interlaced: interlaced) + chunk("IDAT", zeros(inflatingTo: inflated)) + chunk("IEND", [])
    }

    /// A small RGB image whose content depends on `seed` (so captions differ between images).
    static func pattern(seed: Int, width: Int = 24, height: Int = 20) -> [UInt8] {
        var state = UInt32(truncatingIfNeeded: seed &* 2_654_435_761 &+ 12345)
        func next() -> UInt8 { state = state &* 1_103_515_245 &+ 12345; return UInt8(state >> 24) }
        let base = (next(), next(), next())
        var rgb: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                let inside = (x - width / 2) * (x - width / 2) + (y - height / 2) * (y - height / 2) < (seed % 7 + 3) * (seed % 7 + 3)
                rgb += inside ? [next(), 255 &- base.1, base.2 &+ UInt8(x)] : [base.0, base.1 &+ UInt8(y * 4), base.2]
            }
        }
        return encode(width: width, height: height, rgb: rgb)
    }
}

/// The fixture model every CLI test uses (ViT + GPT-2, 32x32 input, 384-token vocabulary).
func reliabilityModelDirectory(_ name: String = "vit_gpt2_a", file: StaticString = #filePath, line: UInt = #line) throws -> URL {
    try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/models"),
                  "fixture model \(name) missing", file: file, line: line)
}

/// One batch JSONL output read back: records in order, keyed by file.
struct BatchRecords {
    let lines: [[String: Any]]

    init(_ url: URL) throws {
        let text = try String(contentsOf: url, encoding: .utf8)
        lines = try text.split(separator: "\n").map { line in
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
        }
    }

    var files: [String] { lines.compactMap { $0["file"] as? String } }

    /// What must not change between runs: the captions (text, score, tokens) or the error.
    var results: [String: String] {
        var out: [String: String] = [:]
        for line in lines {
            guard let file = line["file"] as? String else { continue }
            var stable = line
            stable["timing_ms"] = nil
            let data = try? JSONSerialization.data(withJSONObject: stable, options: [.sortedKeys])
            out[file] = data.map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        return out
    }

    func errors() -> [String: String] {
        var out: [String: String] = [:]
        for line in lines { if let file = line["file"] as? String, let e = line["error"] as? String { out[file] = e } }
        return out
    }
}

/// Reliability helpers on the tests' scratch directory (Weights/SafeTensorsTestSupport.swift).
extension ScratchDirectory {
    func directory(_ name: String) throws -> URL {
        let d = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// `count` small distinct PNG images named img00.png... in `dir`.
    @discardableResult
    func images(in dir: URL, count: Int, prefix: String = "img") throws -> [URL] {
        try (0..<count).map { i in
            let u = dir.appendingPathComponent(String(format: "%@%02d.png", prefix, i))
            try Data(TestPNG.pattern(seed: i)).write(to: u)
            return u
        }
    }
}
