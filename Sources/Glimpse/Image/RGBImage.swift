/// An 8-bit RGB image, pixels interleaved row by row (`pixels[(y * width + x) * 3 + c]`).
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3,
                     "RGBImage: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A black image.
    public init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height * 3))
    }

    /// Whether `pixels` holds the whole image (a pipeline empties it once only the size is needed).
    public var hasPixels: Bool { pixels.count == width * height * 3 }

    /// The (r, g, b) value at column `x`, row `y`.
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}

/// Container format, detected from the leading bytes.
public enum ImageFormat: String, Sendable, Codable {
    case jpeg
    case png
}

/// How the samples are stored in the file, before conversion to RGB.
public enum ChannelLayout: String, Sendable, Codable {
    case gray
    case grayAlpha = "gray+alpha"
    case rgb
    case rgba
    case palette
    case cmyk
    case ycck
}

/// What the file says about itself. `width` and `height` are after EXIF orientation,
/// i.e. the size of the decoded `RGBImage`.
public struct ImageInfo: Equatable, Sendable {
    public var format: ImageFormat
    public var width: Int
    public var height: Int
    public var layout: ChannelLayout
    /// Bits per sample in the file (1, 2, 4, 8 or 16).
    public var bitDepth: Int
    /// EXIF orientation tag (1...8; 1 when absent). Values outside 1...8 are reported but not applied.
    public var orientation: Int
    /// Progressive JPEG or Adam7-interlaced PNG.
    public var interlaced: Bool
    /// PNG with a tRNS chunk (transparency that `RGBImage` drops, as PIL's convert("RGB") does).
    public var hasTransparency: Bool
    /// The colour PIL's RGB image still carries as `info["transparency"]` (see glimpse_png_header),
    /// in file sample units; image processors with do_convert_rgb paint its pixels white.
    public var transparentColor: [Int]?

    public init(format: ImageFormat, width: Int, height: Int, layout: ChannelLayout, bitDepth: Int,
                orientation: Int = 1, interlaced: Bool = false, hasTransparency: Bool = false,
                transparentColor: [Int]? = nil) {
        self.format = format
        self.width = width
        self.height = height
        self.layout = layout
        self.bitDepth = bitDepth
        self.orientation = orientation
        self.interlaced = interlaced
        self.hasTransparency = hasTransparency
        self.transparentColor = transparentColor
    }
}

/// A decoded image and what its file said about it.
public struct DecodedImage: Equatable, Sendable {
    public var image: RGBImage
    public var info: ImageInfo

    public init(image: RGBImage, info: ImageInfo) {
        self.image = image
        self.info = info
    }
}
