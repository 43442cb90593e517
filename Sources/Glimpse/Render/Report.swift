import Foundation

/// Errors of the report writer.
public enum ReportError: Error, CustomStringConvertible, LocalizedError {
    /// The records file could not be read.
    case unreadableRecords(file: String, detail: String)

    public var description: String {
        switch self {
        case .unreadableRecords(let file, let detail): return "\(file): \(detail)"
        }
    }
    public var errorDescription: String? { description }
}

/// A static HTML gallery of batch results (the output contract's JSON Lines): one self-contained
/// `index.html` with inline CSS and JS, no network. Records are embedded as JSON chunks that the page
/// parses only when a page of them is shown, and images load lazily, so 10,000 records stay usable.
/// Images and overlays are linked by relative paths, not copied.
public struct ReportWriter: Sendable {
    /// Records per page.
    public var pageSize: Int
    /// Records per embedded JSON chunk (parsed on demand).
    public var chunkSize: Int
    /// Where overlays are, one folder per image named by its file name without extension
    /// (`<overlays>/<stem>/contact-sheet.png`); a record's own `"overlays"` field (a folder) wins.
    public var overlaysDirectory: URL?
    public var title: String

    public init(pageSize: Int = 48, chunkSize: Int = 500, overlaysDirectory: URL? = nil, title: String = "Glimpse report") {
        self.pageSize = max(pageSize, 1)
        self.chunkSize = max(chunkSize, 1)
        self.overlaysDirectory = overlaysDirectory
        self.title = title
    }

    /// Writes `dir/index.html` for the JSON Lines file `records`; returns its URL.
    @discardableResult
    public static func write(records: URL, to dir: URL) throws -> URL {
        try ReportWriter().write(records: records, to: dir)
    }

    /// What was read: records in file order (each with its line's JSON text, embedded as it is) and
    /// the number of lines that were not JSON objects (an interrupted run's incomplete last line, say).
    public struct Records {
        public var records: [[String: Any]]
        var lines: [ArraySlice<UInt8>]
        public var skippedLines: Int
    }

    /// Reads a JSON Lines file of records.
    public static func readRecords(_ url: URL) throws -> Records {
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: url)) } catch {
            throw ReportError.unreadableRecords(file: url.path, detail: "cannot read: \(error.localizedDescription)")
        }
        var out = Records(records: [], lines: [], skippedLines: 0)
        for var line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            while let last = line.last, last == 32 || last == 9 || last == 13 { line = line.dropLast() }
            while let first = line.first, first == 32 || first == 9 { line = line.dropFirst() }
            if line.isEmpty { continue }
            if line.first == UInt8(ascii: "{"),
               let obj = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] {
                out.records.append(obj)
                out.lines.append(line)
            } else {
                out.skippedLines += 1
            }
        }
        return out
    }

    @discardableResult
    public func write(records url: URL, to dir: URL) throws -> URL {
        let input = try Self.readRecords(url)
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        let outDir = dir.standardizedFileURL
        let cwd = URL(fileURLWithPath: fm.currentDirectoryPath, isDirectory: true)
        let base = url.deletingLastPathComponent()

        // Each record is embedded as its own JSON text with the report's links spliced in front
        // ({"_href": ..., "_overlays": [...], <the record's fields>}): re-serializing 10,000 records
        // would cost far more than reading them.
        var chunks: [[UInt8]] = []
        var chunk: [UInt8] = []
        var errors = 0
        for (i, r) in input.records.enumerated() {
            if r["error"] != nil { errors += 1 }
            var extra: [String] = []
            if let file = r["file"] as? String {
                let image = Self.resolve(file, candidates: [cwd, base])
                extra.append("\"_href\":" + JSONText.quoted(Self.relativePath(from: outDir, to: image), escapingHTML: true))
                var overlayDir: URL?
                if let o = r["overlays"] as? String { overlayDir = Self.resolve(o, candidates: [cwd, base]) }
                else if let root = overlaysDirectory {
                    overlayDir = root.appendingPathComponent(image.deletingPathExtension().lastPathComponent)
                }
                if let od = overlayDir, let names = try? fm.contentsOfDirectory(atPath: od.path) {
                    let links = names.filter { $0.lowercased().hasSuffix(".png") }.sorted()
                        .map { JSONText.quoted(Self.relativePath(from: outDir, to: od.appendingPathComponent($0)), escapingHTML: true) }
                    extra.append("\"_overlays\":[" + links.joined(separator: ",") + "]")
                }
            }
            let line = input.lines[i]
            chunk.append(chunk.isEmpty ? UInt8(ascii: "[") : UInt8(ascii: ","))
            chunk.append(UInt8(ascii: "{"))
            chunk.append(contentsOf: Array(extra.joined(separator: ",").utf8))
            let rest = line.dropFirst()                                  // after the record's "{"
            let hasFields = rest.contains { $0 != 32 && $0 != 9 && $0 != 13 && $0 != 10 && $0 != UInt8(ascii: "}") }
            if !extra.isEmpty && hasFields { chunk.append(UInt8(ascii: ",")) }
            // "<" only occurs inside JSON strings here; as \u003c no "</script>" can end the chunk early.
            for b in rest {
                if b == UInt8(ascii: "<") { chunk.append(contentsOf: Array("\\u003c".utf8)) } else { chunk.append(b) }
            }
            if chunk.count > 0 && (i + 1) % chunkSize == 0 { chunk.append(UInt8(ascii: "]")); chunks.append(chunk); chunk = [] }
        }
        if !chunk.isEmpty { chunk.append(UInt8(ascii: "]")); chunks.append(chunk) }

        let meta: [String: Any] = ["total": input.records.count, "errors": errors, "skipped": input.skippedLines,
                                   "pageSize": pageSize, "chunkSize": chunkSize, "source": url.lastPathComponent]
        let metaJSON = String(decoding: try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys]), as: UTF8.self)
            .replacingOccurrences(of: "<", with: "\\u003c")

        var html = Array(Self.head(title: title).utf8)
        html += Array("<script type=\"application/json\" id=\"meta\">\(metaJSON)</script>\n".utf8)
        for (i, c) in chunks.enumerated() {
            html += Array("<script type=\"application/json\" class=\"chunk\" data-index=\"\(i)\">".utf8)
            html += c
            html += Array("</script>\n".utf8)
        }
        html += Array((Self.script + "</body>\n</html>\n").utf8)
        let index = dir.appendingPathComponent("index.html")
        try Data(html).write(to: index, options: .atomic)
        return index
    }


    /// `path` as given, or the first existing resolution against `candidates` (the first when none exists).
    static func resolve(_ path: String, candidates: [URL]) -> URL {
        if path.hasPrefix("/") { return URL(fileURLWithPath: path).standardizedFileURL }
        for c in candidates {
            let u = c.appendingPathComponent(path).standardizedFileURL
            if FileManager.default.fileExists(atPath: u.path) { return u }
        }
        return (candidates.first ?? URL(fileURLWithPath: ".")).appendingPathComponent(path).standardizedFileURL
    }

    /// A relative, percent-encoded link from directory `from` to file `to`.
    static func relativePath(from: URL, to: URL) -> String {
        let a = from.standardizedFileURL.pathComponents, b = to.standardizedFileURL.pathComponents
        var i = 0
        while i < a.count && i < b.count && a[i] == b[i] { i += 1 }
        let parts = Array(repeating: "..", count: a.count - i) + b[i...]
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#;")
        return parts.map { $0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0 }.joined(separator: "/")
    }

    static func head(title: String) -> String {
        let t = title.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(t)</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f4f6; color: #222; }
        header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: 8px 16px; z-index: 2;
                 display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
        header h1 { font-size: 18px; margin: 0 12px 0 0; }
        header input[type=search] { width: 16em; }
        #grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; padding: 16px; align-items: start; }
        .card { background: #fff; border: 1px solid #ddd; border-radius: 6px; overflow: hidden; }
        .card.error { border-color: #c33; background: #fff4f4; }
        .pic { position: relative; background: #eee; }
        .pic img { display: block; width: 100%; height: auto; }
        .pic canvas { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
        .body { padding: 6px 10px 10px; }
        .file { font-family: ui-monospace, monospace; font-size: 12px; color: #555; word-break: break-all; }
        .cap { margin: 4px 0; }
        .cap .score, .det .score { color: #777; font-size: 12px; margin-left: 4px; }
        .cap:first-of-type { font-weight: 600; }
        .det { font-size: 12px; }
        .det .sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: middle; }
        .err { color: #a00; font-weight: 600; }
        .links a { font-size: 12px; margin-right: 6px; }
        footer { padding: 8px 16px 24px; color: #777; }
        </style>
        </head>
        <body>
        <header><h1>\(t)</h1>
        <span id="summary"></span>
        <button id="prev">&#8592; Prev</button><span id="pageinfo"></span><button id="next">Next &#8594;</button>
        <input type="search" id="filter" placeholder="filter captions, labels, files">
        <label><input type="checkbox" id="errorsOnly"> errors only</label>
        <label><input type="checkbox" id="showMasks" checked> boxes &amp; masks</label>
        </header>
        <main id="grid"></main>
        <footer id="foot"></footer>

        """
    }

    // The page script: chunks are parsed on first use; only the current page's cards exist in the DOM;
    // masks are decoded from COCO compressed RLE (pycocotools' rleFrString) onto a canvas per card.
    static let script = """
    <script>
    (function () {
      "use strict";
      var meta = JSON.parse(document.getElementById("meta").textContent);
      var chunkEls = document.querySelectorAll("script.chunk");
      var cache = [];
      var PALETTE = ["#ff00ff", "#00c8ff", "#ffb000", "#00d060", "#ff4060", "#8060ff"];
      function chunk(i) { if (!cache[i]) cache[i] = JSON.parse(chunkEls[i].textContent); return cache[i]; }
      function record(i) { return chunk(Math.floor(i / meta.chunkSize))[i % meta.chunkSize]; }
      var page = 0, selection = null;   // selection: indices matching the filter, or null for all

      function text(r) {
        var parts = [r.file || "", r.error || ""];
        (r.captions || []).forEach(function (c) { parts.push(c.text || ""); });
        (r.detections || []).forEach(function (d) { parts.push(d.label || ""); });
        return parts.join(" ").toLowerCase();
      }
      function applyFilter() {
        var q = document.getElementById("filter").value.trim().toLowerCase();
        var errorsOnly = document.getElementById("errorsOnly").checked;
        if (!q && !errorsOnly) { selection = null; }
        else {
          selection = [];
          for (var i = 0; i < meta.total; i++) {
            var r = record(i);
            if (errorsOnly && !r.error) continue;
            if (q && text(r).indexOf(q) < 0) continue;
            selection.push(i);
          }
        }
        page = 0; render();
      }
      function count() { return selection ? selection.length : meta.total; }
      function pages() { return Math.max(1, Math.ceil(count() / meta.pageSize)); }

      // COCO compressed RLE string -> run counts (pycocotools maskApi.c rleFrString).
      function rleCounts(s) {
        var cnts = [], p = 0;
        while (p < s.length) {
          var x = 0, k = 0, more = 1, c;
          while (more) {
            c = s.charCodeAt(p) - 48; x |= (c & 0x1f) << (5 * k); more = c & 0x20; p++; k++;
            if (!more && (c & 0x10)) x |= -1 << (5 * k);
          }
          if (cnts.length > 2) x += cnts[cnts.length - 2];
          cnts.push(x);
        }
        return cnts;
      }
      function hexRGB(h) { return [parseInt(h.substr(1, 2), 16), parseInt(h.substr(3, 2), 16), parseInt(h.substr(5, 2), 16)]; }
      function drawDetections(canvas, r, w, h) {
        canvas.width = w; canvas.height = h;
        var ctx = canvas.getContext("2d");
        var dets = r.detections || [];
        var img = null;
        dets.forEach(function (d, i) {
          if (!d.mask || typeof d.mask.counts === "undefined") return;
          var mh = d.mask.size[0], mw = d.mask.size[1];
          if (mh !== h || mw !== w) return;
          var cnts = typeof d.mask.counts === "string" ? rleCounts(d.mask.counts) : d.mask.counts;
          if (!img) img = ctx.createImageData(w, h);
          var rgb = hexRGB(PALETTE[i % PALETTE.length]), pos = 0, data = img.data;
          for (var j = 0; j < cnts.length; j++) {
            if (j % 2 === 1) {
              for (var k = pos; k < pos + cnts[j]; k++) {
                var x = Math.floor(k / h), y = k % h, o = 4 * (y * w + x);   // column-major
                data[o] = rgb[0]; data[o + 1] = rgb[1]; data[o + 2] = rgb[2]; data[o + 3] = 110;
              }
            }
            pos += cnts[j];
          }
        });
        if (img) ctx.putImageData(img, 0, 0);
        var lw = Math.max(2, Math.round(Math.min(w, h) / 120));
        ctx.lineWidth = lw;
        ctx.font = Math.max(10, Math.round(Math.min(w, h) / 18)) + "px sans-serif";
        dets.forEach(function (d, i) {
          if (!d.box) return;
          var c = PALETTE[i % PALETTE.length];
          ctx.strokeStyle = c; ctx.strokeRect(d.box[0], d.box[1], d.box[2], d.box[3]);
          var label = (d.label || d.word || "") + (typeof d.score === "number" ? " " + d.score.toFixed(2) : "");
          var tw = ctx.measureText(label).width, th = parseInt(ctx.font, 10);
          var ty = d.box[1] > th + 4 ? d.box[1] - th - 4 : d.box[1];
          ctx.fillStyle = c; ctx.fillRect(d.box[0], ty, tw + 6, th + 4);
          ctx.fillStyle = "#000"; ctx.fillText(label, d.box[0] + 3, ty + th);
        });
      }
      function el(tag, cls, txt) {
        var e = document.createElement(tag);
        if (cls) e.className = cls;
        if (txt !== undefined) e.textContent = txt;
        return e;
      }
      function card(r) {
        var c = el("article", r.error ? "card error" : "card");
        if (r._href && !r.error) {   // a failed file may not be an image at all
          var pic = el("div", "pic"), im = el("img");
          im.loading = "lazy"; im.decoding = "async"; im.alt = r.file || ""; im.src = r._href;
          pic.appendChild(im);
          if (!r.error && (r.detections || []).length && document.getElementById("showMasks").checked) {
            var cv = el("canvas");
            pic.appendChild(cv);
            var go = function () {
              drawDetections(cv, r, r.width || im.naturalWidth, r.height || im.naturalHeight);
            };
            if (r.width && r.height) go(); else im.addEventListener("load", go);
          }
          var a = el("a"); a.href = r._href; a.appendChild(pic); c.appendChild(a);
        }
        var b = el("div", "body");
        var name = el("div", "file");
        if (r._href) { var fa = el("a", null, r.file); fa.href = r._href; name.appendChild(fa); } else name.textContent = r.file || "(no file)";
        b.appendChild(name);
        if (r.error) { b.appendChild(el("div", "err", "error: " + r.error)); }
        (r.captions || []).forEach(function (cap) {
          var p = el("div", "cap", cap.text || "");
          if (typeof cap.score === "number") p.appendChild(el("span", "score", cap.score.toFixed(4)));
          b.appendChild(p);
        });
        (r.detections || []).forEach(function (d, i) {
          var p = el("div", "det");
          var sw = el("span", "sw"); sw.style.background = PALETTE[i % PALETTE.length]; p.appendChild(sw);
          p.appendChild(document.createTextNode((d.label || d.word || "") + (d.box ? " [" + d.box.join(", ") + "]" : "")));
          if (typeof d.score === "number") p.appendChild(el("span", "score", d.score.toFixed(3)));
          b.appendChild(p);
        });
        if (r._overlays && r._overlays.length) {
          var links = el("div", "links");
          r._overlays.forEach(function (h) { var a = el("a", null, h.split("/").pop()); a.href = h; links.appendChild(a); });
          b.appendChild(links);
        }
        if (r.width && r.height) b.appendChild(el("div", "file", r.width + "\\u00d7" + r.height));
        c.appendChild(b);
        return c;
      }
      function render() {
        var grid = document.getElementById("grid");
        grid.textContent = "";
        var n = count(), start = page * meta.pageSize, end = Math.min(n, start + meta.pageSize);
        var frag = document.createDocumentFragment();
        for (var i = start; i < end; i++) frag.appendChild(card(record(selection ? selection[i] : i)));
        grid.appendChild(frag);
        document.getElementById("pageinfo").textContent = " page " + (page + 1) + " / " + pages() + " ";
        document.getElementById("summary").textContent = meta.total + " records, " + meta.errors + (meta.errors === 1 ? " error" : " errors") +
          (meta.skipped ? ", " + meta.skipped + " unreadable lines" : "") + (selection ? " \\u2014 " + n + " shown" : "");
        document.getElementById("foot").textContent = "from " + meta.source;
        if (location.hash !== "#" + (page + 1)) history.replaceState(null, "", "#" + (page + 1));
        window.scrollTo(0, 0);
      }
      document.getElementById("prev").onclick = function () { if (page > 0) { page--; render(); } };
      document.getElementById("next").onclick = function () { if (page < pages() - 1) { page++; render(); } };
      var timer = null;
      document.getElementById("filter").oninput = function () { clearTimeout(timer); timer = setTimeout(applyFilter, 200); };
      document.getElementById("errorsOnly").onchange = applyFilter;
      document.getElementById("showMasks").onchange = render;
      var h = parseInt(location.hash.slice(1), 10);
      if (h > 0) page = Math.min(h - 1, pages() - 1);
      render();
    })();
    </script>

    """
}
