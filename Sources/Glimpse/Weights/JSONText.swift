/// JSON text written by hand where the byte layout matters (key order of output records,
/// byte-identical safetensors headers, HTML-embedded data).
public enum JSONText {
    /// `s` as a JSON string literal, escaped as serde_json (the safetensors reference writer) does:
    /// `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other controls as `\u00xx`. With `escapingHTML`,
    /// `<` becomes `\u003c` so the text is safe inside a `<script>` element.
    public static func quoted(_ s: String, escapingHTML: Bool = false) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "<" where escapingHTML: out += "\\u003c"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
