import Foundation

/// `heads.json`, next to `heads.safetensors` in a model directory:
/// ```json
/// {"format": "glimpse-heads", "version": 1, "grid": [G, G], "encoder_hidden_size": H,
///  "attention_layer": L, "hidden_size": 256, "mask_size": 16,
///  "object_words": ["circle", ...], "attribute_words": ["red", ...]}
/// ```
/// Version 2 adds the pixel refinement: `"refine_hidden_size": R, "pixel_hidden_size": P`.
/// Other keys (descriptions) are ignored. `attention_layer` is a decoder layer index (negative counts
/// from the end, as in Python).
public struct HeadsConfig: Sendable, Equatable, Codable {
    public var format: String
    public var version: Int
    public var grid: [Int]
    public var encoderHiddenSize: Int
    public var attentionLayer: Int
    public var hiddenSize: Int
    public var maskSize: Int
    public var objectWords: [String]?
    public var attributeWords: [String]?
    /// Version 2: hidden size of the controller that writes each object's per-pixel MLP.
    public var refineHiddenSize: Int?
    /// Version 2: hidden size of the per-pixel MLP.
    public var pixelHiddenSize: Int?

    enum CodingKeys: String, CodingKey {
        case format, version, grid
        case encoderHiddenSize = "encoder_hidden_size"
        case attentionLayer = "attention_layer"
        case hiddenSize = "hidden_size"
        case maskSize = "mask_size"
        case objectWords = "object_words"
        case attributeWords = "attribute_words"
        case refineHiddenSize = "refine_hidden_size"
        case pixelHiddenSize = "pixel_hidden_size"
    }

    public init(grid: Int, encoderHiddenSize: Int, attentionLayer: Int, hiddenSize: Int, maskSize: Int,
                objectWords: [String]? = nil, attributeWords: [String]? = nil,
                refineHiddenSize: Int? = nil, pixelHiddenSize: Int? = nil) {
        format = "glimpse-heads"
        version = refineHiddenSize == nil ? 1 : 2
        self.grid = [grid, grid]
        self.encoderHiddenSize = encoderHiddenSize
        self.attentionLayer = attentionLayer
        self.hiddenSize = hiddenSize
        self.maskSize = maskSize
        self.objectWords = objectWords
        self.attributeWords = attributeWords
        self.refineHiddenSize = refineHiddenSize
        self.pixelHiddenSize = pixelHiddenSize
    }

    /// Reads and validates `url` against the model the heads will run on.
    public static func load(_ url: URL, layout: AttentionLayout, encoderHiddenSize: Int) throws -> HeadsConfig {
        let file = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw HeadsError.invalidHeads(file: file, key: "", detail: "cannot read: \(error.localizedDescription)")
        }
        let config: HeadsConfig
        do { config = try JSONDecoder().decode(HeadsConfig.self, from: data) } catch let error as DecodingError {
            let (key, detail) = error.keyAndDetail
            // Foundation reports a number that does not fit (1e30 for an Int) as invalid JSON, with no key.
            if key.isEmpty, (try? JSONSerialization.jsonObject(with: data)) is [String: Any] {
                throw HeadsError.invalidHeads(file: file, key: "", detail: "a value does not fit its key's type or range (integers must be whole numbers within Int)")
            }
            throw HeadsError.invalidHeads(file: file, key: key, detail: detail)
        } catch {
            throw HeadsError.invalidHeads(file: file, key: "", detail: "not valid JSON: \(error.localizedDescription)")
        }
        try config.validate(file: file, layout: layout, encoderHiddenSize: encoderHiddenSize)
        return config
    }

    /// Checks every field against the model; errors name the file and key.
    public func validate(file: String, layout: AttentionLayout, encoderHiddenSize: Int) throws {
        func fail(_ key: String, _ detail: String) -> HeadsError { .invalidHeads(file: file, key: key, detail: detail) }
        guard format == "glimpse-heads" else { throw fail("format", "is '\(format)', expected 'glimpse-heads'") }
        guard version == 1 || version == 2 else {
            throw fail("version", "\(version) is not supported (this engine reads versions 1 and 2)")
        }
        if version == 2 {
            guard let r = refineHiddenSize, (1...65536).contains(r) else {
                throw fail("refine_hidden_size", "version 2 needs a size in 1...65536")
            }
            guard let p = pixelHiddenSize, (1...64).contains(p) else {
                throw fail("pixel_hidden_size", "version 2 needs a size in 1...64")
            }
        }
        guard grid.count == 2, grid[0] == grid[1], grid[0] == layout.grid else {
            throw fail("grid", "\(grid) does not match the encoder's patch grid [\(layout.grid), \(layout.grid)]")
        }
        guard encoderHiddenSize == self.encoderHiddenSize else {
            throw fail("encoder_hidden_size", "\(self.encoderHiddenSize) differs from the encoder's hidden size \(encoderHiddenSize)")
        }
        guard (-layout.layers..<layout.layers).contains(attentionLayer) else {
            throw fail("attention_layer", "\(attentionLayer) is outside the decoder's \(layout.layers) layers")
        }
        guard (1...65536).contains(hiddenSize) else { throw fail("hidden_size", "\(hiddenSize) is not a positive size") }
        guard (1...1024).contains(maskSize) else { throw fail("mask_size", "\(maskSize) is not in 1...1024") }
        if let words = objectWords, words.isEmpty || words.contains(where: { $0.isEmpty }) {
            throw fail("object_words", "must be a non-empty list of non-empty words")
        }
    }

    /// Input length of both heads' first layer: G·G map values + H encoder features.
    public var inputSize: Int { grid[0] * grid[0] + encoderHiddenSize }

    /// The pixel refinement's sizes, nil for version 1 (validated: both set for version 2).
    var refinement: PixelRefinement? {
        guard version == 2, let r = refineHiddenSize, let p = pixelHiddenSize else { return nil }
        return PixelRefinement(controllerHiddenSize: r, hiddenSize: p)
    }
}

/// Learned detection and segmentation heads over a word's attention map and attention-pooled
/// encoder features (trained by tools/train_heads.py with exactly this math):
///
///     A_w = mean over heads of decoder layer `attention_layer`, patches only, renormalized   [G·G]
///     f_w = Σ_p A_w[p] · E[first patch row + p]      (E: encoder last hidden state)             [H]
///     x   = concat(G·G · A_w, f_w)
///     det = det.fc2(relu(det.fc1(x)))  →  box = sigmoid(det[0..<4]) = (cx, cy, w, h) fractions, score = sigmoid(det[4])
///     seg = seg.fc2(relu(seg.fc1(x)))  →  M×M logits over the detection box, bilinear to the box's size, > 0
///
/// Version 2 refines each mask from the image's own pixels (`PixelRefinement`): θ = refine.fc2(relu(refine.fc1(x)))
/// are the weights of a per-pixel MLP, and the box becomes the refined mask's bounding box.
public final class LearnedHeads: @unchecked Sendable {
    public let config: HeadsConfig
    /// heads.safetensors, named in the error when the heads compute NaN.
    public let file: String
    let detFC1Weight: Tensor   // det.fc1.weight [hidden, G·G + H]
    let detFC1Bias: Tensor     // det.fc1.bias   [hidden]
    let detFC2Weight: Tensor   // det.fc2.weight [5, hidden]
    let detFC2Bias: Tensor     // det.fc2.bias   [5]
    let segFC1Weight: Tensor   // seg.fc1.weight [hidden, G·G + H]
    let segFC1Bias: Tensor     // seg.fc1.bias   [hidden]
    let segFC2Weight: Tensor   // seg.fc2.weight [M·M, hidden]
    let segFC2Bias: Tensor     // seg.fc2.bias   [M·M]
    let refineWeights: [Tensor] // version 2: refine.fc1.weight [R, G·G + H], .bias [R], fc2.weight [θ, R], .bias [θ]

    /// Names and shapes of the tensors in heads.safetensors.
    public static func tensorShapes(_ c: HeadsConfig) -> [(String, [Int])] {
        let din = c.inputSize, hid = c.hiddenSize, mm = c.maskSize * c.maskSize
        var shapes = [("det.fc1.weight", [hid, din]), ("det.fc1.bias", [hid]),
                      ("det.fc2.weight", [5, hid]), ("det.fc2.bias", [5]),
                      ("seg.fc1.weight", [hid, din]), ("seg.fc1.bias", [hid]),
                      ("seg.fc2.weight", [mm, hid]), ("seg.fc2.bias", [mm])]
        if let r = c.refinement {
            shapes += [("refine.fc1.weight", [r.controllerHiddenSize, din]), ("refine.fc1.bias", [r.controllerHiddenSize]),
                       ("refine.fc2.weight", [r.parameterCount, r.controllerHiddenSize]), ("refine.fc2.bias", [r.parameterCount])]
        }
        return shapes
    }

    /// Builds the heads from tensors named as in heads.safetensors (shapes checked).
    public init(config: HeadsConfig, tensors: [String: Tensor], file: String = "heads.safetensors") throws {
        var checked: [Tensor] = []
        for (name, shape) in Self.tensorShapes(config) {
            guard let t = tensors[name] else { throw HeadsError.invalidHeads(file: file, key: name, detail: "tensor missing") }
            guard t.shape == shape else {
                throw HeadsError.invalidHeads(file: file, key: name, detail: "shape \(t.shape), expected \(shape)")
            }
            checked.append(t)
        }
        self.config = config
        self.file = file
        (detFC1Weight, detFC1Bias, detFC2Weight, detFC2Bias) = (checked[0], checked[1], checked[2], checked[3])
        (segFC1Weight, segFC1Bias, segFC2Weight, segFC2Bias) = (checked[4], checked[5], checked[6], checked[7])
        refineWeights = Array(checked.dropFirst(8))
    }

    /// Loads `heads.json` + `heads.safetensors` from a model directory; nil when the directory has no heads.
    public static func load(directory: URL, layout: AttentionLayout, encoderHiddenSize: Int) throws -> LearnedHeads? {
        let json = directory.appendingPathComponent("heads.json")
        let weightsURL = directory.appendingPathComponent("heads.safetensors")
        let fm = FileManager.default
        guard fm.fileExists(atPath: json.path) || fm.fileExists(atPath: weightsURL.path) else { return nil }
        guard fm.fileExists(atPath: json.path) else {
            throw HeadsError.invalidHeads(file: json.path, key: "", detail: "missing (heads.safetensors needs it)")
        }
        guard fm.fileExists(atPath: weightsURL.path) else {
            throw HeadsError.invalidHeads(file: weightsURL.path, key: "", detail: "missing (heads.json needs it)")
        }
        let config = try HeadsConfig.load(json, layout: layout, encoderHiddenSize: encoderHiddenSize)
        let weights = try WeightLoader(files: [try SafeTensorsFile(url: weightsURL)])
        var tensors: [String: Tensor] = [:]
        for (name, shape) in tensorShapes(config) {
            let parts = name.split(separator: ".", maxSplits: 2).map(String.init)   // "det", "fc1", "weight"
            do {
                tensors[name] = try weights.scoped(parts[0]).scoped(parts[1]).tensor(parts[2], shape: shape)
            } catch {
                throw HeadsError.invalidHeads(file: weightsURL.path, key: name, detail: "\(error)")
            }
        }
        return try LearnedHeads(config: config, tensors: tensors, file: weightsURL.path)
    }

    /// What the heads predict for one word.
    public struct Prediction: Sendable {
        /// sigmoid(det[0..<4]): (cx, cy, w, h) as fractions of the image width and height.
        public var boxFractions: [Float]
        /// sigmoid(det[4]).
        public var score: Float
        /// seg logits, M×M row-major over the box.
        public var maskLogits: [Float]
        /// Version 2: θ, the weights of this object's per-pixel MLP (`PixelRefinement`).
        public var pixelWeights: [Float]?
    }

    /// x = concat(G·G · A_w, f_w) for each map, rows of a [maps.count, G·G + H] matrix.
    /// - Parameter encoderStates: E [sequenceLength, H] of one image, its patches in rows `patchRows`.
    public func features(maps: [[Float]], encoderStates: Tensor, patchRows: PatchRows) throws -> [Float] {
        let gg = config.grid[0] * config.grid[0], hdim = config.encoderHiddenSize, din = config.inputSize
        let patchOffset = patchRows.rows.lowerBound
        guard patchRows.rows.count == gg, encoderStates.rank == 2, encoderStates.shape[1] == hdim,
              encoderStates.shape[0] >= patchRows.rows.upperBound else {
            throw HeadsError.attentionShape("encoder states \(encoderStates.shape) do not hold the \(gg) patch rows \(patchRows.rows) of \(hdim)")
        }
        for m in maps where m.count != gg {
            throw HeadsError.attentionShape("a word map of \(m.count) values for a \(config.grid[0])×\(config.grid[0]) grid")
        }
        let n = maps.count
        var a = [Float](repeating: 0, count: n * gg)          // A: [n, G·G]
        for (i, m) in maps.enumerated() { a.replaceSubrange(i * gg..<(i + 1) * gg, with: m) }
        var x = [Float](repeating: 0, count: n * din)
        a.withUnsafeBufferPointer { ap in
            x.withUnsafeMutableBufferPointer { xp in
                guard let ab = ap.baseAddress, let xb = xp.baseAddress else { return }
                for i in 0..<n {
                    for p in 0..<gg { xb[i * din + p] = Float(gg) * ab[i * gg + p] }
                }
                // f = A · E[patch rows]   ([n, G·G] · [G·G, H]) written into columns G·G..< of x
                BLAS.gemm(m: n, n: hdim, k: gg, a: ab, lda: gg,
                          b: encoderStates.data + patchOffset * hdim, ldb: hdim,
                          c: xb + gg, ldc: din)
            }
        }
        return x
    }

    /// y = fc2(relu(fc1(x))) for `rows` rows of x (torch Linear: x · Wᵀ + b).
    static func mlp(_ x: [Float], rows: Int, fc1Weight: Tensor, fc1Bias: Tensor,
                    fc2Weight: Tensor, fc2Bias: Tensor) -> [Float] {
        let hidden = fc1Weight.shape[0], din = fc1Weight.shape[1], out = fc2Weight.shape[0]
        var h = [Float](repeating: 0, count: rows * hidden)
        var y = [Float](repeating: 0, count: rows * out)
        x.withUnsafeBufferPointer { xp in
            h.withUnsafeMutableBufferPointer { hp in
                y.withUnsafeMutableBufferPointer { yp in
                    guard let xb = xp.baseAddress, let hb = hp.baseAddress, let yb = yp.baseAddress else { return }
                    Kernels.broadcastRows(fc1Bias.data, rows: rows, cols: hidden, into: hb)
                    BLAS.gemm(m: rows, n: hidden, k: din, a: xb, lda: din,
                              b: fc1Weight.data, ldb: din, transposeB: true, c: hb, ldc: hidden, beta: 1)
                    Kernels.activate(hb, count: rows * hidden, .relu)
                    Kernels.broadcastRows(fc2Bias.data, rows: rows, cols: out, into: yb)
                    BLAS.gemm(m: rows, n: out, k: hidden, a: hb, lda: hidden,
                              b: fc2Weight.data, ldb: hidden, transposeB: true, c: yb, ldc: out, beta: 1)
                }
            }
        }
        return y
    }

    @inline(__always) static func sigmoid(_ v: Float) -> Float { 1 / (1 + expf(-v)) }

    /// Runs both heads on word maps A_w (already of layer `attention_layer`, renormalized).
    public func predict(maps: [[Float]], encoderStates: Tensor, patchRows: PatchRows) throws -> [Prediction] {
        guard !maps.isEmpty else { return [] }
        let x = try features(maps: maps, encoderStates: encoderStates, patchRows: patchRows)
        let n = maps.count, mm = config.maskSize * config.maskSize
        let det = Self.mlp(x, rows: n, fc1Weight: detFC1Weight, fc1Bias: detFC1Bias, fc2Weight: detFC2Weight, fc2Bias: detFC2Bias)
        let seg = Self.mlp(x, rows: n, fc1Weight: segFC1Weight, fc1Bias: segFC1Bias, fc2Weight: segFC2Weight, fc2Bias: segFC2Bias)
        let thetaCount = config.refinement?.parameterCount ?? 0
        let theta = thetaCount == 0 ? nil : Self.mlp(x, rows: n, fc1Weight: refineWeights[0], fc1Bias: refineWeights[1],
                                                     fc2Weight: refineWeights[2], fc2Bias: refineWeights[3])
        // A NaN weight (or an infinity that cancels) reaches the outputs; boxes are then not numbers
        // and pixelBox could not round them. This image's record becomes the error.
        for (name, values) in [("det", det), ("seg", seg), ("refine", theta ?? [])] where !values.allSatisfy(\.isFinite) {
            throw HeadsError.invalidHeads(file: file, key: name,
                                          detail: "the head computed NaN or infinite outputs (corrupt weights? check with --check-weights)")
        }
        return (0..<n).map { i in
            Prediction(boxFractions: (0..<4).map { Self.sigmoid(det[i * 5 + $0]) },
                       score: Self.sigmoid(det[i * 5 + 4]),
                       maskLogits: Array(seg[i * mm..<(i + 1) * mm]),
                       pixelWeights: theta.map { Array($0[i * thetaCount..<(i + 1) * thetaCount]) })
        }
    }

    /// (cx, cy, w, h) fractions → an integer box inside the image, rounded as tools/train_heads.py's
    /// `pixel_box` does (Python's round: half to even), at least one pixel wide and high.
    public static func pixelBox(_ f: [Float], width: Int, height: Int) -> PixelBox {
        let cx = Double(f[0]), cy = Double(f[1]), w = Double(f[2]), h = Double(f[3])
        let W = Double(width), H = Double(height)
        // predict() only returns finite fractions; clamping here keeps Int() total for any caller.
        func r(_ v: Double) -> Int { v.isNaN ? 0 : Int(max(-1e9, min(1e9, v)).rounded(.toNearestOrEven)) }
        let x0 = max(0, min(width - 1, r((cx - w / 2) * W)))
        let y0 = max(0, min(height - 1, r((cy - h / 2) * H)))
        let x1 = max(x0 + 1, min(width, r((cx + w / 2) * W)))
        let y1 = max(y0 + 1, min(height, r((cy + h / 2) * H)))
        return PixelBox(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
    }

    /// The M×M logits over `box`, upsampled bilinearly (align_corners=False) to the box's size;
    /// a pixel is set where the logit > 0; outside the box nothing is set.
    public static func mask(logits: [Float], maskSize m: Int, box: PixelBox, width: Int, height: Int) -> BitMask {
        var mask = BitMask(width: width, height: height)
        let up = Bilinear.resize(logits, width: m, height: m, toWidth: box.width, height: box.height)
        for by in 0..<box.height {
            let y = box.y + by
            guard y >= 0 && y < height else { continue }
            for bx in 0..<box.width {
                let x = box.x + bx
                if x >= 0 && x < width && up[by * box.width + bx] > 0 { mask.bits[y * width + x] = 1 }
            }
        }
        return mask
    }

    /// Whether these heads refine the masks of an image of this size from its pixels (version 2,
    /// images up to `PixelRefinement.maxImagePixels`); callers keep the pixels for them only then.
    public func refinesMasks(width: Int, height: Int) -> Bool {
        config.refinement != nil && PixelRefinement.refines(width: width, height: height)
    }

    /// Detections for the object words among `words`, using maps of `attention_layer`.
    /// - Parameters:
    ///   - attention: the sequence's captured attention.
    ///   - encoderStates: E [sequenceLength, H] of the image.
    ///   - image: the image's pixels (imageWidth × imageHeight, after EXIF orientation); version-2
    ///     heads refine masks and boxes from them, and without them report the coarse mask and box.
    ///   - vocabulary: which words to ground and how to label them (from `vocabulary()` by default).
    public func detect(words: [CaptionWord], attention: AttentionMaps, encoderStates: Tensor,
                       imageWidth: Int, imageHeight: Int, image: RGBImage? = nil,
                       vocabulary: GroundingVocabulary? = nil) throws -> [Detection] {
        let vocab = vocabulary ?? self.vocabulary()
        let chosen = words.indices.filter { vocab.isContent(words[$0]) }
        let maps = try chosen.map { try attention.map(tokens: words[$0].tokens, layer: config.attentionLayer) }
        let predictions = try predict(maps: maps, encoderStates: encoderStates, patchRows: attention.layout.patchRows)
        return zip(chosen, predictions).map { i, p in
            var box = Self.pixelBox(p.boxFractions, width: imageWidth, height: imageHeight)
            var mask: BitMask
            if refinesMasks(width: imageWidth, height: imageHeight), let refinement = config.refinement,
               let theta = p.pixelWeights, let image, image.width == imageWidth, image.height == imageHeight,
               image.hasPixels {
                mask = refinement.mask(image: image, box: box, coarse: p.maskLogits, maskSize: config.maskSize, weights: theta)
                box = mask.boundingBox ?? box
            } else {
                mask = Self.mask(logits: p.maskLogits, maskSize: config.maskSize, box: box, width: imageWidth, height: imageHeight)
            }
            return Detection(label: vocab.label(of: i, in: words), word: words[i].normalized, tokenIndex: words[i].tokenIndex,
                             box: box, score: Double(p.score), mask: RLE(mask: mask))
        }
    }

    /// The grounding vocabulary heads.json implies: its object and attribute words.
    public func vocabulary() -> GroundingVocabulary {
        GroundingVocabulary(objectWords: config.objectWords.map(Set.init), attributeWords: config.attributeWords.map(Set.init))
    }
}
