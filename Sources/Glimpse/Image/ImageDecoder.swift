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
        guard url.isFileURL else { throw ImageError.unreadable(file: url.absoluteString, reason: "not a file URL") }
        return try decode(file: url.relativePath, maxPixels: maxPixels)
    }

    /// Reads and decodes the file at `path` (a `RawPath` string: names that are not UTF-8 work too).
    public static func decode(file path: String, maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        try decode(data: try readFile(path), name: path, maxPixels: maxPixels)
    }

    /// The whole file, read with read(2) (not mapped: a file truncated while mapped raises SIGBUS).
    /// Only regular files are read; a FIFO or device is named as such instead of being opened for reading
    /// (O_NONBLOCK: opening a FIFO with no writer would block for good).
    public static func readFile(_ path: String) throws -> Data {
        let fd = RawPath.withCString(path) { open($0, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
        guard fd >= 0 else {
            let code = errno
            throw ImageError.unreadable(file: path, reason: code == ENOENT ? "no such file" : String(cString: strerror(code)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ImageError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw ImageError.unreadable(file: path, reason: "it is a directory; to caption every image under it, use: glimpse batch \(path)")
        }
        if let kind = nonRegularKind(st.st_mode) {
            throw ImageError.unreadable(file: path, reason: "\(kind), not a regular file")
        }
        var data = Data(count: Int(st.st_size))
        var count = 0
        func fail() -> ImageError { ImageError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        while count < data.count {
            let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 { if errno == EINTR { continue }; throw fail() }
            if n == 0 { break }
            count += n
        }
        if count < data.count { data.removeSubrange(count...) }
        // A file that grew since fstat: the rest, in chunks.
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while count == data.count {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 { if errno == EINTR { continue }; throw fail() }
            if n == 0 { break }
            data.append(chunk, count: n)
            count += n
        }
        return data
    }

    /// What a file of this mode is, in words, when it is not a regular file.
    public static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
        }
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
}
