/// GPT-2's byte-level pieces: the pre-tokenization regex and the byte-to-unicode map.
enum ByteLevel {
    /// GPT-2's `bytes_to_unicode()`: printable bytes map to themselves, the others to U+0100 onwards.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(next) ?? "\0"
                next += 1
            }
        }
        return table
    }()

    /// The inverse of `byteToScalar`, by scalar value.
    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    /// Splits `text[range]` with GPT-2's pattern
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
    /// trying the alternatives in order at each position, as the regex engine does.
    static func preTokenize(_ text: [Unicode.Scalar], _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        let end = range.upperBound
        var i = range.lowerBound
        // 0: whitespace, 1: letter, 2: number, 3: anything else.
        @inline(__always) func kind(_ k: Int) -> Int {
            let s = text[k]
            if UnicodeClasses.isWhitespace(s) { return 0 }
            if UnicodeClasses.isLetter(s) { return 1 }
            if UnicodeClasses.isNumber(s) { return 2 }
            return 3
        }
        @inline(__always) func space(_ k: Int) -> Bool { UnicodeClasses.isWhitespace(text[k]) }
        while i < end {
            let c = text[i]
            // Contractions: 's 't 're 've 'm 'll 'd (case-sensitive).
            if c == "'", i + 1 < end {
                let n = text[i + 1]
                if n == "s" || n == "t" || n == "m" || n == "d" { body(i..<i + 2); i += 2; continue }
                if i + 2 < end {
                    let m = text[i + 2]
                    if (n == "r" && m == "e") || (n == "v" && m == "e") || (n == "l" && m == "l") {
                        body(i..<i + 3); i += 3; continue
                    }
                }
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional literal space, then a run
            // of one class. None of the classes contains a space, so the space is taken exactly
            // when a member follows it.
            let first = (c == " " && i + 1 < end && !space(i + 1)) ? i + 1 : i
            let cls = kind(first)
            if cls != 0 {
                var j = first + 1
                while j < end, kind(j) == cls { j += 1 }
                body(i..<j)
                i = j
                continue
            }
            // `\s+(?!\S)` then `\s+`.
            if space(i) {
                var j = i + 1
                while j < end, space(j) { j += 1 }
                if j == end || j - i == 1 {
                    body(i..<j)  // run at the end, or a single space before a non-space (`\s+`)
                    i = j
                } else {
                    body(i..<j - 1)  // leave the last space to prefix the next word
                    i = j - 1
                }
                continue
            }
            // Unreachable: every scalar is a space, letter, number or other.
            body(i..<i + 1)
            i += 1
        }
    }
}

/// Appends the UTF-8 encoding of `s`.
@inline(__always)
func appendUTF8(_ s: Unicode.Scalar, to bytes: inout [UInt8]) {
    let v = s.value
    switch v {
    case 0..<0x80:
        bytes.append(UInt8(v))
    case 0x80..<0x800:
        bytes.append(UInt8(0xC0 | v >> 6)); bytes.append(UInt8(0x80 | v & 0x3F))
    case 0x800..<0x10000:
        bytes.append(UInt8(0xE0 | v >> 12)); bytes.append(UInt8(0x80 | v >> 6 & 0x3F))
        bytes.append(UInt8(0x80 | v & 0x3F))
    default:
        bytes.append(UInt8(0xF0 | v >> 18)); bytes.append(UInt8(0x80 | v >> 12 & 0x3F))
        bytes.append(UInt8(0x80 | v >> 6 & 0x3F)); bytes.append(UInt8(0x80 | v & 0x3F))
    }
}
