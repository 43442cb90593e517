import CImageCodecs
import Foundation

/// Writes 8-bit PNGs through libpng (overlays, masks, contact sheets).
public enum PNGWriter {
    /// Why a PNG could not be written.
    /// (Writing the file fails with `RenderError`, as every overlay and report file does.)
    public enum WriteError: Error, CustomStringConvertible, LocalizedError {
        case encoding(file: String, detail: String)

        public var description: String {
            switch self {
            case .encoding(let file, let detail): return "\(file): cannot encode PNG (\(detail))"
            }
        }
        public var errorDescription: String? { description }
    }

    public static func write(_ image: RGBImage, to url: URL) throws {
        try write(pixels: image.pixels, width: image.width, height: image.height, channels: 3, to: url)
    }

    /// Writes packed 8-bit rows: `channels` 1 (gray), 3 (RGB) or 4 (RGBA).
    public static func write(pixels: [UInt8], width: Int, height: Int, channels: Int, to url: URL) throws {
        let data = try encode(pixels: pixels, width: width, height: height, channels: channels, name: url.path)
        try OutputFiles.write([UInt8](data), to: url)
    }

    /// The PNG file bytes for packed 8-bit rows.
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int,
                              name: String = "<memory>") throws -> Data {
        guard [1, 3, 4].contains(channels) else {
            throw WriteError.encoding(file: name, detail: "\(channels) channels (1, 3 or 4 supported)")
        }
        guard width > 0, height > 0, pixels.count == width * height * channels,
              width <= Int(UInt32.max), height <= Int(UInt32.max) else {
            throw WriteError.encoding(file: name, detail: "\(pixels.count) bytes for \(width)x\(height)x\(channels)")
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer { src in
            glimpse_png_encode(src.baseAddress, UInt32(width), UInt32(height), Int32(channels), &out, &size,
                               &message, message.count)
        }
        defer { glimpse_free(out) }
        guard status == Int32(GLIMPSE_OK), let bytes = out, size > 33 else {
            throw WriteError.encoding(file: name, detail: String(cString: message))
        }
        // signature (8) + IHDR (25), then the mark, then the rest as libpng wrote it
        var png = [UInt8](UnsafeBufferPointer(start: bytes, count: size))
        png.insert(contentsOf: softwareChunk, at: 33)
        return Data(png)
    }

    /// A `tEXt` chunk `Software: glimpse` right after IHDR marks the PNGs Glimpse wrote, so that an
    /// overlay run replaces only its own files.
    static let softwareChunk: [UInt8] = {
        let body = Array("tEXtSoftware".utf8) + [0] + Array("glimpse".utf8)
        let length = UInt32(body.count - 4)
        return [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: length >> $0) } + body
            + [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: crc32(body) >> $0) }
    }()

    /// Whether `head` (a file's first bytes) is a PNG that Glimpse wrote.
    static func isWrittenByGlimpse(_ head: [UInt8]) -> Bool {
        head.count >= 33 + softwareChunk.count && Array(head[33..<(33 + softwareChunk.count)]) == softwareChunk
    }

    /// The PNG chunk CRC (ISO 3309, as zlib's crc32).
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return c ^ 0xFFFF_FFFF
    }
}
