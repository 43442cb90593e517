import Foundation

/// Attention heatmaps over images.
public enum Overlay {
    /// Opacity of the heatmap where the map is at its maximum.
    public static let defaultAlpha: Float = 0.6

    /// `map` (G×G row-major) bilinearly upsampled to the image (align_corners=False), scaled by its
    /// maximum to t ∈ [0, 1], colored with `colormap` and blended over `image` with opacity `alpha · t`:
    /// where the word's attention is low the image shows unchanged, so the colours of the objects it
    /// did not look at stay as they are.
    public static func heatmap(image: RGBImage, map: [Float], grid: Int, alpha: Float = defaultAlpha,
                               colormap: Colormap = .viridis) -> RGBImage {
        guard grid > 0, map.count == grid * grid, image.width > 0, image.height > 0 else { return image }
        let up = Bilinear.resize(map, width: grid, height: grid, toWidth: image.width, height: image.height)
        var maxv: Float = 0
        for v in up where v > maxv { maxv = v }
        let inv: Float = maxv > 0 ? 1 / maxv : 0
        let a = min(max(alpha, 0), 1)
        var out = image
        out.pixels.withUnsafeMutableBufferPointer { px in
            for i in 0..<up.count {
                let t = min(max(up[i] * inv, 0), 1)
                guard t > 0 else { continue }
                let c = colormap.color(t)
                let p = 3 * i
                px[p] = blend(px[p], c.r, a * t)
                px[p + 1] = blend(px[p + 1], c.g, a * t)
                px[p + 2] = blend(px[p + 2], c.b, a * t)
            }
        }
        return out
    }

    @inline(__always) static func blend(_ under: UInt8, _ over: UInt8, _ a: Float) -> UInt8 {
        UInt8(min(255, max(0, (Float(under) * (1 - a) + Float(over) * a).rounded())))
    }

    /// Line width for boxes and outlines on an image of this size (visible on large images, not heavy on small).
    public static func lineWidth(width: Int, height: Int) -> Int { max(1, min(width, height) / 160) }

    /// Draws `detection`'s box and mask outline, scaled from the original image size
    /// (`originalWidth`×`originalHeight`) to `image`'s.
    public static func draw(_ detection: Detection, on image: inout RGBImage, originalWidth: Int, originalHeight: Int,
                            color: RGB = .highlight) {
        guard originalWidth > 0, originalHeight > 0 else { return }
        if let rle = detection.mask { image.strokeOutline(of: rle.decode(), color: color) }
        let sx = Double(image.width) / Double(originalWidth), sy = Double(image.height) / Double(originalHeight)
        let b = detection.box
        let x0 = Int((Double(b.x) * sx).rounded()), y0 = Int((Double(b.y) * sy).rounded())
        let x1 = Int((Double(b.x + b.width) * sx).rounded()), y1 = Int((Double(b.y + b.height) * sy).rounded())
        image.strokeRect(PixelBox(x: x0, y: y0, width: max(1, x1 - x0), height: max(1, y1 - y0)), color: color,
                         thickness: lineWidth(width: image.width, height: image.height) + 1)
    }

    /// One word's overlay at the image's size, with its detection (same token index) drawn when present.
    public static func word(_ word: WordMap, image: RGBImage, detections: [Detection] = []) -> RGBImage {
        var out = heatmap(image: image, map: word.map, grid: word.grid)
        for d in detections where d.tokenIndex == word.word.tokenIndex {
            draw(d, on: &out, originalWidth: image.width, originalHeight: image.height)
        }
        return out
    }
}

/// The caption as a title, the original image, then every word's overlay as a tile in reading order
/// (the word printed under each), and a legend: the colour scale of the heatmap and the outline colour.
public struct ContactSheet: Sendable {
    /// Longer side of a tile in pixels.
    public var tileSize: Int
    /// At most this many tiles per row.
    public var maxColumns: Int
    /// Space between and around tiles.
    public var margin: Int
    public var background: RGB
    public var textColor: RGB

    public init(tileSize: Int = 224, maxColumns: Int = 4, margin: Int = 8,
                background: RGB = .white, textColor: RGB = .black) {
        self.tileSize = min(max(tileSize, 8), 4096)
        self.maxColumns = min(max(maxColumns, 1), 64)
        self.margin = min(max(margin, 0), 256)
        self.background = background
        self.textColor = textColor
    }

    /// Geometry of a sheet: the title's lines, `count` tiles of an image `width`×`height`, the legend.
    public struct Layout: Sendable, Equatable {
        public var tileWidth: Int, tileHeight: Int, labelHeight: Int, textScale: Int
        public var columns: Int, rows: Int
        /// The caption wrapped to the sheet's width (empty without a caption).
        public var titleLines: [String]
        public var titleHeight: Int, legendHeight: Int
        public var width: Int, height: Int

        /// Top-left of tile `i` (reading order: left to right, then down).
        public func origin(of i: Int, margin: Int) -> (x: Int, y: Int) {
            (margin + (i % columns) * (tileWidth + margin),
             titleHeight + margin + (i / columns) * (tileHeight + labelHeight + margin))
        }

        /// Top of the legend strip.
        public var legendTop: Int { height - legendHeight }
    }

    /// Tiles are the original image and one per word (`count` words).
    public func layout(count: Int, imageWidth: Int, imageHeight: Int, caption: String = "") -> Layout {
        let w = max(imageWidth, 1), h = max(imageHeight, 1)
        let tw = w >= h ? tileSize : max(1, Int((Double(tileSize) * Double(w) / Double(h)).rounded()))
        let th = h >= w ? tileSize : max(1, Int((Double(tileSize) * Double(h) / Double(w)).rounded()))
        let scale = tw >= 160 ? 2 : 1
        let line = BitmapFont.lineHeight * scale
        let labelHeight = line + 4
        let n = max(count, 0) + 1
        let columns = min(n, maxColumns), rows = (n + columns - 1) / columns
        let width = columns * tw + (columns + 1) * margin
        let perLine = max(1, (width - 2 * margin + scale) / (BitmapFont.advance * scale))
        let lines = Self.wrap(caption, width: perLine)
        let titleHeight = lines.isEmpty ? 0 : margin + lines.count * line
        let legendHeight = line + 4 + margin
        return Layout(tileWidth: tw, tileHeight: th, labelHeight: labelHeight, textScale: scale,
                      columns: columns, rows: rows, titleLines: lines,
                      titleHeight: titleHeight, legendHeight: legendHeight,
                      width: width, height: titleHeight + rows * (th + labelHeight) + (rows + 1) * margin + legendHeight)
    }

    /// `text` in lines of at most `width` characters, broken at spaces (a longer word is split).
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = [], current = ""
        for word in text.split(separator: " ") {
            var w = String(word)
            while w.count > width {
                if !current.isEmpty { lines.append(current); current = "" }
                lines.append(String(w.prefix(width)))
                w = String(w.dropFirst(width))
            }
            if current.isEmpty { current = w }
            else if current.count + 1 + w.count <= width { current += " " + w }
            else { lines.append(current); current = w }
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }

    /// The sheet. Detections are drawn on the tile of the word with the same token index.
    public func render(image: RGBImage, words: [WordMap], detections: [Detection] = [], caption: String = "") -> RGBImage {
        let l = layout(count: words.count, imageWidth: image.width, imageHeight: image.height, caption: caption)
        var sheet = RGBImage.filled(width: l.width, height: l.height, color: background)
        let line = BitmapFont.lineHeight * l.textScale
        for (i, text) in l.titleLines.enumerated() {
            sheet.drawText(text, x: margin, y: margin + i * line, color: textColor, scale: l.textScale)
        }
        // Regions no single word carries (a task answer's boxes and polygons) go on the image's tile.
        var first = image.resized(width: l.tileWidth, height: l.tileHeight)
        for d in detections where d.tokenIndex < 0 {
            Overlay.draw(d, on: &first, originalWidth: image.width, originalHeight: image.height)
        }
        let tiles: [(RGBImage, String)] = [(first, "image")]
            + words.map { w in
                var tile = Overlay.heatmap(image: image, map: w.map, grid: w.grid).resized(width: l.tileWidth, height: l.tileHeight)
                for d in detections where d.tokenIndex == w.word.tokenIndex {
                    Overlay.draw(d, on: &tile, originalWidth: image.width, originalHeight: image.height)
                }
                return (tile, w.word.text)
            }
        for (i, (tile, text)) in tiles.enumerated() {
            let o = l.origin(of: i, margin: margin)
            sheet.paste(tile, x: o.x, y: o.y)
            let fit = max(1, (l.tileWidth + l.textScale) / (BitmapFont.advance * l.textScale))
            let label = text.count > fit ? String(text.prefix(max(fit - 1, 0))) + "~" : text
            let size = BitmapFont.size(of: label, scale: l.textScale)
            sheet.drawText(label, x: o.x + (l.tileWidth - size.width) / 2, y: o.y + l.tileHeight + 3,
                           color: textColor, scale: l.textScale)
        }
        drawLegend(on: &sheet, layout: l, outlines: !detections.isEmpty)
        return sheet
    }

    /// "low [viridis bar] high", and the outline colour's meaning when boxes are drawn; what does not
    /// fit the sheet's width is left out, the bar first shrinking to a minimum.
    func drawLegend(on sheet: inout RGBImage, layout l: Layout, outlines: Bool) {
        let s = l.textScale, line = BitmapFont.lineHeight * s
        let y = l.legendTop + 2, right = l.width - margin
        var x = margin
        func text(_ t: String) {
            sheet.drawText(t, x: x, y: y, color: textColor, scale: s)
            x += BitmapFont.size(of: t, scale: s).width + BitmapFont.advance * s
        }
        let words = BitmapFont.size(of: "low", scale: s).width + BitmapFont.size(of: "high", scale: s).width
            + 2 * BitmapFont.advance * s
        let outlineText = "object"
        let outlineWidth = outlines ? line + BitmapFont.advance * s + BitmapFont.size(of: outlineText, scale: s).width + 3 * BitmapFont.advance * s : 0
        var bar = min(160 * s, right - x - words - outlineWidth)
        var showOutline = outlines
        if bar < 24 { showOutline = false; bar = min(160 * s, right - x - words) }
        guard bar >= 8 else { return }
        text("low")
        let barHeight = line - 2 * s
        for i in 0..<bar {
            let c = Colormap.viridis.color(Float(i) / Float(max(bar - 1, 1)))
            sheet.fillRect(x: x + i, y: y, width: 1, height: barHeight, color: c)
        }
        x += bar + BitmapFont.advance * s
        text("high")
        if showOutline {
            x += 2 * BitmapFont.advance * s
            let box = PixelBox(x: x, y: y, width: barHeight, height: barHeight)
            sheet.strokeRect(box, color: .highlight, thickness: max(1, s))
            x += barHeight + BitmapFont.advance * s
            text(outlineText)
        }
    }
}

/// Writes overlays as PNG files.
public enum OverlayExporter {
    /// File name of word `index`'s overlay: two-digit reading-order index and the word's letters
    /// and digits ("03-circle.png"); a word without any is named "word".
    public static func fileName(index: Int, word: String) -> String {
        let safe = String(word.lowercased().unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) && $0.isASCII }.map(Character.init))
        return String(format: "%02d-%@.png", index, safe.isEmpty ? "word" : safe)
    }

    /// One PNG per word (the image's size) and `contact-sheet.png` (with `caption` as its title) in
    /// `directory` (created when missing); a file of those names that Glimpse did not write is never
    /// replaced (the PNGs it writes carry a `Software: glimpse` text chunk). Returns the files written, words first in reading order,
    /// then `regions.png` (the regions no word carries, when there are any), the contact sheet last.
    @discardableResult
    public static func export(image: RGBImage, words: [WordMap], detections: [Detection] = [], caption: String = "",
                              to directory: URL, sheet: ContactSheet = ContactSheet()) throws -> [URL] {
        try OutputFiles.makeDirectory(directory)
        let wordURLs = words.enumerated().map { directory.appendingPathComponent(fileName(index: $0, word: $1.word.text)) }
        let sheetURL = directory.appendingPathComponent("contact-sheet.png")
        // A task answer's regions (Florence-2's boxes, polygons, OCR quads) also get the image to themselves.
        let regions = detections.filter { $0.tokenIndex < 0 }
        let regionsURL = regions.isEmpty ? nil : directory.appendingPathComponent("regions.png")
        let targets = wordURLs + (regionsURL.map { [$0] } ?? []) + [sheetURL]
        // Every target is checked before anything is written: a file Glimpse did not write stays as it was.
        for url in targets {
            if let head = try OutputFiles.head(of: url, count: 64), !PNGWriter.isWrittenByGlimpse(head) {
                throw RenderError.wouldOverwrite(file: url.path, detail: "exists and was not written by glimpse overlay; choose another --out or move it away")
            }
        }
        for (w, url) in zip(words, wordURLs) {
            try PNGWriter.write(Overlay.word(w, image: image, detections: detections), to: url)
        }
        if let regionsURL {
            var drawn = image
            for d in regions { Overlay.draw(d, on: &drawn, originalWidth: image.width, originalHeight: image.height) }
            try PNGWriter.write(drawn, to: regionsURL)
        }
        try PNGWriter.write(sheet.render(image: image, words: words, detections: detections, caption: caption), to: sheetURL)
        return targets
    }
}
