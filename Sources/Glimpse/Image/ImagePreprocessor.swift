import Foundation

/// Hugging Face `ViTImageProcessor` (PIL backend, `ViTImageProcessorPil`): resize with PIL's
/// resampling, rescale, normalize, channels first. Also covers BLIP's processor (bicubic,
/// CLIP mean/std), which differs only in its numbers.
public struct ImagePreprocessor: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var resample: ResampleFilter
    /// Double, as in Python: transformers multiplies in float64 and then casts to float32.
    public var rescaleFactor: Double
    public var mean: [Float]
    public var std: [Float]
    public var doResize: Bool
    public var doRescale: Bool
    public var doNormalize: Bool
    /// transformers' `convert_to_rgb` before resizing: an image that still carries a transparent
    /// colour (see `ImageInfo.transparentColor`) is composited onto white. BLIP's default.
    public var doConvertRGB: Bool

    public init(width: Int = 224, height: Int = 224, resample: ResampleFilter = .bilinear,
                rescaleFactor: Double = 1.0 / 255.0, mean: [Float] = [0.5, 0.5, 0.5], std: [Float] = [0.5, 0.5, 0.5],
                doResize: Bool = true, doRescale: Bool = true, doNormalize: Bool = true, doConvertRGB: Bool = false) {
        precondition(mean.count == 3 && std.count == 3, "ImagePreprocessor: mean and std need 3 values")
        self.width = width
        self.height = height
        self.resample = resample
        self.rescaleFactor = rescaleFactor
        self.mean = mean
        self.std = std
        self.doResize = doResize
        self.doRescale = doRescale
        self.doNormalize = doNormalize
        self.doConvertRGB = doConvertRGB
    }

    /// Reads `preprocessor_config.json`; absent keys take ViTImageProcessor's defaults. Read through
    /// `JSONConfig`, so a value that does not fit (a size of 1e30, a resample of 3.5) names its key.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw PreprocessorConfigError(file: url.path, detail: "cannot read: \(error.localizedDescription)")
        }
        try self.init(data: data, file: url.path)
    }

    /// Reads the image processor of a `processor_config.json`, where transformers 5 saves a
    /// processor's parts (its `image_processor` object; no preprocessor_config.json is written then).
    public init(processorConfig url: URL) throws {
        let config: JSONConfig
        do { config = try JSONConfig(contentsOf: url) } catch ModelError.invalidConfig(let file, let detail) {
            throw PreprocessorConfigError(file: file, detail: detail)
        }
        guard let nested = config.values["image_processor"] as? [String: Any] else {
            throw PreprocessorConfigError(file: url.path, detail: "no 'image_processor' object")
        }
        // Back to JSON text, so the exact decimal reading below applies to it too.
        let data = try JSONSerialization.data(withJSONObject: nested)
        try self.init(data: data, file: "\(url.path) [image_processor]")
    }

    private init(data: Data, file: String) throws {
        do {
            try self.init(config: try JSONConfig(data: data, file: file))
        } catch ModelError.invalidConfig(let file, let detail) {
            // `file` is "PATH [size]" for a key inside the size object.
            throw PreprocessorConfigError(file: file, detail: detail)
        }
        // Foundation's JSONSerialization (under JSONConfig) can read a decimal one ulp away from the
        // nearest double (0.00392156862745098 as 0.0039215686274509795); Python, and JSONDecoder,
        // round correctly, and a one-ulp rescale factor can move a pixel value. The numbers are
        // valid by now; they are taken from JSONDecoder.
        if let exact = try? JSONDecoder().decode(ExactNumbers.self, from: data) {
            if let v = exact.rescaleFactor { rescaleFactor = v }
            if let v = exact.imageMean?.values, v.count == 3 { mean = v }
            if let v = exact.imageStd?.values, v.count == 3 { std = v }
        }
    }

    /// The floating-point keys, read by JSONDecoder for their exact values.
    private struct ExactNumbers: Decodable {
        struct Triple: Decodable {
            var values: [Float]
            init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let one = try? container.decode(Float.self) { values = [one, one, one] } else { values = try container.decode([Float].self) }
            }
        }
        var rescaleFactor: Double?
        var imageMean: Triple?
        var imageStd: Triple?
        enum CodingKeys: String, CodingKey {
            case rescaleFactor = "rescale_factor"
            case imageMean = "image_mean"
            case imageStd = "image_std"
        }
    }

    private init(config c: JSONConfig) throws {
        func fail(_ detail: String) -> ModelError { .invalidConfig(file: c.file, detail: detail) }
        var resample = ResampleFilter.bilinear
        if c.has("resample") {
            let raw = try c.int("resample", in: 0...5)
            guard let filter = ResampleFilter(rawValue: raw) else { throw fail("key 'resample' = \(raw) is not supported (1...5)") }
            resample = filter
        }
        // image_mean / image_std: a list of 3 numbers or one number for all channels.
        func triple(_ key: String) throws -> [Float] {
            guard let values = try c.doubles(key) else { return [0.5, 0.5, 0.5] }
            let three = values.count == 1 ? [values[0], values[0], values[0]] : values
            guard three.count == 3, three.allSatisfy(\.isFinite) else { throw fail("key '\(key)' needs 3 finite numbers") }
            return three.map(Float.init)
        }
        let mean = try triple("image_mean"), std = try triple("image_std")
        guard !std.contains(0) else { throw fail("key 'image_std' has a zero") }
        // size: {"height", "width"} or {"shortest_edge"}, or an int (older ViTFeatureExtractor configs).
        // The same bound as an encoder's image_size: anything else could never match a model.
        let sides = 1...8192
        var height = 224, width = 224
        if c.values["size"] is NSNumber {
            height = try c.int("size", in: sides)
            width = height
        } else if let size = try c.object("size") {
            let edge = size.has("shortest_edge") ? try size.int("shortest_edge", in: sides) : nil
            guard let h = size.has("height") ? try size.int("height", in: sides) : edge,
                  let w = size.has("width") ? try size.int("width", in: sides) : edge else {
                throw fail("key 'size' needs height and width")
            }
            (height, width) = (h, w)
        }
        let rescaleFactor = try c.double("rescale_factor", default: 1.0 / 255.0)
        guard rescaleFactor.isFinite else { throw fail("key 'rescale_factor' is not finite") }
        self.init(width: width, height: height, resample: resample, rescaleFactor: rescaleFactor, mean: mean, std: std,
                  doResize: try c.bool("do_resize", default: true), doRescale: try c.bool("do_rescale", default: true),
                  doNormalize: try c.bool("do_normalize", default: true),
                  // BlipImageProcessor defaults do_convert_rgb to True, ViTImageProcessor to None (off).
                  doConvertRGB: try c.bool("do_convert_rgb", default: (try c.string("image_processor_type"))?.hasPrefix("Blip") == true))
    }

    /// The model input of `file` for an encoder that takes `side`×`side` images. With do_resize false
    /// images pass through at their own size, so any other size is this file's error (it would reach
    /// the encoder's size precondition and abort the whole run).
    public func pixelValues(_ decoded: DecodedImage, file: String, encoderSide side: Int) throws -> [Float] {
        if !doResize && (decoded.image.width != side || decoded.image.height != side) {
            throw ModelError.invalidInput("\(file): image is \(decoded.image.width)x\(decoded.image.height) but the model's "
                + "preprocessor_config.json has do_resize false and the encoder takes \(side)x\(side)")
        }
        return pixelValues(decoded)
    }

    /// The model input for a decoded file: `convert_to_rgb` first when `doConvertRGB`, then as below.
    public func pixelValues(_ decoded: DecodedImage) -> [Float] {
        guard doConvertRGB, let color = decoded.info.transparentColor, color.count == 3 else { return pixelValues(decoded.image) }
        // PIL: convert("RGBA") makes exactly the pixels of that colour transparent (alpha 0, the rest
        // 255); alpha_composite over opaque white then gives white there and the pixel elsewhere.
        var image = decoded.image
        image.pixels.withUnsafeMutableBufferPointer { p in
            for i in stride(from: 0, to: p.count, by: 3)
            where Int(p[i]) == color[0] && Int(p[i + 1]) == color[1] && Int(p[i + 2]) == color[2] {
                p[i] = 255; p[i + 1] = 255; p[i + 2] = 255
            }
        }
        return pixelValues(image)
    }

    /// The model input for `image`: Float32, channels first, `[3 * height * width]`
    /// (`[3 * image.height * image.width]` when `doResize` is false).
    public func pixelValues(_ image: RGBImage) -> [Float] {
        let input = doResize ? resized(image, width: width, height: height, filter: resample) : image
        // Every output is a function of (channel, byte): a 3 x 256 table does the arithmetic
        // once, in transformers' order: float64 rescale cast to float32, then (x - mean) / std in float32.
        var table = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            for v in 0..<256 {
                var x = doRescale ? Float(Double(v) * rescaleFactor) : Float(v)
                if doNormalize { x = (x - mean[c]) / std[c] }
                table[c * 256 + v] = x
            }
        }
        let plane = input.width * input.height
        return [Float](unsafeUninitializedCapacity: 3 * plane) { out, initialized in
            input.pixels.withUnsafeBufferPointer { src in
                table.withUnsafeBufferPointer { table in
                    for i in 0..<plane {
                        out[i] = table[Int(src[3 * i])]
                        out[plane + i] = table[256 + Int(src[3 * i + 1])]
                        out[2 * plane + i] = table[512 + Int(src[3 * i + 2])]
                    }
                }
            }
            initialized = 3 * plane
        }
    }
}

/// A `preprocessor_config.json` that cannot be used.
public struct PreprocessorConfigError: Error, CustomStringConvertible, LocalizedError {
    public var file: String
    public var detail: String
    public var description: String { "\(file): \(detail)" }
    public var errorDescription: String? { description }
}
