import Foundation

/// A parsed JSON value that keeps object keys in file order and strings exactly as written.
///
/// Swift `String` equality and hashing follow canonical equivalence, so `JSONSerialization`
/// or `JSONDecoder` could merge vocabulary entries that differ only in Unicode normalization.
/// Tokenizer files are read with this small parser instead.
enum JSONValue {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// The value for `key` in an object (last occurrence wins, as in Python's `json`).
    subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.last(where: { $0.key.utf8.elementsEqual(key.utf8) })?.value
    }

    var string: String? { if case .string(let s) = self { return s } else { return nil } }
    var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    var array: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    var object: [(key: String, value: JSONValue)]? { if case .object(let o) = self { return o } else { return nil } }
    var isNull: Bool { if case .null = self { return true } else { return false } }
    /// The value as an exact integer, if it is a number without a fractional part.
    var int: Int? {
        guard case .number(let d) = self, d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }

    /// Parses UTF-8 JSON; `file` names the source in errors.
    static func parse(_ data: Data, file: String) throws -> JSONValue {
        var parser = Parser(bytes: [UInt8](data), file: file)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.position != parser.bytes.count { throw parser.error("trailing characters after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        let file: String
        var position = 0

        init(bytes: [UInt8], file: String) {
            self.bytes = bytes
            self.file = file
            // Skip a UTF-8 byte-order mark.
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
        }

        func error(_ message: String) -> TokenizerError {
            .invalidJSON(file: file, reason: "\(message) at byte \(position)")
        }

        mutating func skipWhitespace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        mutating func expect(_ literal: String, _ value: JSONValue) throws -> JSONValue {
            let utf8 = Array(literal.utf8)
            guard position + utf8.count <= bytes.count, Array(bytes[position..<position + utf8.count]) == utf8 else {
                throw error("invalid literal")
            }
            position += utf8.count
            return value
        }

        mutating func parseValue(depth: Int) throws -> JSONValue {
            guard depth < 512 else { throw error("nesting too deep") }
            guard position < bytes.count else { throw error("unexpected end of data") }
            switch bytes[position] {
            case UInt8(ascii: "{"):
                position += 1
                var pairs: [(key: String, value: JSONValue)] = []
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(pairs) }
                while true {
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                    let key = try parseString()
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
                    position += 1
                    skipWhitespace()
                    pairs.append((key, try parseValue(depth: depth + 1)))
                    skipWhitespace()
                    guard position < bytes.count else { throw error("unterminated object") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    if bytes[position] == UInt8(ascii: "}") { position += 1; return .object(pairs) }
                    throw error("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                position += 1
                var items: [JSONValue] = []
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
                while true {
                    skipWhitespace()
                    items.append(try parseValue(depth: depth + 1))
                    skipWhitespace()
                    guard position < bytes.count else { throw error("unterminated array") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    if bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
                    throw error("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try parseString())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "N"): return try expect("NaN", .number(.nan))
            default:
                return try parseNumber()
            }
        }

        mutating func parseNumber() throws -> JSONValue {
            let start = position
            scan: while position < bytes.count {
                switch bytes[position] {
                case 0x30...0x39, 0x2B, 0x2D, 0x2E, 0x45, 0x65: position += 1  // digits + - . E e
                default: break scan
                }
            }
            if position > start, position - start < 16, bytes[start..<position].allSatisfy({ (0x30...0x39).contains($0) }) {
                var value = 0
                for b in bytes[start..<position] { value = value * 10 + Int(b - 0x30) }
                return .number(Double(value))
            }
            guard position > start, let text = String(bytes: bytes[start..<position], encoding: .ascii),
                  let value = Double(text) else {
                position = start
                throw error("invalid value")
            }
            return .number(value)
        }

        mutating func parseHex4() throws -> UInt32 {
            guard position + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[position]
                let digit: UInt32
                switch b {
                case 0x30...0x39: digit = UInt32(b - 0x30)
                case 0x41...0x46: digit = UInt32(b - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(b - 0x61 + 10)
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | digit
                position += 1
            }
            return value
        }

        mutating func parseString() throws -> String {
            position += 1  // opening quote
            var utf8: [UInt8] = []
            while true {
                guard position < bytes.count else { throw error("unterminated string") }
                let b = bytes[position]
                if b == UInt8(ascii: "\"") { position += 1; break }
                if b != UInt8(ascii: "\\") { utf8.append(b); position += 1; continue }
                position += 1
                guard position < bytes.count else { throw error("unterminated escape") }
                let e = bytes[position]
                position += 1
                switch e {
                case UInt8(ascii: "\""): utf8.append(0x22)
                case UInt8(ascii: "\\"): utf8.append(0x5C)
                case UInt8(ascii: "/"): utf8.append(0x2F)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800..<0xDC00).contains(code), position + 1 < bytes.count,
                       bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") {
                        let save = position
                        position += 2
                        let low = try parseHex4()
                        if (0xDC00..<0xE000).contains(low) {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            position = save
                        }
                    }
                    // Lone surrogates become U+FFFD, as Rust's serde_json would refuse them.
                    let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                    utf8.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw error("invalid escape")
                }
            }
            guard let s = String(validating: utf8, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
            return s
        }
    }
}
