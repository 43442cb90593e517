import CImageCodecs

/// libjpeg-turbo through the C shim (islow DCT, fancy upsampling: PIL's settings,
/// which makes baseline output identical to Pillow's to the bit).
enum JPEGDecoder {
    static func decode(_ bytes: UnsafeRawBufferPointer, name: String, maxPixels: Int) throws -> DecodedImage {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let jpeg = glimpse_jpeg_create(base, bytes.count) else {
            throw ImageError.corrupt(file: name, detail: "cannot create JPEG decoder")
        }
        defer { glimpse_jpeg_destroy(jpeg) }

        var header = glimpse_jpeg_header()
        let status = glimpse_jpeg_read_header(jpeg, &header)
        let width = Int(header.width), height = Int(header.height)
        if status != Int32(GLIMPSE_OK) {
            throw codecError(status, message: String(cString: glimpse_jpeg_message(jpeg)), name: name,
                             width: width, height: height, maxPixels: maxPixels)
        }
        try ImageDecoder.checkLimit(width: width, height: height, maxPixels: maxPixels, name: name)

        let layout: ChannelLayout
        switch (header.components, header.color_space) {
        case (1, _): layout = .gray
        case (3, _): layout = .rgb
        case (4, Int32(GLIMPSE_JCS_YCCK)): layout = .ycck
        case (4, _): layout = .cmyk
        default:
            throw ImageError.unsupported(file: name, variant: "\(header.components)-component JPEG")
        }
        let components = Int(header.components)
        let orientation = EXIFOrientation.fromJPEG(bytes)

        // Decode straight into the final buffer when libjpeg already produces RGB.
        var samples = [UInt8](repeating: 0, count: width * height * components)
        let decodeStatus = samples.withUnsafeMutableBufferPointer {
            glimpse_jpeg_decode(jpeg, $0.baseAddress, $0.count)
        }
        if decodeStatus != Int32(GLIMPSE_OK) {
            throw codecError(decodeStatus, message: String(cString: glimpse_jpeg_message(jpeg)), name: name,
                             width: width, height: height, maxPixels: maxPixels)
        }
        let rgb: [UInt8]
        switch components {
        case 1: rgb = grayToRGB(samples)
        case 4: rgb = adobeCMYKToRGB(samples)
        default: rgb = samples
        }
        let image = EXIFOrientation.apply(orientation, to: RGBImage(width: width, height: height, pixels: rgb))
        let info = ImageInfo(format: .jpeg, width: image.width, height: image.height, layout: layout,
                             bitDepth: Int(header.precision), orientation: orientation,
                             interlaced: header.progressive != 0)
        return DecodedImage(image: image, info: info)
    }

    /// PIL reads every 4-component JPEG as inverted ("Adobe") CMYK (rawmode CMYK;I) and
    /// converts with Convert.c's cmyk2rgb: nk = 255 - k; r = nk - c * nk / 255 (rounded).
    static func adobeCMYKToRGB(_ cmyk: [UInt8]) -> [UInt8] {
        let count = cmyk.count / 4
        return [UInt8](unsafeUninitializedCapacity: count * 3) { out, initialized in
            cmyk.withUnsafeBufferPointer { src in
                for i in 0..<count {
                    // libjpeg hands us the stored (Adobe-inverted) samples: c = 255 - stored,
                    // so nk = 255 - k is the stored K sample itself.
                    let nk = Int(src[4 * i + 3])
                    for channel in 0..<3 {
                        let c = 255 - Int(src[4 * i + channel])
                        // MULDIV255(c, nk) = ((t >> 8) + t) >> 8 with t = c * nk + 128
                        let t = c * nk + 128
                        let value = nk - (((t >> 8) + t) >> 8)
                        out[3 * i + channel] = UInt8(clamping: value)
                    }
                }
            }
            initialized = count * 3
        }
    }

    static func grayToRGB(_ gray: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: gray.count * 3) { out, initialized in
            for (i, g) in gray.enumerated() {
                out[3 * i] = g
                out[3 * i + 1] = g
                out[3 * i + 2] = g
            }
            initialized = gray.count * 3
        }
    }
}

/// Maps a shim status to the public error.
func codecError(_ status: Int32, message: String, name: String, width: Int, height: Int,
                maxPixels: Int) -> ImageError {
    switch status {
    case Int32(GLIMPSE_TRUNCATED): return .truncated(file: name)
    case Int32(GLIMPSE_UNSUPPORTED): return .unsupported(file: name, variant: message)
    case Int32(GLIMPSE_TOO_LARGE): return .tooLarge(file: name, width: width, height: height, limit: maxPixels)
    case Int32(GLIMPSE_NO_MEMORY): return .corrupt(file: name, detail: "out of memory: \(message)")
    default: return .corrupt(file: name, detail: message.isEmpty ? "malformed data" : message)
    }
}
