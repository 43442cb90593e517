import CImageCodecs

/// libpng through the C shim, low-level API: the header is read (and the pixel limit
/// checked) before any row is decoded.
enum PNGDecoder {
    static func decode(_ bytes: UnsafeRawBufferPointer, name: String, maxPixels: Int) throws -> DecodedImage {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let png = glimpse_png_create(base, bytes.count) else {
            throw ImageError.corrupt(file: name, detail: "cannot create PNG decoder")
        }
        defer { glimpse_png_destroy(png) }

        var header = glimpse_png_header()
        let status = glimpse_png_read_header(png, &header)
        let width = Int(header.width), height = Int(header.height)
        if status != Int32(GLIMPSE_OK) {
            throw codecError(status, message: String(cString: glimpse_png_message(png)), name: name,
                             width: width, height: height, maxPixels: maxPixels)
        }
        try ImageDecoder.checkLimit(width: width, height: height, maxPixels: maxPixels, name: name)

        let layout: ChannelLayout
        switch header.color_type {
        case 0: layout = .gray
        case 2: layout = .rgb
        case 3: layout = .palette
        case 4: layout = .grayAlpha
        case 6: layout = .rgba
        default: throw ImageError.unsupported(file: name, variant: "PNG color type \(header.color_type)")
        }

        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let decodeStatus = pixels.withUnsafeMutableBufferPointer {
            glimpse_png_decode_rgb(png, $0.baseAddress, $0.count)
        }
        if decodeStatus != Int32(GLIMPSE_OK) {
            throw codecError(decodeStatus, message: String(cString: glimpse_png_message(png)), name: name,
                             width: width, height: height, maxPixels: maxPixels)
        }
        // PIL's exif_transpose honours an eXIf chunk in PNGs too.
        var exifSize = 0
        var orientation = 1
        if let exif = glimpse_png_exif(png, &exifSize), exifSize > 0 {
            orientation = EXIFOrientation.fromEXIF(UnsafeRawBufferPointer(start: exif, count: exifSize)) ?? 1
        }
        let image = EXIFOrientation.apply(orientation, to: RGBImage(width: width, height: height, pixels: pixels))
        let info = ImageInfo(format: .png, width: image.width, height: image.height, layout: layout,
                             bitDepth: Int(header.bit_depth), orientation: orientation,
                             interlaced: header.interlaced != 0, hasTransparency: header.has_trns != 0,
                             transparentColor: header.has_trns_color != 0
                                 ? [Int(header.trns_color.0), Int(header.trns_color.1), Int(header.trns_color.2)] : nil)
        return DecodedImage(image: image, info: info)
    }
}
