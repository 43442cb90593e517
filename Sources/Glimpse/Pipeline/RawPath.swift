import Foundation

/// File names on Linux are bytes, not text: a name need not be valid UTF-8, and two names that are
/// canonically equivalent text (NFC "café" and NFD "café") are two different files. Glimpse carries
/// paths as `String`s whose scalars map one to one onto the name's bytes:
///
/// - a valid UTF-8 sequence is its scalar;
/// - a byte that is not part of valid UTF-8 (0x80...0xFF) is the private-use scalar U+10FF00 + byte
///   (U+10FF80...U+10FFFF); a name that really contains one of those scalars has its UTF-8 bytes
///   escaped the same way, so the mapping stays one to one.
///
/// In JSON output such a byte is written as the lone surrogate escape `\udcXX` (PEP 383
/// "surrogateescape": Python's `os.fsencode(json.loads(line)["file"])` gives the name's bytes back),
/// which valid UTF-8 text can never produce. Paths are compared by their bytes (`key`), never with
/// `String` equality, which would merge NFC and NFD names.
public enum RawPath {
    static let byteScalarBase: UInt32 = 0x10FF00

    static func isByteScalar(_ scalar: Unicode.Scalar) -> Bool { scalar.value >= byteScalarBase + 0x80 }

    /// The path string for a name's raw bytes.
    public static func string<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let b = Array(bytes)
        var out = String.UnicodeScalarView()
        var i = 0
        func escape(_ range: Range<Int>) {
            for j in range { out.append(Unicode.Scalar(byteScalarBase + UInt32(b[j]))!) }
        }
        while i < b.count {
            let lead = b[i]
            if lead < 0x80 { out.append(Unicode.Scalar(lead)); i += 1; continue }
            let length = lead >= 0xF8 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            var value = UInt32(lead) & (length == 4 ? 0x07 : length == 3 ? 0x0F : 0x1F)
            var valid = length > 1 && i + length <= b.count
            if valid {
                for j in 1..<length {
                    guard b[i + j] & 0xC0 == 0x80 else { valid = false; break }
                    value = value << 6 | UInt32(b[i + j] & 0x3F)
                }
            }
            // Reject overlong forms, surrogates and values past U+10FFFF, as a strict UTF-8 decoder does.
            let minimum: UInt32 = length == 4 ? 0x10000 : length == 3 ? 0x800 : 0x80
            if valid, value >= minimum, let scalar = Unicode.Scalar(value), !isByteScalar(scalar) {
                out.append(scalar)
                i += length
            } else if valid, value >= minimum, value <= 0x10FFFF {
                escape(i..<(i + length)); i += length      // a real U+10FF80... scalar: escaped byte by byte
            } else {
                escape(i..<(i + 1)); i += 1
            }
        }
        return String(out)
    }

    /// The raw bytes a path string stands for.
    public static func bytes(_ path: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(path.utf8.count)
        for scalar in path.unicodeScalars {
            if isByteScalar(scalar) { out.append(UInt8(scalar.value - byteScalarBase)) } else { out += Array(String(scalar).utf8) }
        }
        return out
    }

    /// Calls `body` with the path as a C string of its raw bytes (for open, stat, rename...).
    public static func withCString<R>(_ path: String, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        var b = bytes(path).map { CChar(bitPattern: $0) }
        b.append(0)
        return try b.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// A byte-exact identity for comparing paths (distinct for NFC and NFD spellings).
    public static func key(_ path: String) -> [UInt8] { Array(path.utf8) }

    /// Whether the path holds bytes that are not valid UTF-8 (shown escaped).
    public static func hasRawBytes(_ path: String) -> Bool { path.unicodeScalars.contains(where: isByteScalar) }

    /// `path` as a JSON string literal: `JSONText.quoted`, with each raw byte as `\udcXX`.
    public static func jsonQuoted(_ path: String) -> String {
        guard hasRawBytes(path) else { return JSONText.quoted(path) }
        var out = "\""
        var run = ""
        func flush() {
            // Drop the quotes by scalar, not Character: a combining mark after the quote is one Character with it.
            if !run.isEmpty { out.unicodeScalars.append(contentsOf: JSONText.quoted(run).unicodeScalars.dropFirst().dropLast()); run = "" }
        }
        for scalar in path.unicodeScalars {
            if isByteScalar(scalar) {
                flush()
                out += "\\udc" + String(format: "%02x", scalar.value - byteScalarBase)
            } else {
                run.unicodeScalars.append(scalar)
            }
        }
        flush()
        return out + "\""
    }

    /// Reads a JSON string literal starting at `start` (the opening quote) in `bytes`, mapping lone
    /// `\udc80`...`\udcff` escapes back to raw bytes. Returns the path and the index after the closing
    /// quote, or nil when the literal is malformed. (Foundation's JSON readers reject lone surrogates.)
    static func parseJSONString(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (String, Int)? {
        guard start < bytes.count, bytes[start] == UInt8(ascii: "\"") else { return nil }
        var raw: [UInt8] = []
        var escapedBytes: [Int: UInt8] = [:]   // positions in `raw` standing for one raw byte
        var i = start + 1
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for k in at..<(at + 4) {
                guard let d = hexDigit(bytes[k]) else { return nil }
                v = v << 4 | d
            }
            return v
        }
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                // Split the bytes into UTF-8 text runs and escaped bytes, then map to scalars.
                var out = String.UnicodeScalarView()
                var textStart = 0
                func text(_ end: Int) {
                    if textStart < end { out.append(contentsOf: string(raw[textStart..<end]).unicodeScalars) }
                }
                for position in escapedBytes.keys.sorted() {
                    text(position)
                    out.append(Unicode.Scalar(byteScalarBase + UInt32(escapedBytes[position]!))!)
                    textStart = position + 1
                }
                text(raw.count)
                return (String(out), i + 1)
            }
            if c < 0x20 { return nil }
            if c != UInt8(ascii: "\\") { raw.append(c); i += 1; continue }
            guard i + 1 < bytes.count else { return nil }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): raw.append(0x22)
            case UInt8(ascii: "\\"): raw.append(0x5C)
            case UInt8(ascii: "/"): raw.append(0x2F)
            case UInt8(ascii: "b"): raw.append(0x08)
            case UInt8(ascii: "f"): raw.append(0x0C)
            case UInt8(ascii: "n"): raw.append(0x0A)
            case UInt8(ascii: "r"): raw.append(0x0D)
            case UInt8(ascii: "t"): raw.append(0x09)
            case UInt8(ascii: "u"):
                guard var v = hex4(i) else { return nil }
                i += 4
                if v >= 0xD800 && v < 0xDC00 {
                    // A high surrogate must pair with a low one.
                    guard i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                          let low = hex4(i + 2), low >= 0xDC00 && low < 0xE000 else { return nil }
                    v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                } else if v >= 0xDC00 && v < 0xE000 {
                    guard v >= 0xDC80 && v <= 0xDCFF else { return nil }
                    escapedBytes[raw.count] = UInt8(v - 0xDC00)
                    raw.append(0)          // placeholder, replaced by the raw byte's scalar
                    continue
                }
                guard let scalar = Unicode.Scalar(v) else { return nil }
                raw += Array(String(scalar).utf8)
            default: return nil
            }
        }
        return nil
    }

    private static func hexDigit(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(c - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}
