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
        guard status == Int32(GLIMPSE_OK), let bytes = out else {
            throw WriteError.encoding(file: name, detail: String(cString: message))
        }
        return Data(bytes: bytes, count: size)
    }
}
