/// EXIF orientation: where it is stored and how PIL's `ImageOps.exif_transpose` applies it.
enum EXIFOrientation {
    /// The orientation tag of a JPEG's Exif APP1 segment(s), 1 when absent or unreadable.
    /// Like PIL, Exif payloads of several APP1 segments are concatenated, the first one
    /// supplying the TIFF header.
    static func fromJPEG(_ bytes: UnsafeRawBufferPointer) -> Int {
        var exif: [UInt8] = []
        var position = 2 // after SOI
        let count = bytes.count
        while position + 4 <= count {
            guard bytes[position] == 0xFF else { break }
            let marker = bytes[position + 1]
            if marker == 0xFF { position += 1; continue } // fill byte
            // Standalone markers carry no length.
            if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) { position += 2; continue }
            if marker == 0xDA || marker == 0xD9 { break } // image data starts: no metadata after this
            let length = Int(bytes[position + 2]) << 8 | Int(bytes[position + 3])
            guard length >= 2, position + 2 + length <= count else { break }
            let start = position + 4, end = position + 2 + length
            if marker == 0xE1 && end - start >= 6 && bytes[start..<start + 6].elementsEqual(exifHeader) {
                exif.append(contentsOf: bytes[(exif.isEmpty ? start : start + 6)..<end])
            }
            position = end
        }
        if exif.isEmpty { return 1 }
        return exif.withUnsafeBytes { fromEXIF($0) } ?? 1
    }

    private static let exifHeader: [UInt8] = Array("Exif\0\0".utf8)

    /// The orientation tag (0x0112) of IFD0 in an Exif block, which may start with
    /// "Exif\0\0" (JPEG APP1, some PNG writers) or directly with the TIFF header.
    /// Nil when the block is malformed or has no orientation.
    static func fromEXIF(_ block: UnsafeRawBufferPointer) -> Int? {
        var tiff = block
        // PIL strips one or two "Exif\0\0" prefixes.
        for _ in 0..<2 where tiff.count >= 6 && tiff[0..<6].elementsEqual(exifHeader) {
            tiff = UnsafeRawBufferPointer(rebasing: tiff[6...])
        }
        guard tiff.count >= 8 else { return nil }
        let littleEndian: Bool
        switch (tiff[0], tiff[1]) {
        case (0x49, 0x49): littleEndian = true  // "II"
        case (0x4D, 0x4D): littleEndian = false // "MM"
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= tiff.count else { return nil }
            let a = Int(tiff[at]), b = Int(tiff[at + 1])
            return littleEndian ? a | b << 8 : a << 8 | b
        }
        func u32(_ at: Int) -> Int? {
            guard let lo = u16(littleEndian ? at : at + 2), let hi = u16(littleEndian ? at + 2 : at) else { return nil }
            return hi << 16 | lo
        }
        guard u16(2) == 42, let ifd = u32(4), let entries = u16(ifd) else { return nil }
        for i in 0..<entries {
            let entry = ifd + 2 + 12 * i
            // Like PIL, entries read before the block runs out count; a partial entry does not.
            guard entry + 12 <= tiff.count else { return nil }
            guard let tag = u16(entry), let type = u16(entry + 2), let count = u32(entry + 4) else { return nil }
            guard tag == 0x0112, count == 1 else { continue }
            switch type {
            case 3: return u16(entry + 8)  // SHORT, as the standard says
            case 4: return u32(entry + 8)  // LONG, written by some tools
            case 1: return Int(tiff[entry + 8]) // BYTE
            default: return nil
            }
        }
        return nil
    }

    /// The image as it should be displayed. Orientation n maps to PIL's transposes:
    /// 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270,
    /// 7 TRANSVERSE, 8 ROTATE_90; anything else leaves the image unchanged.
    static func apply(_ orientation: Int, to image: RGBImage) -> RGBImage {
        let w = image.width, h = image.height
        // Output pixel (x, y) reads source pixel index origin + x * stepX + y * stepY.
        let origin: Int, stepX: Int, stepY: Int
        switch orientation {
        case 2: (origin, stepX, stepY) = (w - 1, -1, w)
        case 3: (origin, stepX, stepY) = ((h - 1) * w + w - 1, -1, -w)
        case 4: (origin, stepX, stepY) = ((h - 1) * w, 1, -w)
        case 5: (origin, stepX, stepY) = (0, w, 1)                       // out(x, y) = in(y, x)
        case 6: (origin, stepX, stepY) = ((h - 1) * w, -w, 1)            // out(x, y) = in(y, h-1-x)
        case 7: (origin, stepX, stepY) = ((h - 1) * w + w - 1, -w, -1)   // out(x, y) = in(w-1-y, h-1-x)
        case 8: (origin, stepX, stepY) = (w - 1, w, -1)                  // out(x, y) = in(w-1-y, x)
        default: return image
        }
        let transposed = orientation >= 5
        let outWidth = transposed ? h : w, outHeight = transposed ? w : h
        let pixels = [UInt8](unsafeUninitializedCapacity: w * h * 3) { out, initialized in
            image.pixels.withUnsafeBufferPointer { src in
                for y in 0..<outHeight {
                    var s = origin + y * stepY
                    var d = y * outWidth * 3
                    for _ in 0..<outWidth {
                        out[d] = src[3 * s]
                        out[d + 1] = src[3 * s + 1]
                        out[d + 2] = src[3 * s + 2]
                        s += stepX
                        d += 3
                    }
                }
            }
            initialized = w * h * 3
        }
        return RGBImage(width: outWidth, height: outHeight, pixels: pixels)
    }
}
