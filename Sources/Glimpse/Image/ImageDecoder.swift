import Foundation

/// Decodes JPEG and PNG files to 8-bit RGB the way PIL does
/// (`ImageOps.exif_transpose(Image.open(f)).convert("RGB")`), which is what the
/// reference preprocessing in transformers sees.
public enum ImageDecoder {
    /// 100 megapixels: a 12 MP photo is far below; a decompression bomb is far above.
    public static let defaultMaxPixels = 100_000_000

    /// Reads and decodes the file at `url`. The format comes from the leading bytes, never the extension.
    public static func decode(contentsOf url: URL, maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        // As the caller wrote it: relative paths stay relative in messages.
        let name = url.isFileURL ? url.relativePath : url.absoluteString
        if url.isFileURL { try checkRegularFile(url.path, name: name) }
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw ImageError.unreadable(file: name, reason: ioReason(error))
        }
        return try decode(data: data, name: name, maxPixels: maxPixels)
    }

    /// Decodes an in-memory file; `name` is used in error messages.
    public static func decode(data: Data, name: String, maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        guard let format = detectFormat(data) else {
            // A prefix of a signature is a cut-off file, not a foreign one.
            if !data.isEmpty && (isPrefix(data, of: jpegSignature) || isPrefix(data, of: pngSignature)) {
                throw ImageError.truncated(file: name)
            }
            throw ImageError.notAnImage(file: name)
        }
        return try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> DecodedImage in
            switch format {
            case .jpeg: return try JPEGDecoder.decode(bytes, name: name, maxPixels: maxPixels)
            case .png: return try PNGDecoder.decode(bytes, name: name, maxPixels: maxPixels)
            }
        }
    }

    /// The container format from the leading bytes, or nil when neither signature matches.
    public static func detectFormat(_ data: Data) -> ImageFormat? {
        if data.starts(with: pngSignature) { return .png }
        if data.starts(with: jpegSignature) { return .jpeg }
        return nil
    }

    // SOI followed by the first marker's 0xFF.
    static let jpegSignature: [UInt8] = [0xFF, 0xD8, 0xFF]
    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    private static func isPrefix(_ data: Data, of signature: [UInt8]) -> Bool {
        data.count < signature.count && signature.starts(with: data)
    }

    /// Throws `tooLarge` unless width x height fits the limit. Called before any pixel buffer exists.
    static func checkLimit(width: Int, height: Int, maxPixels: Int, name: String) throws {
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        if overflow || pixels > maxPixels {
            throw ImageError.tooLarge(file: name, width: width, height: height, limit: maxPixels)
        }
        if width <= 0 || height <= 0 {
            throw ImageError.corrupt(file: name, detail: "image has no pixels (\(width)x\(height))")
        }
    }

    /// A directory, FIFO, device or socket is not an image file: said so before reading (opening a
    /// FIFO would block until a writer comes; Foundation reports a directory as "error 256").
    static func checkRegularFile(_ path: String, name: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            throw ImageError.unreadable(file: name, reason: code == ENOENT ? "no such file" : String(cString: strerror(code)))
        }
        let kind: String
        switch info.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: throw ImageError.unreadable(file: name, reason: "it is a directory; to caption every image under it, use: glimpse batch \(name)")
        case S_IFIFO: kind = "a FIFO"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        case S_IFSOCK: kind = "a socket"
        default: kind = "not a regular file"
        }
        throw ImageError.unreadable(file: name, reason: "it is \(kind), not an image file")
    }

    private static func ioReason(_ error: Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError,
           underlying.domain == NSPOSIXErrorDomain, let code = POSIXErrorCode(rawValue: Int32(underlying.code)) {
            return String(cString: strerror(code.rawValue))
        }
        switch nsError.code {
        case NSFileReadNoSuchFileError: return "no such file"
        case NSFileReadNoPermissionError: return "permission denied"
        default: return nsError.localizedDescription
        }
    }
}
