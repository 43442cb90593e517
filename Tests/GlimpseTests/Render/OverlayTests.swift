import XCTest
@testable import Glimpse

final class ColormapAndFontTests: XCTestCase {
    func testViridisEndpoints() {
        XCTAssertEqual(Colormap.viridis.table.count, 768)
        XCTAssertEqual(Colormap.viridis.color(0), RGB(68, 1, 84))
        XCTAssertEqual(Colormap.viridis.color(1), RGB(253, 231, 37))
        XCTAssertEqual(Colormap.viridis.color(2), RGB(253, 231, 37))     // clamped
        XCTAssertEqual(Colormap.viridis.color(.nan), RGB(68, 1, 84))
        // perceptual: luminance increases monotonically along the map
        var last = -1.0
        for i in stride(from: 0, to: 256, by: 15) {
            let c = Colormap.viridis.color(Float(i) / 255)
            let y = 0.2126 * Double(c.r) + 0.7152 * Double(c.g) + 0.0722 * Double(c.b)
            XCTAssertGreaterThan(y, last)
            last = y
        }
    }

    func testEveryPrintableASCIIHasAGlyph() {
        let question = BitmapFont.glyph("?")
        for code in 32...126 {
            let ch = Character(UnicodeScalar(UInt8(code)))
            let g = BitmapFont.glyph(ch)
            XCTAssertEqual(g.count, BitmapFont.glyphHeight, "\(ch)")
            XCTAssertTrue(g.allSatisfy { $0 < 32 }, "\(ch)")
            if ch != "?" && ch != " " { XCTAssertNotEqual(g, question, "\(ch) falls back to ?") }
        }
        XCTAssertEqual(BitmapFont.glyph("é"), question)
        XCTAssertEqual(BitmapFont.size(of: "abc", scale: 2).width, (3 * 6 - 1) * 2)
    }

    func testDrawTextSetsGlyphPixels() {
        var img = RGBImage.filled(width: 12, height: 9, color: .white)
        img.drawText("l", x: 1, y: 1, color: .black)
        // "l" = ".##..|..#..|..#..|..#..|..#..|..#..|.###."
        XCTAssertEqual(img.pixel(x: 2, y: 1), .black)
        XCTAssertEqual(img.pixel(x: 3, y: 1), .black)
        XCTAssertEqual(img.pixel(x: 1, y: 1), .white)
        XCTAssertEqual(img.pixel(x: 3, y: 4), .black)
        XCTAssertEqual(img.pixel(x: 2, y: 4), .white)
        XCTAssertEqual(img.pixel(x: 4, y: 7), .black)
        var blackCount = 0
        for y in 0..<9 { for x in 0..<12 where img.pixel(x: x, y: y) == .black { blackCount += 1 } }
        XCTAssertEqual(blackCount, 2 + 5 + 3)
        // clipped at the edge without trapping
        img.drawText("W", x: 10, y: 7, color: .black, scale: 3)
    }
}

final class OverlayTests: XCTestCase {
    func image(_ w: Int, _ h: Int, _ c: RGB = RGB(200, 100, 50)) -> RGBImage { .filled(width: w, height: h, color: c) }

    func testHeatmapBlendsColormapOverImage() {
        var map = [Float](repeating: 0, count: 4)
        map[3] = 1                                   // bottom-right patch
        let out = Overlay.heatmap(image: image(20, 20), map: map, grid: 2, alpha: 0.5)
        XCTAssertEqual(out.width, 20)
        XCTAssertEqual(out.height, 20)
        // bottom-right corner: map at its max -> viridis(1) = (253, 231, 37), blended 50/50
        XCTAssertEqual(out.pixel(x: 19, y: 19), RGB(227, 166, 44))   // (200+253)/2=226.5→227, (100+231)/2=165.5→166, (50+37)/2=43.5→44
        // top-left: the map is 0 there, so the image shows unchanged (no viridis(0) tint)
        XCTAssertEqual(out.pixel(x: 0, y: 0), RGB(200, 100, 50))
    }

    /// Item 22: the heatmap's opacity follows the map, so where a word's attention is low the
    /// image keeps its colours (the old blend tinted every pixel with viridis).
    func testHeatmapLeavesLowAttentionPixelsAlone() {
        var map = [Float](repeating: 0.002, count: 64)
        map[2 * 8 + 5] = 1                                    // one patch of an 8×8 grid
        let original = image(64, 64, RGB(40, 170, 60))      // the scene world's green
        let out = Overlay.heatmap(image: original, map: map, grid: 8)
        let up = Bilinear.resize(map, width: 8, height: 8, toWidth: 64, height: 64)
        let maxv = up.max() ?? 1
        var low = 0
        for y in 0..<64 { for x in 0..<64 where up[y * 64 + x] / maxv < 0.02 {
            low += 1
            let p = out.pixel(x: x, y: y)
            XCTAssertLessThanOrEqual(max(abs(Int(p.r) - 40), abs(Int(p.g) - 170), abs(Int(p.b) - 60)), 3, "(\(x), \(y))")
        } }
        XCTAssertGreaterThan(low, 64 * 64 / 2)
        // at the peak: viridis(1) blended at the full alpha
        let peak = out.pixel(x: 5 * 8 + 4, y: 2 * 8 + 4)
        XCTAssertGreaterThan(Int(peak.r), 40 + 100)
    }

    func testResizedAveragesBlocks() {
        var img = image(4, 2, .black)
        img.setPixel(x: 0, y: 0, .white)
        img.setPixel(x: 1, y: 1, .white)
        let small = img.resized(width: 2, height: 1)
        XCTAssertEqual(small.pixel(x: 0, y: 0), RGB(128, 128, 128))
        XCTAssertEqual(small.pixel(x: 1, y: 0), .black)
    }

    private func words(_ texts: [String], grid: Int = 2) -> [WordMap] {
        texts.enumerated().map { i, t in
            var m = [Float](repeating: 0, count: grid * grid)
            m[i % m.count] = 1
            return WordMap(word: CaptionWord(text: t, tokens: [i], tokenIndex: i + 1), map: m, grid: grid)
        }
    }

    func testContactSheetDimensions() {
        let sheet = ContactSheet(tileSize: 100, maxColumns: 4, margin: 8)
        let texts = ["a", "large", "red", "circle", "to", "the"]
        let out = sheet.render(image: image(200, 100), words: words(texts))
        // the original + 6 word tiles of 100×50, label 10+4 (scale 1 below 160 px), 4 columns × 2 rows,
        // no title without a caption, a legend strip of 10+4+8
        XCTAssertEqual(out.width, 4 * 100 + 5 * 8)
        XCTAssertEqual(out.height, 2 * (50 + 14) + 3 * 8 + 22)
        let l = sheet.layout(count: 6, imageWidth: 200, imageHeight: 100)
        XCTAssertEqual(l.columns, 4)
        XCTAssertEqual(l.rows, 2)
        XCTAssertEqual(l.origin(of: 5, margin: 8).x, 8 + 108)
        XCTAssertEqual(l.origin(of: 5, margin: 8).y, 8 + 64 + 8)
        // portrait image, large tiles: scale-2 labels
        let tall = ContactSheet(tileSize: 224).layout(count: 3, imageWidth: 300, imageHeight: 400)
        XCTAssertEqual(tall.tileWidth, 168)
        XCTAssertEqual(tall.tileHeight, 224)
        XCTAssertEqual(tall.textScale, 2)
        XCTAssertEqual(tall.columns, 4)
        XCTAssertEqual(tall.rows, 1)
        // no words: the original alone
        let none = sheet.render(image: image(200, 100), words: [])
        XCTAssertEqual(none.width, 100 + 16)
        // labels are drawn in the strip under each tile
        let o = l.origin(of: 1, margin: 8)
        var ink = 0
        for y in (o.y + 50)..<(o.y + 64) { for x in o.x..<(o.x + 100) where out.pixel(x: x, y: y) == .black { ink += 1 } }
        XCTAssertGreaterThan(ink, 5)
    }

    /// Item 22: the caption as the title, the original image as the first tile, and a colour scale.
    func testContactSheetHasTheCaptionTheOriginalAndALegend() {
        let sheet = ContactSheet(tileSize: 224, maxColumns: 4, margin: 8)
        var original = image(120, 90, RGB(220, 40, 40))
        original.fillRect(x: 60, y: 0, width: 60, height: 90, color: RGB(40, 80, 220))
        let caption = "a large red square to the left of a small blue circle, a small black hexagon and a large yellow star and more words to wrap"
        let ws = words(["a", "large", "red", "square"])
        let out = sheet.render(image: original, words: ws, caption: caption)
        let l = sheet.layout(count: ws.count, imageWidth: 120, imageHeight: 90, caption: caption)
        XCTAssertEqual([out.width, out.height], [l.width, l.height])
        // title: the caption wrapped to the sheet's width, every word kept, ink in the title strip
        XCTAssertEqual(l.titleLines.joined(separator: " "), caption)
        XCTAssertGreaterThan(l.titleLines.count, 1)
        XCTAssertTrue(l.titleLines.allSatisfy { BitmapFont.size(of: $0, scale: l.textScale).width <= l.width - 16 })
        var ink = 0
        for y in 8..<l.titleHeight { for x in 0..<l.width where out.pixel(x: x, y: y) == .black { ink += 1 } }
        XCTAssertGreaterThan(ink, 100)
        // the first tile is the original image, untinted
        let o = l.origin(of: 0, margin: 8)
        let tile = original.resized(width: l.tileWidth, height: l.tileHeight)
        for (x, y) in [(5, 5), (l.tileWidth - 5, l.tileHeight - 5), (l.tileWidth / 4, l.tileHeight / 2)] {
            XCTAssertEqual(out.pixel(x: o.x + x, y: o.y + y), tile.pixel(x: x, y: y))
        }
        // the legend: viridis from low (left) to high (right) in the bottom strip
        var legend: [RGB] = []
        let y = l.legendTop + 4
        for x in 0..<l.width where out.pixel(x: x, y: y) != .white && out.pixel(x: x, y: y) != .black { legend.append(out.pixel(x: x, y: y)) }
        XCTAssertGreaterThan(legend.count, 100)
        XCTAssertEqual(legend.first, Colormap.viridis.color(0))
        XCTAssertEqual(legend.last, Colormap.viridis.color(1))
    }

    func testDetectionIsDrawnOnItsWordsTile() throws {
        var mask = BitMask(width: 40, height: 40)
        for y in 10..<30 { for x in 10..<30 { mask[x, y] = true } }
        let det = Detection(label: "circle", word: "circle", tokenIndex: 1,
                            box: PixelBox(x: 10, y: 10, width: 20, height: 20), score: 0.9, mask: RLE(mask: mask))
        let ws = words(["circle", "star"])
        let withBox = Overlay.word(ws[0], image: image(40, 40), detections: [det])
        XCTAssertEqual(withBox.pixel(x: 10, y: 20), .highlight)
        XCTAssertEqual(withBox.pixel(x: 29, y: 20), .highlight)
        XCTAssertNotEqual(withBox.pixel(x: 20, y: 20), .highlight)
        let other = Overlay.word(ws[1], image: image(40, 40), detections: [det])
        XCTAssertNotEqual(other.pixel(x: 10, y: 20), .highlight)
    }

    func testExporterFileNamesAndPNGs() throws {
        XCTAssertEqual(OverlayExporter.fileName(index: 3, word: "circle"), "03-circle.png")
        XCTAssertEqual(OverlayExporter.fileName(index: 12, word: "Circle,"), "12-circle.png")
        XCTAssertEqual(OverlayExporter.fileName(index: 0, word: "!!"), "00-word.png")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-overlay-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let urls = try OverlayExporter.export(image: image(64, 48), words: words(["a", "red", "circle"]), to: dir)
        XCTAssertEqual(urls.map(\.lastPathComponent), ["00-a.png", "01-red.png", "02-circle.png", "contact-sheet.png"])
        // The files themselves exist only with the real libpng writer (a stub here writes nothing).
        guard FileManager.default.fileExists(atPath: urls[0].path) else { throw XCTSkip("PNG writer is a stub here") }
        for u in urls {
            let data = try Data(contentsOf: u)
            XCTAssertEqual(Array(data.prefix(8)), [137, 80, 78, 71, 13, 10, 26, 10], u.lastPathComponent)
            // IHDR width and height (big-endian at bytes 16..<24)
            let w = data[16..<20].reduce(0) { $0 << 8 | Int($1) }, h = data[20..<24].reduce(0) { $0 << 8 | Int($1) }
            if u.lastPathComponent != "contact-sheet.png" { XCTAssertEqual([w, h], [64, 48], u.lastPathComponent) }
        }
    }

    /// Overlays replace only files Glimpse wrote: a foreign file of the same name stays as it was, and
    /// nothing of that run is written.
    func testExportNeverReplacesAFileGlimpseDidNotWrite() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-overlay-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ws = words(["a", "red", "circle"])
        let urls = try OverlayExporter.export(image: image(64, 48), words: ws, to: dir)
        XCTAssertTrue(PNGWriter.isWrittenByGlimpse([UInt8](try Data(contentsOf: urls[0]))))
        try OverlayExporter.export(image: image(64, 48, .black), words: ws, to: dir)      // its own files: replaced
        XCTAssertEqual(try ImageDecoder.decode(contentsOf: urls[0]).image.pixel(x: 63, y: 47), .black)
        // someone else's contact-sheet.png (a PNG from another writer: the same bytes without the mark)
        var foreign = [UInt8](try Data(contentsOf: urls[3]))
        foreign.removeSubrange(33..<(33 + PNGWriter.softwareChunk.count))
        XCTAssertNoThrow(try ImageDecoder.decode(data: Data(foreign), name: "foreign"))
        try Data(foreign).write(to: urls[3])
        try FileManager.default.removeItem(at: urls[0])
        XCTAssertThrowsError(try OverlayExporter.export(image: image(64, 48), words: ws, to: dir)) { error in
            XCTAssertEqual("\(error)", "\(urls[3].path): exists and was not written by glimpse overlay; choose another --out or move it away")
        }
        XCTAssertEqual([UInt8](try Data(contentsOf: urls[3])), foreign)
        XCTAssertFalse(FileManager.default.fileExists(atPath: urls[0].path), "nothing written")
        XCTAssertEqual(PNGWriter.crc32(Array("123456789".utf8)), 0xCBF4_3926)       // the check value of CRC-32
    }
}
