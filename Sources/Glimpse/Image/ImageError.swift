import Foundation

/// Why an image could not be decoded. Every case names the file (or the name given
/// to `ImageDecoder.decode(data:name:)`) so a message stands on its own in a batch log.
public enum ImageError: Error, Equatable, Sendable {
    /// The bytes start with neither the JPEG nor the PNG signature (this includes empty files).
    case notAnImage(file: String)
    /// The data ends before the image does.
    case truncated(file: String)
    /// The stream is malformed: bad marker, CRC, Huffman code, zlib data, ...
    case corrupt(file: String, detail: String)
    /// A well-formed image in a variant we do not decode (e.g. 12-bit JPEG).
    case unsupported(file: String, variant: String)
    /// The header announces more pixels than the limit; nothing was allocated.
    case tooLarge(file: String, width: Int, height: Int, limit: Int)
    /// The file could not be read at all.
    case unreadable(file: String, reason: String)

    /// The file the error is about.
    public var file: String {
        switch self {
        case .notAnImage(let file), .truncated(let file), .corrupt(let file, _),
             .unsupported(let file, _), .tooLarge(let file, _, _, _), .unreadable(let file, _):
            return file
        }
    }

    /// A short stable name of the cause, for JSON output and tests.
    public var kind: String {
        switch self {
        case .notAnImage: return "notAnImage"
        case .truncated: return "truncated"
        case .corrupt: return "corrupt"
        case .unsupported: return "unsupported"
        case .tooLarge: return "tooLarge"
        case .unreadable: return "unreadable"
        }
    }
}

extension ImageError: CustomStringConvertible, LocalizedError {
    public var description: String {
        switch self {
        case .notAnImage(let file):
            return "\(file): not an image (no JPEG or PNG signature)"
        case .truncated(let file):
            return "\(file): truncated image data"
        case .corrupt(let file, let detail):
            return "\(file): corrupt image data (\(detail))"
        case .unsupported(let file, let variant):
            return "\(file): unsupported image variant (\(variant))"
        case .tooLarge(let file, let width, let height, let limit):
            return "\(file): image too large (\(width)x\(height) = \(width * height) pixels, limit \(limit))"
        case .unreadable(let file, let reason):
            return "\(file): cannot read file (\(reason))"
        }
    }

    public var errorDescription: String? { description }
}
