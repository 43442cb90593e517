import Foundation

/// What the report shows of one JSON Lines record, and nothing else: the fields it defines, each
/// checked for its type and range. Every record is re-serialized from this with `JSONText` before it
/// is embedded, so a line that Foundation reads but a browser's `JSON.parse` would reject cannot
/// blank a page, and a field the report does not define (`"_href"`, say) never reaches the page.
struct ReportRecord: Equatable {
    struct Caption: Equatable {
        var text: String
        var score: Double?
    }

    struct Detection: Equatable {
        var label: String
        /// `[x, y, width, height]` in image pixels.
        var box: [Double]?
        var score: Double?
        /// Present only when its size is the record's `height`×`width` (the page draws it at that size).
        var mask: RLE?
    }

    var file: String?
    var error: String?
    var width: Int?
    var height: Int?
    var captions: [Caption] = []
    var detections: [Detection] = []
    /// The record's own overlay folder (`"overlays"`), as written in the record.
    var overlays: String?

    /// Largest image side the report draws masks for (the decoder's pixel limit allows 100 MP).
    static let maxSide = 1 << 17

    /// The record in a parsed JSON value; nil when it is not an object.
    init?(json: Any) {
        guard let o = json as? [String: Any] else { return nil }
        file = o["file"] as? String
        if let e = o["error"] {
            // The contract's error is a string; anything else still marks the record as failed.
            error = (e as? String) ?? "error"
        }
        overlays = o["overlays"] as? String
        width = Self.side(o["width"])
        height = Self.side(o["height"])
        if error != nil { return }
        for c in o["captions"] as? [Any] ?? [] {
            guard let c = c as? [String: Any], let text = c["text"] as? String else { continue }
            captions.append(Caption(text: text, score: Self.finite(c["score"])))
        }
        // A classification record (`glimpse classify --json`): its classes, best first, are its lines.
        for l in o["labels"] as? [Any] ?? [] {
            guard let l = l as? [String: Any], let label = l["label"] as? String else { continue }
            captions.append(Caption(text: label, score: Self.finite(l["score"])))
        }
        for d in o["detections"] as? [Any] ?? [] {
            guard let d = d as? [String: Any] else { continue }
            let label = (d["label"] as? String) ?? (d["word"] as? String) ?? ""
            var box: [Double]?
            if let b = d["box"] as? [Any], b.count == 4 {
                let v = b.compactMap(Self.finite)
                if v.count == 4, v[2] >= 0, v[3] >= 0 { box = v }
            }
            detections.append(Detection(label: label, box: box, score: Self.finite(d["score"]),
                                        mask: Self.mask(d["mask"], width: width, height: height)))
        }
    }

    static func number(_ v: Any?) -> NSNumber? {
        // JSONSerialization reads true/false as NSNumber too; they are not numbers here.
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        return n
    }

    static func finite(_ v: Any?) -> Double? {
        guard let d = number(v)?.doubleValue, d.isFinite else { return nil }
        return d
    }

    static func side(_ v: Any?) -> Int? {
        guard let d = finite(v), d >= 1, d <= Double(maxSide), d == d.rounded() else { return nil }
        return Int(d)
    }

    /// A COCO RLE mask (`{"size": [h, w], "counts": "..." | [...]}`) that decodes to h×w pixels.
    static func mask(_ v: Any?, width: Int?, height: Int?) -> RLE? {
        guard let m = v as? [String: Any], let width, let height,
              let size = m["size"] as? [Any], size.count == 2,
              side(size[0]) == height, side(size[1]) == width else { return nil }
        if let s = m["counts"] as? String { return try? RLE(height: height, width: width, compressed: s) }
        guard let list = m["counts"] as? [Any], list.count <= height * width + 1 else { return nil }
        var counts: [Int] = [], total = 0
        for c in list {
            guard let d = finite(c), d >= 0, d == d.rounded(), d <= Double(height * width - total) else { return nil }
            counts.append(Int(d))
            total += Int(d)
        }
        return try? RLE(height: height, width: width, counts: counts)
    }

    /// The record as the page reads it, with the report's links; `<` is escaped so no text can end
    /// the `<script>` element it is embedded in.
    func json(href: String?, overlayLinks: [String]) -> String {
        func q(_ s: String) -> String { JSONText.quoted(s, escapingHTML: true) }
        func n(_ v: Double) -> String { RecordCoding.number(v) }
        var fields: [String] = []
        if let file { fields.append("\"file\":" + q(file)) }
        if let href { fields.append("\"href\":" + q(href)) }
        if !overlayLinks.isEmpty { fields.append("\"overlays\":[" + overlayLinks.map(q).joined(separator: ",") + "]") }
        if let error { fields.append("\"error\":" + q(error)) }
        if let width { fields.append("\"width\":\(width)") }
        if let height { fields.append("\"height\":\(height)") }
        if !captions.isEmpty {
            fields.append("\"captions\":[" + captions.map { c in
                "{\"text\":" + q(c.text) + (c.score.map { ",\"score\":" + n($0) } ?? "") + "}"
            }.joined(separator: ",") + "]")
        }
        if !detections.isEmpty {
            fields.append("\"detections\":[" + detections.map { d in
                var o = "{\"label\":" + q(d.label)
                if let b = d.box { o += ",\"box\":[" + b.map(n).joined(separator: ",") + "]" }
                if let s = d.score { o += ",\"score\":" + n(s) }
                if let m = d.mask { o += ",\"mask\":" + q(m.compressedString) }
                return o + "}"
            }.joined(separator: ",") + "]")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }
}
