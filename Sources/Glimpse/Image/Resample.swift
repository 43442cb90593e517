import Foundation

/// Resampling filters with PIL's `Image.Resampling` raw values (as stored in
/// `preprocessor_config.json`'s "resample"). PIL's NEAREST (0) takes another code path and is not offered.
public enum ResampleFilter: Int, Sendable, Codable, CaseIterable {
    case lanczos = 1
    case bilinear = 2
    case bicubic = 3
    case box = 4
    case hamming = 5

    /// Half-width of the kernel at scale 1 (Resample.c's `support`).
    var support: Double {
        switch self {
        case .box: return 0.5
        case .bilinear, .hamming: return 1
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    /// The kernel, transcribed from Pillow's src/libImaging/Resample.c.
    func weight(_ x: Double) -> Double {
        switch self {
        case .box:
            return x > -0.5 && x <= 0.5 ? 1 : 0
        case .bilinear:
            let x = abs(x)
            return x < 1 ? 1 - x : 0
        case .hamming:
            let x = abs(x)
            if x == 0 { return 1 }
            if x >= 1 { return 0 }
            let px = x * Double.pi
            // Pillow writes the constants as C floats (0.54f, 0.46f).
            return sin(px) / px * (Double(Float(0.54)) + Double(Float(0.46)) * cos(px))
        case .bicubic:
            let a = -0.5
            let x = abs(x)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        case .lanczos:
            guard -3 <= x && x < 3 else { return 0 }
            return Self.sinc(x) * Self.sinc(x / 3)
        }
    }

    private static func sinc(_ x: Double) -> Double {
        if x == 0 { return 1 }
        let px = x * Double.pi
        return sin(px) / px
    }
}

/// Resizes like PIL's `Image.resize((width, height), resample=filter)` on an RGB image,
/// to the bit: see `Resampler`.
public func resized(_ image: RGBImage, width: Int, height: Int, filter: ResampleFilter = .bilinear) -> RGBImage {
    image.resized(width: width, height: height, filter: filter)
}

extension RGBImage {
    /// This image resized as PIL's `Image.resize` would; see `Resampler`.
    public func resized(width: Int, height: Int, filter: ResampleFilter = .bilinear) -> RGBImage {
        let image = self
        let pixels = Resampler.resample(image.pixels, width: image.width, height: image.height, channels: 3,
                                    toWidth: width, toHeight: height, filter: filter)
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}

/// Pillow's separable convolution resampler (src/libImaging/Resample.c), reproduced exactly:
/// - per output index, a kernel over input indices, widened by the scale when downscaling
///   (antialiasing), computed in double and normalized to sum 1;
/// - for 8-bit data the weights are converted to fixed point with 22 fractional bits, sums
///   start at one half, and each pass rounds back to uint8 (clipped);
/// - the horizontal pass runs first, over only the rows the vertical pass will read, unless
///   `verticalFirst` says Pillow runs the vertical one first; a pass whose size does not change
///   is skipped. (The order changes the uint8 rounding between passes, so it must match.)
public enum Resampler {
    /// 32 - 8 - 2: room for 8-bit samples, negative lobes and overshoot in an Int32.
    static let precisionBits = 22

    /// Kernel of one pass: for output index i, input indices `start[i] ..< start[i] + count[i]`
    /// weighted by `weights[i * taps ..< i * taps + count[i]]`.
    struct Kernel {
        var start: [Int]
        var count: [Int]
        var taps: Int
        var weights: [Double]

        init(inSize: Int, outSize: Int, filter: ResampleFilter) {
            let scale = Double(inSize) / Double(outSize)
            let filterScale = max(scale, 1)
            let support = filter.support * filterScale
            taps = Int(support.rounded(.up)) * 2 + 1
            start = [Int](repeating: 0, count: outSize)
            count = [Int](repeating: 0, count: outSize)
            weights = [Double](repeating: 0, count: outSize * taps)
            let inverse = 1 / filterScale
            for i in 0..<outSize {
                let center = (Double(i) + 0.5) * scale
                // (int) casts in C truncate toward zero; so does Int(_: Double).
                let lo = max(Int(center - support + 0.5), 0)
                let hi = min(Int(center + support + 0.5), inSize)
                let n = hi - lo
                var total = 0.0
                for k in 0..<n {
                    let w = filter.weight((Double(k + lo) - center + 0.5) * inverse)
                    weights[i * taps + k] = w
                    total += w
                }
                if total != 0 {
                    for k in 0..<n { weights[i * taps + k] /= total }
                }
                start[i] = lo
                count[i] = n
            }
        }

        /// The weights in fixed point, rounded half away from zero as normalize_coeffs_8bpc does.
        var fixedPoint: [Int32] {
            let one = Double(1 << Resampler.precisionBits)
            return weights.map { $0 < 0 ? Int32(-0.5 + $0 * one) : Int32(0.5 + $0 * one) }
        }
    }

    /// Resizes 8-bit interleaved pixels (`channels` per pixel, rows packed).
    public static func resample(_ pixels: [UInt8], width: Int, height: Int, channels: Int,
                                toWidth: Int, toHeight: Int, filter: ResampleFilter) -> [UInt8] {
        precondition(pixels.count == width * height * channels, "resample: pixel count does not match size")
        precondition(width > 0 && height > 0 && toWidth > 0 && toHeight > 0, "resample: empty image")
        if width == toWidth && height == toHeight { return pixels } // PIL returns a copy

        let vertical = Kernel(inSize: height, outSize: toHeight, filter: filter)
        if toWidth != width && toHeight != height && verticalFirst(width: width, height: height, toWidth: toWidth, toHeight: toHeight) {
            let rows = verticalPass(pixels, width: width, height: height, channels: channels, rowOffset: 0,
                                    kernel: vertical, outHeight: toHeight)
            return horizontalPass(rows, width: width, channels: channels, rows: 0..<toHeight,
                                  kernel: Kernel(inSize: width, outSize: toWidth, filter: filter), outWidth: toWidth)
        }
        var source = pixels
        var sourceHeight = height
        var rowOffset = 0
        if toWidth != width {
            // Only rows firstRow ..< lastRow feed the vertical pass.
            let firstRow = vertical.start[0]
            let lastRow = vertical.start[toHeight - 1] + vertical.count[toHeight - 1]
            source = horizontalPass(pixels, width: width, channels: channels, rows: firstRow..<lastRow,
                                    kernel: Kernel(inSize: width, outSize: toWidth, filter: filter),
                                    outWidth: toWidth)
            sourceHeight = lastRow - firstRow
            rowOffset = firstRow
        }
        if toHeight == height { return source }
        return verticalPass(source, width: toWidth, height: sourceHeight, channels: channels,
                            rowOffset: rowOffset, kernel: vertical, outHeight: toHeight)
    }

    /// Pillow 13's pass order (ImagingResampleInner since python-pillow/Pillow#9549, "if height is scaled
    /// down significantly more than width, resize vertically first"): vertical first when the height
    /// shrinks by more than twice as many pixels as the width does. Read from Pillow 13.0.0's binary and
    /// checked against its resize on 691 random size pairs (tools/make_image_fixtures.py keeps cases).
    static func verticalFirst(width: Int, height: Int, toWidth: Int, toHeight: Int) -> Bool {
        toHeight < height && height - toHeight > 2 * (width - toWidth)
    }

    /// Rounds a fixed-point sum back to a sample (Pillow's clip8).
    @inline(__always)
    private static func clip8(_ sum: Int32) -> UInt8 {
        let value = sum >> Int32(precisionBits)
        return value < 0 ? 0 : value > 255 ? 255 : UInt8(truncatingIfNeeded: value)
    }

    private static func horizontalPass(_ input: [UInt8], width: Int, channels: Int, rows: Range<Int>,
                                       kernel: Kernel, outWidth: Int) -> [UInt8] {
        let weights = kernel.fixedPoint
        let half = Int32(1 << (precisionBits - 1))
        let taps = kernel.taps
        return [UInt8](unsafeUninitializedCapacity: rows.count * outWidth * channels) { out, initialized in
            input.withUnsafeBufferPointer { src in
            weights.withUnsafeBufferPointer { w in
            kernel.start.withUnsafeBufferPointer { start in
            kernel.count.withUnsafeBufferPointer { count in
                // Rows are independent: large images are split across cores (a 12 MP photo to
                // 224 x 224 is ~75 M multiply-adds here, the bulk of preprocessing).
                let work = rows.count * outWidth * taps * channels
                let parts = work > 4_000_000 ? min(ProcessInfo.processInfo.activeProcessorCount, rows.count) : 1
                Parallel.forEach(iterations: parts) { part in
                    let lo = rows.count * part / parts, hi = rows.count * (part + 1) / parts
                    for outRow in lo..<hi {
                        let rowIn = (rows.lowerBound + outRow) * width * channels
                        let rowOut = outRow * outWidth * channels
                        for x in 0..<outWidth {
                            let first = rowIn + start[x] * channels
                            let n = count[x]
                            let k = x * taps
                            if channels == 3 {
                                // Overflow is impossible: |weights| sum to < 2^23 and samples are < 2^8.
                                var s0 = half, s1 = half, s2 = half
                                for t in 0..<n {
                                    let weight = w[k + t]
                                    let p = first + 3 * t
                                    s0 = s0 &+ Int32(src[p]) &* weight
                                    s1 = s1 &+ Int32(src[p + 1]) &* weight
                                    s2 = s2 &+ Int32(src[p + 2]) &* weight
                                }
                                out[rowOut + 3 * x] = clip8(s0)
                                out[rowOut + 3 * x + 1] = clip8(s1)
                                out[rowOut + 3 * x + 2] = clip8(s2)
                            } else {
                                for c in 0..<channels {
                                    var s = half
                                    for t in 0..<n {
                                        s = s &+ Int32(src[first + channels * t + c]) &* w[k + t]
                                    }
                                    out[rowOut + channels * x + c] = clip8(s)
                                }
                            }
                        }
                    }
                }
            }
            }
            }
            }
            initialized = rows.count * outWidth * channels
        }
    }

    private static func verticalPass(_ input: [UInt8], width: Int, height: Int, channels: Int, rowOffset: Int,
                                     kernel: Kernel, outHeight: Int) -> [UInt8] {
        let weights = kernel.fixedPoint
        let half = Int32(1 << (precisionBits - 1))
        let taps = kernel.taps
        let stride = width * channels
        return [UInt8](unsafeUninitializedCapacity: outHeight * stride) { out, initialized in
            input.withUnsafeBufferPointer { src in
                weights.withUnsafeBufferPointer { w in
                    // Accumulate a whole output row at once so the inner loop walks memory in order.
                    var sums = [Int32](repeating: 0, count: stride)
                    sums.withUnsafeMutableBufferPointer { sums in
                        for y in 0..<outHeight {
                            for i in 0..<stride { sums[i] = half }
                            let first = kernel.start[y] - rowOffset
                            for t in 0..<kernel.count[y] {
                                let weight = w[y * taps + t]
                                let row = (first + t) * stride
                                for i in 0..<stride {
                                    sums[i] = sums[i] &+ Int32(src[row + i]) &* weight
                                }
                            }
                            let rowOut = y * stride
                            for i in 0..<stride { out[rowOut + i] = clip8(sums[i]) }
                        }
                    }
                }
            }
            initialized = outHeight * stride
        }
    }

    /// Resizes a single-channel Float32 map (attention maps, masks) as PIL does for mode "F":
    /// the same kernels, accumulated in double, no rounding between passes.
    public static func resample(_ values: [Float], width: Int, height: Int, toWidth: Int, toHeight: Int,
                                filter: ResampleFilter) -> [Float] {
        precondition(values.count == width * height, "resample: value count does not match size")
        precondition(width > 0 && height > 0 && toWidth > 0 && toHeight > 0, "resample: empty map")
        if toWidth != width && toHeight != height && verticalFirst(width: width, height: height, toWidth: toWidth, toHeight: toHeight) {
            // The same order as Pillow's (see verticalFirst); transposing makes it the horizontal-first
            // case of the transposed map, whose passes are then the same sums in the same order.
            var transposed = [Float](repeating: 0, count: values.count)
            for y in 0..<height { for x in 0..<width { transposed[x * height + y] = values[y * width + x] } }
            let out = resampleHorizontalFirst(transposed, width: height, height: width, toWidth: toHeight, toHeight: toWidth, filter: filter)
            var back = [Float](repeating: 0, count: out.count)
            for y in 0..<toWidth { for x in 0..<toHeight { back[x * toWidth + y] = out[y * toHeight + x] } }
            return back
        }
        return resampleHorizontalFirst(values, width: width, height: height, toWidth: toWidth, toHeight: toHeight, filter: filter)
    }

    private static func resampleHorizontalFirst(_ values: [Float], width: Int, height: Int, toWidth: Int, toHeight: Int,
                                                filter: ResampleFilter) -> [Float] {
        var current = values
        var currentWidth = width
        if toWidth != width {
            let kernel = Kernel(inSize: width, outSize: toWidth, filter: filter)
            var out = [Float](repeating: 0, count: toWidth * height)
            for y in 0..<height {
                for x in 0..<toWidth {
                    var sum = 0.0
                    for t in 0..<kernel.count[x] {
                        sum += Double(current[y * width + kernel.start[x] + t]) * kernel.weights[x * kernel.taps + t]
                    }
                    out[y * toWidth + x] = Float(sum)
                }
            }
            current = out
            currentWidth = toWidth
        }
        if toHeight == height { return current }
        let kernel = Kernel(inSize: height, outSize: toHeight, filter: filter)
        var out = [Float](repeating: 0, count: currentWidth * toHeight)
        for y in 0..<toHeight {
            for x in 0..<currentWidth {
                var sum = 0.0
                for t in 0..<kernel.count[y] {
                    sum += Double(current[(kernel.start[y] + t) * currentWidth + x]) * kernel.weights[y * kernel.taps + t]
                }
                out[y * currentWidth + x] = Float(sum)
            }
        }
        return out
    }
}
