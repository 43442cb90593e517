import Foundation

/// JPEG and PNG decoding through the C shims, and EXIF orientation parsing.
enum FuzzImage {
    /// Small enough to keep executions fast; the pixel limit itself is exercised by the unit tests.
    static let maxPixels = 1 << 20

    static func decode(_ bytes: UnsafeRawBufferPointer, prefix: [UInt8]) {
        // Keep the input on its format's path even when the mutator breaks the signature.
        var data = Data(prefix)
        if bytes.starts(with: prefix) { data = Data(bytes) } else { data.append(contentsOf: bytes) }
        do {
            let decoded = try ImageDecoder.decode(data: data, name: "fuzz", maxPixels: maxPixels)
            let image = decoded.image
            fuzzCheck(image.width > 0 && image.height > 0, "empty image decoded")
            fuzzCheck(image.width * image.height <= maxPixels, "pixel limit ignored: \(image.width)x\(image.height)")
            fuzzCheck(image.pixels.count == image.width * image.height * 3, "pixel buffer of the wrong size")
        } catch is ImageError {
        } catch {
            fuzzCheck(false, "unexpected error type \(type(of: error)): \(error)")
        }
    }

    static func jpeg(_ bytes: UnsafeRawBufferPointer) { decode(bytes, prefix: ImageDecoder.jpegSignature) }
    static func png(_ bytes: UnsafeRawBufferPointer) { decode(bytes, prefix: ImageDecoder.pngSignature) }

    /// The input as a whole JPEG marker stream and as a bare Exif/TIFF block; the orientation found
    /// is applied to a small non-square image to check the transposes for every value.
    static func exif(_ bytes: UnsafeRawBufferPointer) {
        let fromJPEG = EXIFOrientation.fromJPEG(bytes)
        let fromBlock = EXIFOrientation.fromEXIF(bytes)
        let image = RGBImage(width: 3, height: 2, pixels: (0..<18).map { UInt8($0) })
        for orientation in [fromJPEG, fromBlock ?? 1] {
            let out = EXIFOrientation.apply(orientation, to: image)
            fuzzCheck(out.pixels.count == 18 && out.width * out.height == 6, "orientation \(orientation) changed the pixel count")
        }
    }
}
