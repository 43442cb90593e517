import Foundation

/// An sRGB color, 8 bits per channel.
public struct RGB: Sendable, Equatable {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }

    public static let white = RGB(255, 255, 255)
    public static let black = RGB(0, 0, 0)
    /// Boxes and mask outlines: magenta is neither a scene-world object color nor in viridis,
    /// so it stands out on the heatmap and on the light backgrounds alike.
    public static let highlight = RGB(255, 0, 255)
}

/// A perceptual colormap: 256 sRGB entries indexed by a value in [0, 1].
public struct Colormap: Sendable {
    /// (r, g, b) × 256, flattened.
    public let table: [UInt8]

    public init(table: [UInt8]) {
        precondition(table.count == 256 * 3, "a colormap holds 256 RGB entries")
        self.table = table
    }

    /// matplotlib's viridis (tools/make_colormap.py).
    public static let viridis = Colormap(table: viridisTable)

    /// Color of `t` ∈ [0, 1] (clamped; NaN maps to 0).
    @inline(__always) public func color(_ t: Float) -> RGB {
        let i = t.isNaN ? 0 : Int((min(max(t, 0), 1) * 255).rounded())
        return RGB(table[3 * i], table[3 * i + 1], table[3 * i + 2])
    }
}

/// Drawing on an `RGBImage` in place (clipped to the image; no per-pixel allocation).
extension RGBImage {
    /// A blank image filled with `color`.
    public static func filled(width: Int, height: Int, color: RGB) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: max(width, 0) * max(height, 0) * 3)
        for i in stride(from: 0, to: pixels.count, by: 3) { pixels[i] = color.r; pixels[i + 1] = color.g; pixels[i + 2] = color.b }
        return RGBImage(width: max(width, 0), height: max(height, 0), pixels: pixels)
    }

    @inline(__always) public func pixel(x: Int, y: Int) -> RGB {
        let i = (y * width + x) * 3
        return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
    }

    @inline(__always) public mutating func setPixel(x: Int, y: Int, _ c: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.r; pixels[i + 1] = c.g; pixels[i + 2] = c.b
    }

    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
        let x0 = max(x, 0), y0 = max(y, 0), x1 = min(x + w, width), y1 = min(y + h, height)
        guard x0 < x1, y0 < y1 else { return }
        for yy in y0..<y1 { for xx in x0..<x1 { setPixel(x: xx, y: yy, color) } }
    }

    /// The outline of `box`, `thickness` pixels wide, drawn inside the box's extent.
    public mutating func strokeRect(_ box: PixelBox, color: RGB, thickness: Int = 2) {
        let t = max(1, min(thickness, (box.width + 1) / 2, (box.height + 1) / 2))
        fillRect(x: box.x, y: box.y, width: box.width, height: t, color: color)
        fillRect(x: box.x, y: box.y + box.height - t, width: box.width, height: t, color: color)
        fillRect(x: box.x, y: box.y, width: t, height: box.height, color: color)
        fillRect(x: box.x + box.width - t, y: box.y, width: t, height: box.height, color: color)
    }

    /// Colors the boundary pixels of `mask` (set pixels with a 4-neighbour unset or off the image),
    /// scaled from the mask's size to this image's when they differ (nearest neighbour).
    public mutating func strokeOutline(of mask: BitMask, color: RGB) {
        guard mask.width > 0, mask.height > 0 else { return }
        let sx = mask.width == width ? nil : Float(mask.width) / Float(width)
        let sy = mask.height == height ? nil : Float(mask.height) / Float(height)
        @inline(__always) func at(_ x: Int, _ y: Int) -> Bool {
            guard x >= 0, y >= 0, x < width, y < height else { return false }
            let mx = sx.map { min(Int((Float(x) + 0.5) * $0), mask.width - 1) } ?? x
            let my = sy.map { min(Int((Float(y) + 0.5) * $0), mask.height - 1) } ?? y
            return mask.bits[my * mask.width + mx] != 0
        }
        for y in 0..<height {
            for x in 0..<width where at(x, y) {
                if !at(x - 1, y) || !at(x + 1, y) || !at(x, y - 1) || !at(x, y + 1) { setPixel(x: x, y: y, color) }
            }
        }
    }

    /// Draws `text` with the embedded 5×7 font, top-left at (x, y), each font pixel `scale`×`scale`.
    public mutating func drawText(_ text: String, x: Int, y: Int, color: RGB, scale: Int = 1) {
        let s = max(scale, 1)
        var penX = x
        for ch in text {
            let rows = BitmapFont.glyph(ch)
            for (r, bitsRow) in rows.enumerated() {
                for c in 0..<BitmapFont.glyphWidth where bitsRow & (1 << (BitmapFont.glyphWidth - 1 - c)) != 0 {
                    fillRect(x: penX + c * s, y: y + r * s, width: s, height: s, color: color)
                }
            }
            penX += BitmapFont.advance * s
        }
    }

    /// Copies `image` with its top-left at (x, y) (clipped).
    public mutating func paste(_ image: RGBImage, x: Int, y: Int) {
        for sy in 0..<image.height {
            let dy = y + sy
            guard dy >= 0 && dy < height else { continue }
            for sx in 0..<image.width {
                let dx = x + sx
                guard dx >= 0 && dx < width else { continue }
                let s = (sy * image.width + sx) * 3, d = (dy * width + dx) * 3
                pixels[d] = image.pixels[s]; pixels[d + 1] = image.pixels[s + 1]; pixels[d + 2] = image.pixels[s + 2]
            }
        }
    }

    /// Resized to `w`×`h`: each output pixel averages the source pixels its footprint covers
    /// (area filter, so thumbnails do not alias); enlarging repeats pixels.
    public func resized(width w: Int, height h: Int) -> RGBImage {
        guard w > 0, h > 0, width > 0, height > 0 else { return RGBImage(width: max(w, 0), height: max(h, 0), pixels: []) }
        var out = [UInt8](repeating: 0, count: w * h * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<h {
                    let y0 = oy * height / h, y1 = max(y0 + 1, (oy + 1) * height / h)
                    for ox in 0..<w {
                        let x0 = ox * width / w, x1 = max(x0 + 1, (ox + 1) * width / w)
                        var r = 0, g = 0, b = 0
                        for yy in y0..<y1 {
                            for xx in x0..<x1 {
                                let i = (yy * width + xx) * 3
                                r += Int(src[i]); g += Int(src[i + 1]); b += Int(src[i + 2])
                            }
                        }
                        let n = (y1 - y0) * (x1 - x0), o = (oy * w + ox) * 3
                        dst[o] = UInt8((r + n / 2) / n); dst[o + 1] = UInt8((g + n / 2) / n); dst[o + 2] = UInt8((b + n / 2) / n)
                    }
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: out)
    }
}
