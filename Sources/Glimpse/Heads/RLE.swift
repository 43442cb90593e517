import Foundation

/// A binary mask of width×height pixels, row-major (y, x), one byte per pixel (0 or 1).
public struct BitMask: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var bits: [UInt8]

    public init(width: Int, height: Int) {
        self.width = max(width, 0)
        self.height = max(height, 0)
        bits = [UInt8](repeating: 0, count: self.width * self.height)
    }

    public init(width: Int, height: Int, bits: [UInt8]) throws {
        guard width >= 0, height >= 0, bits.count == width * height else {
            throw HeadsError.invalidMask("\(bits.count) values for \(width)×\(height)")
        }
        self.width = width
        self.height = height
        self.bits = bits.map { $0 != 0 ? 1 : 0 }
    }

    @inline(__always) public subscript(x: Int, y: Int) -> Bool {
        get { bits[y * width + x] != 0 }
        set { bits[y * width + x] = newValue ? 1 : 0 }
    }

    public var area: Int { bits.reduce(0) { $0 + Int($1) } }

    /// Tight bounding box [x, y, w, h] of the set pixels; nil when empty.
    public var boundingBox: PixelBox? {
        var x0 = width, y0 = height, x1 = -1, y1 = -1
        bits.withUnsafeBufferPointer { b in
            for y in 0..<height {
                let row = y * width
                for x in 0..<width where b[row + x] != 0 {
                    if x < x0 { x0 = x }
                    if x > x1 { x1 = x }
                    if y < y0 { y0 = y }
                    y1 = y
                }
            }
        }
        return x1 < 0 ? nil : PixelBox(x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1)
    }
}

/// A box [x, y, width, height] in original-image pixels (COCO style).
public struct PixelBox: Sendable, Equatable, Codable {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var array: [Int] { [x, y, width, height] }

    public init(from decoder: Decoder) throws {
        var c = try decoder.unkeyedContainer()
        // COCO files may hold fractional boxes; they are read rounded to pixels.
        var v: [Int] = []
        while !c.isAtEnd { v.append(Int((try c.decode(Double.self)).rounded())) }
        guard v.count == 4 else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "a box is [x, y, w, h], got \(v.count) values")
        }
        self.init(x: v[0], y: v[1], width: v[2], height: v[3])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(contentsOf: array)
    }
}

/// COCO run-length encoding, exactly as pycocotools writes it (maskApi.c): the mask is read in
/// column-major (Fortran) order, counts alternate runs of 0s and 1s starting with 0s (a mask
/// whose first pixel is set starts with a count of 0), and `size` is [height, width].
public struct RLE: Sendable, Equatable, Codable {
    public var height: Int
    public var width: Int
    public var counts: [Int]

    public init(height: Int, width: Int, counts: [Int]) throws {
        guard height >= 0, width >= 0, counts.allSatisfy({ $0 >= 0 }), counts.reduce(0, +) == height * width else {
            throw HeadsError.invalidMask("RLE counts sum to \(counts.reduce(0, +)) for \(height)×\(width)")
        }
        self.height = height
        self.width = width
        self.counts = counts
    }

    /// Encodes a mask (pycocotools `mask.encode` of the same mask as a Fortran-ordered array).
    public init(mask: BitMask) {
        height = mask.height
        width = mask.width
        var counts: [Int] = []
        var current: UInt8 = 0, run = 0
        mask.bits.withUnsafeBufferPointer { b in
            for x in 0..<mask.width {
                for y in 0..<mask.height {
                    let v = b[y * mask.width + x]
                    if v != current { counts.append(run); run = 0; current = v }
                    run += 1
                }
            }
        }
        counts.append(run)
        self.counts = counts
    }

    /// The mask these counts describe.
    public func decode() -> BitMask {
        var mask = BitMask(width: width, height: height)
        var pos = 0, value: UInt8 = 0
        mask.bits.withUnsafeMutableBufferPointer { b in
            for run in counts {
                if value != 0 {
                    for k in pos..<(pos + run) {
                        let x = k / height, y = k % height   // column-major position k
                        b[y * width + x] = 1
                    }
                }
                pos += run
                value ^= 1
            }
        }
        return mask
    }

    public var area: Int { stride(from: 1, to: counts.count, by: 2).reduce(0) { $0 + counts[$1] } }

    /// pycocotools' compressed string (maskApi.c `rleToString`): each count, minus the count two
    /// back (from the third on), as a signed LEB128-like sequence of 5-bit groups, each char 48 + group,
    /// bit 0x20 = more groups follow, bit 0x10 of the last group = sign.
    public var compressedString: String {
        var chars: [UInt8] = []
        chars.reserveCapacity(counts.count * 2)
        for i in counts.indices {
            var x = Int64(counts[i])
            if i > 2 { x -= Int64(counts[i - 2]) }
            var more = true
            while more {
                var c = UInt8(truncatingIfNeeded: x & 0x1f)
                x >>= 5   // arithmetic shift, as C's on a signed long
                more = (c & 0x10) != 0 ? x != -1 : x != 0
                if more { c |= 0x20 }
                chars.append(c + 48)
            }
        }
        return String(decoding: chars, as: UTF8.self)
    }

    /// Parses pycocotools' compressed string (maskApi.c `rleFrString`).
    public init(height: Int, width: Int, compressed: String) throws {
        var counts: [Int] = []
        var bytes = Array(compressed.utf8)[...]
        while !bytes.isEmpty {
            var x: Int64 = 0, k: Int64 = 0, more = true
            while more {
                guard let byte = bytes.popFirst(), byte >= 48, byte < 48 + 64, k < 12 else {
                    throw HeadsError.invalidMask("malformed RLE string near count \(counts.count)")
                }
                let c = Int64(byte - 48)
                x |= (c & 0x1f) << (5 * k)
                more = (c & 0x20) != 0
                k += 1
                if !more && (c & 0x10) != 0 { x |= -1 << (5 * k) }
            }
            if counts.count > 2 { x += Int64(counts[counts.count - 2]) }
            guard x >= 0, x <= Int64(Int32.max) else { throw HeadsError.invalidMask("negative or huge run in RLE string") }
            counts.append(Int(x))
        }
        try self.init(height: height, width: width, counts: counts)
    }

    // JSON: {"size": [h, w], "counts": "compressed"} (or an uncompressed counts list, also accepted).
    enum CodingKeys: String, CodingKey { case size, counts }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let size = try c.decode([Int].self, forKey: .size)
        guard size.count == 2 else {
            throw DecodingError.dataCorruptedError(forKey: .size, in: c, debugDescription: "size is [height, width]")
        }
        do {
            if let s = try? c.decode(String.self, forKey: .counts) {
                try self.init(height: size[0], width: size[1], compressed: s)
            } else {
                try self.init(height: size[0], width: size[1], counts: try c.decode([Int].self, forKey: .counts))
            }
        } catch let e as HeadsError {
            throw DecodingError.dataCorruptedError(forKey: .counts, in: c, debugDescription: e.description)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode([height, width], forKey: .size)
        try c.encode(compressedString, forKey: .counts)
    }
}

/// One grounded word, as the output contract writes it:
/// `{"label", "word", "token_index", "box": [x, y, w, h], "score", "mask": {"size", "counts"}}`.
public struct Detection: Sendable, Equatable, Codable {
    /// Attribute words of the phrase + the word ("red circle"), or the word alone.
    public var label: String
    public var word: String
    /// Position of the word's first token in the full generated sequence (decoder start token included).
    public var tokenIndex: Int
    public var box: PixelBox
    public var score: Double
    public var mask: RLE?
    /// Florence-2 segmentation tasks: each polygon as [x0, y0, x1, y1, ...] in image pixels.
    public var polygons: [[Double]]?
    /// Florence-2 OCR regions: the four corners [x0, y0, ..., x3, y3]; the text is the label.
    public var quad: [Double]?

    public init(label: String, word: String, tokenIndex: Int, box: PixelBox, score: Double, mask: RLE?,
                polygons: [[Double]]? = nil, quad: [Double]? = nil) {
        self.label = label
        self.word = word
        self.tokenIndex = tokenIndex
        self.box = box
        self.score = score
        self.mask = mask
        self.polygons = polygons
        self.quad = quad
    }

    enum CodingKeys: String, CodingKey {
        case label, word, tokenIndex = "token_index", box, score, mask, polygons, quad
    }
}
