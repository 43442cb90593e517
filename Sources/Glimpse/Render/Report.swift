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
/// Images and overlays are linked by relative, percent-encoded paths, not copied. A
/// Content-Security-Policy allows the page's own script and style by their SHA-256 only.
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
        self.pageSize = min(max(pageSize, 1), 10_000)
        self.chunkSize = min(max(chunkSize, 1), 100_000)
        self.overlaysDirectory = overlaysDirectory
        self.title = title
    }

    /// What `write` wrote.
    public struct Written: Sendable {
        /// `dir/index.html`.
        public var index: URL
        public var records: Int
        /// 1-based numbers of the lines that were not JSON records (counted on the page too).
        public var skippedLines: [Int]
    }

    /// Writes `dir/index.html` for the JSON Lines file `records`.
    @discardableResult
    public static func write(records: URL, to dir: URL) throws -> Written {
        try ReportWriter().write(records: records, to: dir)
    }

    /// What was read: records in file order, and the 1-based numbers of the lines that were not JSON
    /// objects (an interrupted run's incomplete last line, say).
    struct Records {
        var records: [ReportRecord]
        var skippedLines: [Int]
    }

    /// Reads a JSON Lines file of records.
    static func readRecords(_ url: URL) throws -> Records {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ReportError.unreadableRecords(file: url.path, detail: "is a directory; give the JSON Lines file that glimpse batch wrote (--out)")
        }
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: url)) } catch {
            throw ReportError.unreadableRecords(file: url.path, detail: "cannot read: \(Self.reason(error))")
        }
        var out = Records(records: [], skippedLines: [])
        for (number, raw) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            var line = raw
            while let last = line.last, last == 32 || last == 9 || last == 13 { line = line.dropLast() }
            while let first = line.first, first == 32 || first == 9 { line = line.dropFirst() }
            if line.isEmpty { continue }
            if line.first == UInt8(ascii: "{"), let value = try? JSONSerialization.jsonObject(with: Data(line)),
               let record = ReportRecord(json: value) {
                out.records.append(record)
            } else {
                out.skippedLines.append(number + 1)
            }
        }
        return out
    }

    /// The problem in a Foundation file error, in words.
    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(u.code)))
        }
        switch ns.code {
        case NSFileReadNoSuchFileError: return "no such file"
        case NSFileReadNoPermissionError: return "permission denied"
        default: return ns.localizedDescription
        }
    }

    /// Marks a page as written by this writer: an existing index.html without it is never replaced.
    static let generator = "<meta name=\"generator\" content=\"glimpse report\">"

    /// Writes `dir/index.html` (creating `dir`) for the JSON Lines file at `url`.
    @discardableResult
    public func write(records url: URL, to dir: URL) throws -> Written {
        let input = try Self.readRecords(url)
        let index = dir.appendingPathComponent("index.html")
        let outDir = dir.standardizedFileURL
        if let existing = try OutputFiles.head(of: index, count: 4096),
           !String(decoding: existing, as: UTF8.self).contains(Self.generator) {
            throw RenderError.wouldOverwrite(file: index.path, detail: "exists and was not written by glimpse report; choose another --out or move it away")
        }
        if url.standardizedFileURL.resolvingSymlinksInPath() == index.standardizedFileURL.resolvingSymlinksInPath() {
            throw RenderError.wouldOverwrite(file: index.path, detail: "is the results file; choose another --out")
        }
        try OutputFiles.makeDirectory(dir)
        let fm = FileManager.default
        let cwd = URL(fileURLWithPath: fm.currentDirectoryPath, isDirectory: true)
        let base = url.deletingLastPathComponent()

        var chunks: [String] = []
        var chunk: [String] = []
        var errors = 0
        for r in input.records {
            if r.error != nil { errors += 1 }
            var href: String?
            var overlayLinks: [String] = []
            if let file = r.file {
                let image = Self.resolve(file, candidates: [cwd, base])
                href = Self.link(from: outDir, to: image)
                var overlayDir: URL?
                if let o = r.overlays { overlayDir = Self.resolve(o, candidates: [cwd, base]) }
                else if let root = overlaysDirectory {
                    overlayDir = root.appendingPathComponent(image.deletingPathExtension().lastPathComponent)
                }
                if let od = overlayDir, let names = try? fm.contentsOfDirectory(atPath: od.path) {
                    overlayLinks = names.filter { $0.lowercased().hasSuffix(".png") }.sorted()
                        .map { Self.link(from: outDir, to: od.appendingPathComponent($0)) }
                }
            }
            chunk.append(r.json(href: href, overlayLinks: overlayLinks))
            if chunk.count == chunkSize { chunks.append("[" + chunk.joined(separator: ",") + "]"); chunk = [] }
        }
        if !chunk.isEmpty { chunks.append("[" + chunk.joined(separator: ",") + "]") }

        // The page lists the first skipped lines by number; the count covers them all.
        let listed = input.skippedLines.prefix(20).map(String.init).joined(separator: ",")
        let meta = "{\"total\":\(input.records.count),\"errors\":\(errors),\"skipped\":\(input.skippedLines.count)"
            + ",\"skippedLines\":[\(listed)],\"pageSize\":\(pageSize),\"chunkSize\":\(chunkSize)"
            + ",\"source\":" + JSONText.quoted(url.lastPathComponent, escapingHTML: true) + "}"

        var html = Self.head(title: title)
        html += "<script type=\"application/json\" id=\"meta\">\(meta)</script>\n"
        for (i, c) in chunks.enumerated() {
            html += "<script type=\"application/json\" class=\"chunk\" data-index=\"\(i)\">" + c + "</script>\n"
        }
        html += "<script>" + Self.script + "</script>\n</body>\n</html>\n"
        try OutputFiles.write(Array(html.utf8), to: index)
        return Written(index: index, records: input.records.count, skippedLines: input.skippedLines)
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

    /// A relative link from directory `from` to file `to`: every path segment percent-encoded (all
    /// but RFC 3986's unreserved characters, byte by byte of its UTF-8), and `./` in front unless it
    /// starts with `../`, so no file name can read as a scheme (`javascript:`), a query or a fragment.
    static func link(from: URL, to: URL) -> String {
        let a = from.standardizedFileURL.pathComponents, b = to.standardizedFileURL.pathComponents
        var i = 0
        while i < a.count && i < b.count && a[i] == b[i] { i += 1 }
        let parts = Array(repeating: "..", count: a.count - i) + b[i...].map(percentEncoded)
        return (parts.first == ".." ? "" : "./") + parts.joined(separator: "/")
    }

    /// `segment` with every byte outside `A-Z a-z 0-9 - . _ ~` written as `%XX`.
    static func percentEncoded(_ segment: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in segment.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        // "." and ".." as a file's own name cannot occur after standardizing; encoded they stay names.
        if out == [46] || out == [46, 46] { return out.map { _ in "%2E" }.joined() }
        return String(decoding: out, as: UTF8.self)
    }

    /// The page's style sheet (allowed by its hash).
    static let style = """
    body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f4f6; color: #222; }
    header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: 8px 16px; z-index: 2;
             display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
    header h1 { font-size: 18px; margin: 0 12px 0 0; }
    header input[type=search] { width: 16em; }
    #notice { flex-basis: 100%; color: #8a4b00; background: #fff6e0; border: 1px solid #f0d090; border-radius: 4px; padding: 4px 8px; }
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
    """

    /// Only the page's own script and style run: no other inline script, event-handler attribute or
    /// `javascript:` link can, and nothing is fetched but the linked images.
    static let contentSecurityPolicy = "default-src 'none'; script-src \(Digest.cspSource(script)); "
        + "style-src \(Digest.cspSource(style)); img-src 'self' file: data:; base-uri 'none'; form-action 'none'"

    static func head(title: String) -> String {
        let t = title.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta http-equiv="Content-Security-Policy" content="\(contentSecurityPolicy)">
        \(generator)
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(t)</title>
        <style>\(style)</style>
        </head>
        <body>
        <header><h1>\(t)</h1>
        <span id="summary"></span>
        <button id="prev">&#8592; Prev</button><span id="pageinfo"></span><button id="next">Next &#8594;</button>
        <input type="search" id="filter" placeholder="filter captions, labels, files">
        <label><input type="checkbox" id="errorsOnly"> errors only</label>
        <label><input type="checkbox" id="showMasks" checked> boxes &amp; masks</label>
        <div id="notice" hidden></div>
        </header>
        <main id="grid"></main>
        <footer id="foot"></footer>

        """
    }

    // The page script: chunks are parsed on first use; only the current page's cards exist in the DOM.
    // Detections are drawn on a canvas at the card's display resolution (so labels keep one size on
    // any image): masks decoded from COCO compressed RLE (pycocotools' rleFrString) as an outline and
    // a light fill that leaves the object's colour readable, boxes, and labels placed inside the
    // image where they cover no other label (`data-labels` on the canvas lists where they went).
    static let script = """
    (function () {
      "use strict";
      var meta = JSON.parse(document.getElementById("meta").textContent);
      var chunkEls = document.querySelectorAll("script.chunk");
      var cache = [];
      var PALETTE = ["#ff00ff", "#00c8ff", "#ffb000", "#00d060", "#ff4060", "#8060ff"];
      var FILL_ALPHA = 31;                 // of 255: a light tint; the object's own colour stays readable
      function chunk(i) { if (!cache[i]) cache[i] = JSON.parse(chunkEls[i].textContent); return cache[i]; }
      function record(i) { return chunk(Math.floor(i / meta.chunkSize))[i % meta.chunkSize]; }
      var page = 0, selection = null;   // selection: indices matching the filter, or null for all
      var drawn = [];                   // the current page's canvases and their records, redrawn on resize

      function text(r) {
        var parts = [r.file || "", r.error || ""];
        (r.captions || []).forEach(function (c) { parts.push(c.text); });
        (r.detections || []).forEach(function (d) { parts.push(d.label); });
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
      // Column-major w×h mask bits (the writer checked that the runs cover exactly w×h).
      function maskBits(s, w, h) {
        var n = w * h, bits = new Uint8Array(n), cnts = rleCounts(s), pos = 0;
        for (var j = 0; j < cnts.length && pos < n; j++) {
          var end = Math.min(n, pos + cnts[j]);
          if (j % 2 === 1) bits.fill(1, pos, end);
          pos = end;
        }
        return bits;
      }
      function hexRGB(h) { return [parseInt(h.substr(1, 2), 16), parseInt(h.substr(3, 2), 16), parseInt(h.substr(5, 2), 16)]; }

      // Places each label (w×h) near its box: above, inside at the top, below, inside at the bottom,
      // else the first free place scanning the image; always inside the W×H canvas and over no other
      // label. A label with no free place is left out (the list under the image names every detection).
      function placeLabels(items, W, H) {
        var placed = [];
        function free(x, y, w, h) {
          for (var i = 0; i < placed.length; i++) {
            var p = placed[i];
            if (x < p.x + p.w && p.x < x + w && y < p.y + p.h && p.y < y + h) return false;
          }
          return true;
        }
        return items.map(function (it) {
          var w = Math.min(it.w, W), h = it.h, b = it.box;
          if (h > H) return null;
          var x = Math.max(0, Math.min(b[0], W - w));
          var ys = [b[1] - h, b[1], b[1] + b[3], b[1] + b[3] - h], found = null;
          for (var k = 0; k < ys.length && !found; k++) {
            var y = Math.max(0, Math.min(ys[k], H - h));
            if (free(x, y, w, h)) found = { x: x, y: y, w: w, h: h };
          }
          for (var yy = 0; yy + h <= H && !found; yy += 1) {
            if (free(x, yy, w, h)) { found = { x: x, y: yy, w: w, h: h }; break; }
            for (var xx = 0; xx + w <= W; xx += 2) if (free(xx, yy, w, h)) { found = { x: xx, y: yy, w: w, h: h }; break; }
          }
          if (found) placed.push(found);
          return found;
        });
      }

      function drawDetections(cv, r) {
        var w = r.width, h = r.height, dets = r.detections || [];
        var dpr = window.devicePixelRatio || 1;
        var W = Math.max(1, Math.round(cv.clientWidth * dpr)), H = Math.max(1, Math.round(cv.clientHeight * dpr));
        cv.width = W; cv.height = H;
        var sx = W / w, sy = H / h, ctx = cv.getContext("2d");
        var lw = Math.max(1, Math.round(1.5 * dpr));
        var colX = new Int32Array(W), rowY = new Int32Array(H), x, y;
        for (x = 0; x < W; x++) colX[x] = Math.min(w - 1, Math.floor((x + 0.5) / sx));
        for (y = 0; y < H; y++) rowY[y] = Math.min(h - 1, Math.floor((y + 0.5) / sy));
        var img = null;
        dets.forEach(function (d, i) {
          if (!d.mask) return;
          var bits = maskBits(d.mask, w, h), on = new Uint8Array(W * H);
          for (y = 0; y < H; y++) for (x = 0; x < W; x++) on[y * W + x] = bits[colX[x] * h + rowY[y]];
          function at(x, y) { return x >= 0 && y >= 0 && x < W && y < H && on[y * W + x] === 1; }
          if (!img) img = ctx.createImageData(W, H);
          var rgb = hexRGB(PALETTE[i % PALETTE.length]), data = img.data;
          for (y = 0; y < H; y++) for (x = 0; x < W; x++) {
            if (!on[y * W + x]) continue;
            var edge = false;
            for (var k = 1; k <= lw && !edge; k++) edge = !at(x - k, y) || !at(x + k, y) || !at(x, y - k) || !at(x, y + k);
            var o = 4 * (y * W + x);
            data[o] = rgb[0]; data[o + 1] = rgb[1]; data[o + 2] = rgb[2]; data[o + 3] = edge ? 255 : FILL_ALPHA;
          }
        });
        if (img) ctx.putImageData(img, 0, 0);
        var font = Math.round(11 * dpr), pad = Math.round(2 * dpr), items = [], owners = [];
        ctx.font = "600 " + font + "px sans-serif";
        ctx.textBaseline = "top";
        ctx.lineWidth = lw;
        dets.forEach(function (d, i) {
          if (!d.box) return;
          var x0 = Math.round(d.box[0] * sx), y0 = Math.round(d.box[1] * sy);
          var x1 = Math.round((d.box[0] + d.box[2]) * sx), y1 = Math.round((d.box[1] + d.box[3]) * sy);
          ctx.strokeStyle = PALETTE[i % PALETTE.length];
          ctx.strokeRect(x0 + lw / 2, y0 + lw / 2, Math.max(0, x1 - x0 - lw), Math.max(0, y1 - y0 - lw));
          var label = d.label + (typeof d.score === "number" ? " " + d.score.toFixed(2) : "");
          while (label.length > 1 && ctx.measureText(label).width + 2 * pad > W) label = label.slice(0, -2) + "\\u2026";
          items.push({ text: label, w: Math.ceil(ctx.measureText(label).width) + 2 * pad, h: font + 2 * pad,
                       box: [x0, y0, x1 - x0, y1 - y0] });
          owners.push(i);
        });
        var rects = placeLabels(items, W, H);
        rects.forEach(function (p, j) {
          if (!p) return;
          ctx.fillStyle = PALETTE[owners[j] % PALETTE.length]; ctx.fillRect(p.x, p.y, p.w, p.h);
          ctx.fillStyle = "#000"; ctx.fillText(items[j].text, p.x + pad, p.y + pad);
        });
        cv.setAttribute("data-labels", rects.filter(Boolean).map(function (p) { return [p.x, p.y, p.w, p.h].join(","); }).join(";"));
      }
      function el(tag, cls, txt) {
        var e = document.createElement(tag);
        if (cls) e.className = cls;
        if (txt !== undefined) e.textContent = txt;
        return e;
      }
      function card(r, later) {
        var c = el("article", r.error ? "card error" : "card");
        if (r.href && !r.error) {   // a failed file may not be an image at all
          var pic = el("div", "pic"), im = el("img");
          im.loading = "lazy"; im.decoding = "async"; im.alt = r.file || ""; im.src = r.href;
          if (r.width && r.height) { im.width = r.width; im.height = r.height; }   // the aspect ratio before it loads
          pic.appendChild(im);
          if ((r.detections || []).length && document.getElementById("showMasks").checked) {
            var cv = el("canvas");
            pic.appendChild(cv);
            var go = function () {
              if (!r.width || !r.height) { r.width = im.naturalWidth; r.height = im.naturalHeight; }
              if (r.width && r.height) { drawDetections(cv, r); drawn.push([cv, r]); }
            };
            if (r.width && r.height) later.push(go); else im.addEventListener("load", go);
          }
          var a = el("a"); a.href = r.href; a.appendChild(pic); c.appendChild(a);
        }
        var b = el("div", "body");
        var name = el("div", "file");
        if (r.href) { var fa = el("a", null, r.file); fa.href = r.href; name.appendChild(fa); } else name.textContent = r.file || "(no file)";
        b.appendChild(name);
        if (r.error) { b.appendChild(el("div", "err", "error: " + r.error)); }
        (r.captions || []).forEach(function (cap) {
          var p = el("div", "cap", cap.text);
          if (typeof cap.score === "number") p.appendChild(el("span", "score", cap.score.toFixed(4)));
          b.appendChild(p);
        });
        (r.detections || []).forEach(function (d, i) {
          var p = el("div", "det");
          var sw = el("span", "sw"); sw.style.background = PALETTE[i % PALETTE.length]; p.appendChild(sw);
          p.appendChild(document.createTextNode(d.label + (d.box ? " [" + d.box.join(", ") + "]" : "")));
          if (typeof d.score === "number") p.appendChild(el("span", "score", d.score.toFixed(3)));
          b.appendChild(p);
        });
        if (r.overlays && r.overlays.length) {
          var links = el("div", "links");
          r.overlays.forEach(function (h) { var a = el("a", null, decodeURIComponent(h.split("/").pop())); a.href = h; links.appendChild(a); });
          b.appendChild(links);
        }
        if (r.width && r.height) b.appendChild(el("div", "file", r.width + "\\u00d7" + r.height));
        c.appendChild(b);
        return c;
      }
      function render() {
        var grid = document.getElementById("grid");
        grid.textContent = "";
        drawn = [];
        var n = count(), start = page * meta.pageSize, end = Math.min(n, start + meta.pageSize);
        var frag = document.createDocumentFragment(), later = [];
        for (var i = start; i < end; i++) frag.appendChild(card(record(selection ? selection[i] : i), later));
        grid.appendChild(frag);
        later.forEach(function (go) { go(); });        // canvases are sized once the cards are laid out
        document.getElementById("pageinfo").textContent = " page " + (page + 1) + " / " + pages() + " ";
        document.getElementById("summary").textContent = meta.total + " records, " + meta.errors + (meta.errors === 1 ? " error" : " errors") +
          (meta.skipped ? ", " + meta.skipped + " unreadable " + (meta.skipped === 1 ? "line" : "lines") : "") + (selection ? " \\u2014 " + n + " shown" : "");
        document.getElementById("foot").textContent = "from " + meta.source;
        if (location.hash !== "#" + (page + 1)) history.replaceState(null, "", "#" + (page + 1));
        window.scrollTo(0, 0);
      }
      if (meta.skipped) {
        var notice = document.getElementById("notice");
        notice.textContent = meta.skipped + (meta.skipped === 1 ? " line" : " lines") + " of " + meta.source +
          " could not be read as a record and " + (meta.skipped === 1 ? "is" : "are") + " not shown (line " +
          meta.skippedLines.join(", ") + (meta.skipped > meta.skippedLines.length ? ", \\u2026" : "") + ").";
        notice.hidden = false;
      }
      document.getElementById("prev").onclick = function () { if (page > 0) { page--; render(); } };
      document.getElementById("next").onclick = function () { if (page < pages() - 1) { page++; render(); } };
      var timer = null, resizeTimer = null;
      document.getElementById("filter").oninput = function () { clearTimeout(timer); timer = setTimeout(applyFilter, 200); };
      document.getElementById("errorsOnly").onchange = applyFilter;
      document.getElementById("showMasks").onchange = render;
      window.addEventListener("resize", function () {
        clearTimeout(resizeTimer);
        resizeTimer = setTimeout(function () { drawn.forEach(function (e) { drawDetections(e[0], e[1]); }); }, 150);
      });
      var h = parseInt(location.hash.slice(1), 10);
      if (h > 0) page = Math.min(h - 1, pages() - 1);
      render();
    })();

    """
}
