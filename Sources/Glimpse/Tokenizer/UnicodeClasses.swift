/// Character classes used by the pre-tokenizers and normalizers, as the `tokenizers` library
/// (Rust) computes them.
enum UnicodeClasses {
    /// `\p{L}` (any letter category), as in GPT-2's pre-tokenization regex (Oniguruma's
    /// Unicode 16.0 tables; Swift's may be newer).
    @inline(__always)
    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 { return (s.value | 0x20) >= 0x61 && (s.value | 0x20) <= 0x7A }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return assigned(s, byMajor: 16)
        default: return false
        }
    }

    /// `\p{N}` (any number category), Unicode 16.0 as Oniguruma.
    @inline(__always)
    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 { return s.value >= 0x30 && s.value <= 0x39 }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return assigned(s, byMajor: 16)
        default: return false
        }
    }

    /// Whether the scalar was assigned in Unicode `major`.x or earlier.
    @inline(__always)
    private static func assigned(_ s: Unicode.Scalar, byMajor major: Int) -> Bool {
        guard let age = s.properties.age else { return false }
        return age.major <= major
    }

    /// `\s`: the Unicode White_Space property (Oniguruma's and Rust's `char::is_whitespace`).
    @inline(__always)
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 { return s.value == 0x20 || (s.value >= 0x09 && s.value <= 0x0D) }
        return s.properties.isWhitespace
    }

    /// Whether the scalar was assigned by Unicode 8.0, the version of the `unicode_categories`
    /// tables that `tokenizers` uses for punctuation, control and non-spacing-mark tests.
    @inline(__always)
    private static func assignedByUnicode8(_ s: Unicode.Scalar) -> Bool {
        guard let age = s.properties.age else { return false }
        return age.major < 8 || (age.major == 8 && age.minor == 0)
    }

    /// BERT punctuation: ASCII punctuation or Unicode category P* (Unicode 8.0 tables).
    static func isBertPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 {
            return (v >= 33 && v <= 47) || (v >= 58 && v <= 64) || (v >= 91 && v <= 96) || (v >= 123 && v <= 126)
        }
        // Punctuation in Unicode 8.0 whose category changed later.
        if v == 0x166D || v == 0x111C9 { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return assignedByUnicode8(s)
        default:
            return false
        }
    }

    /// Characters BertNormalizer's `clean_text` removes: NUL, U+FFFD and "other" categories
    /// (Cc, Cf, Co, Cs in Unicode 8.0 tables), except tab, newline and carriage return.
    static func isBertControl(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 { return (v < 0x20 && v != 0x09 && v != 0x0A && v != 0x0D) || v == 0x7F }
        if v == 0xFFFD { return true }
        switch s.properties.generalCategory {
        case .control, .privateUse, .surrogate: return true
        case .format: return assignedByUnicode8(s)
        default: return false
        }
    }

    /// Non-spacing marks (Mn, Unicode 8.0 tables), which accent stripping removes after NFD.
    static func isNonspacingMark(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x300 { return false }
        switch s.value {
        case 0x1734, 0x1171E: return true  // Mn in Unicode 8.0, Mc since
        case 0x1885, 0x1886, 0xA9BD, 0x111C9: return false  // Mn only since Unicode 9-12
        default: break
        }
        return s.properties.generalCategory == .nonspacingMark && assignedByUnicode8(s)
    }

    /// The CJK ideograph blocks BERT surrounds with spaces.
    @inline(__always)
    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        return (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B820...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }
}
