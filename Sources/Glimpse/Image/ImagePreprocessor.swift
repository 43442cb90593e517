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

    public init(width: Int = 224, height: Int = 224, resample: ResampleFilter = .bilinear,
                rescaleFactor: Double = 1.0 / 255.0, mean: [Float] = [0.5, 0.5, 0.5], std: [Float] = [0.5, 0.5, 0.5],
                doResize: Bool = true, doRescale: Bool = true, doNormalize: Bool = true) {
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
    }

    /// Reads `preprocessor_config.json`; absent keys take ViTImageProcessor's defaults.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw PreprocessorConfigError(file: url.path, detail: "cannot read: \(error.localizedDescription)")
        }
        let config: Config
        do {
            config = try JSONDecoder().decode(Config.self, from: data)
        } catch {
            throw PreprocessorConfigError(file: url.path, detail: "malformed JSON: \(error)")
        }
        let resample: ResampleFilter
        if let raw = config.resample {
            guard let filter = ResampleFilter(rawValue: raw) else {
                throw PreprocessorConfigError(file: url.path, detail: "resample \(raw) is not supported (1...5)")
            }
            resample = filter
        } else {
            resample = .bilinear
        }
        let mean = config.imageMean?.values ?? [0.5, 0.5, 0.5]
        let std = config.imageStd?.values ?? [0.5, 0.5, 0.5]
        guard mean.count == 3, std.count == 3, !std.contains(0) else {
            throw PreprocessorConfigError(file: url.path, detail: "image_mean/image_std need 3 values, std nonzero")
        }
        let size = config.size ?? .init(height: 224, width: 224, shortestEdge: nil)
        guard let height = size.height ?? size.shortestEdge, let width = size.width ?? size.shortestEdge,
              height > 0, width > 0 else {
            throw PreprocessorConfigError(file: url.path, detail: "size needs height and width")
        }
        self.init(width: width, height: height, resample: resample, rescaleFactor: config.rescaleFactor ?? 1.0 / 255.0,
                  mean: mean, std: std, doResize: config.doResize ?? true, doRescale: config.doRescale ?? true,
                  doNormalize: config.doNormalize ?? true)
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

    /// The keys of preprocessor_config.json we use.
    private struct Config: Decodable {
        struct Size: Decodable {
            var height: Int?
            var width: Int?
            var shortestEdge: Int?
            enum CodingKeys: String, CodingKey {
                case height, width
                case shortestEdge = "shortest_edge"
            }
            init(height: Int?, width: Int?, shortestEdge: Int?) {
                self.height = height
                self.width = width
                self.shortestEdge = shortestEdge
            }
            /// Older checkpoints (e.g. nlpconnect/vit-gpt2-image-captioning's ViTFeatureExtractor) write `"size": 224`.
            init(from decoder: Decoder) throws {
                if let side = try? decoder.singleValueContainer().decode(Int.self) {
                    self.init(height: side, width: side, shortestEdge: nil)
                    return
                }
                let c = try decoder.container(keyedBy: CodingKeys.self)
                self.init(height: try c.decodeIfPresent(Int.self, forKey: .height),
                          width: try c.decodeIfPresent(Int.self, forKey: .width),
                          shortestEdge: try c.decodeIfPresent(Int.self, forKey: .shortestEdge))
            }
        }
        /// image_mean may be a list or a single number.
        struct Triple: Decodable {
            var values: [Float]
            init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let one = try? container.decode(Float.self) {
                    values = [one, one, one]
                } else {
                    values = try container.decode([Float].self)
                }
            }
        }
        var size: Size?
        var resample: Int?
        var rescaleFactor: Double?
        var imageMean: Triple?
        var imageStd: Triple?
        var doResize: Bool?
        var doRescale: Bool?
        var doNormalize: Bool?
        enum CodingKeys: String, CodingKey {
            case size, resample
            case rescaleFactor = "rescale_factor"
            case imageMean = "image_mean"
            case imageStd = "image_std"
            case doResize = "do_resize"
            case doRescale = "do_rescale"
            case doNormalize = "do_normalize"
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
