import Dispatch
import Foundation

// Florence-2 (transformers `Florence2ForConditionalGeneration`, 5.24, model_type "florence2"): a DaViT
// vision tower (`model.vision_tower.*`: convolutional patch embeddings, then per stage blocks of
// window attention and channel-group attention, each branch after a depthwise-conv position
// encoding), a projector (`model.multi_modal_projector.*`: learned 2-D positions, a cosine temporal
// embedding, a pooled row, a linear projection and LayerNorm), and BART (`model.language_model.*`):
// its encoder reads [image tokens; prompt tokens], its decoder cross-attends to that sequence.
// Everything of the family is in this file: configs, encoder, decoder, prompt and generation rules;
// the task prompts and answer parsing are in Florence2Tasks.swift.
// References: transformers/models/florence2/{configuration,modeling,processing}_florence2.py, models/bart.

// MARK: - Configs

/// transformers' `Florence2VisionConfig` (`vision_config`; defaults as in transformers).
public struct Florence2VisionConfig: Sendable {
    public var channels: Int              // in_channels
    public var depths: [Int]              // depths (blocks per stage)
    public var patchSize: [Int]           // patch_size (conv kernel per stage)
    public var patchStride: [Int]         // patch_stride
    public var patchPadding: [Int]        // patch_padding
    public var patchPrenorm: [Bool]       // patch_prenorm
    public var embedDim: [Int]            // embed_dim
    public var heads: [Int]               // num_heads (window attention)
    public var groups: [Int]              // num_groups (channel attention)
    public var windowSize: Int            // window_size
    public var mlpRatio: Double           // mlp_ratio
    public var qkvBias: Bool              // qkv_bias
    public var activation: Kernels.Activation  // activation_function
    public var projectionDim: Int         // projection_dim
    public var temporalEmbeddings: Int    // max_temporal_embeddings
    public var positionEmbeddings: Int    // max_position_embeddings

    public init(_ c: JSONConfig) throws {
        func fail(_ detail: String) -> ModelError { .invalidConfig(file: c.file, detail: detail) }
        func list(_ key: String, _ value: [Int], in range: ClosedRange<Int>) throws -> [Int] {
            let v = try c.ints(key) ?? value
            guard let bad = v.first(where: { !range.contains($0) }) else { return v }
            throw fail("key '\(key)' has \(bad), outside \(range.lowerBound)...\(range.upperBound)")
        }
        channels = try c.int("in_channels", default: 3, in: 1...4)
        depths = try list("depths", [1, 1, 9, 1], in: 0...256)
        patchSize = try list("patch_size", [7, 3, 3, 3], in: 1...64)
        patchStride = try list("patch_stride", [4, 2, 2, 2], in: 1...64)
        patchPadding = try list("patch_padding", [3, 1, 1, 1], in: 0...64)
        embedDim = try list("embed_dim", [128, 256, 512, 1024], in: 1...16384)
        heads = try list("num_heads", [4, 8, 16, 32], in: 1...1024)
        groups = try list("num_groups", [4, 8, 16, 32], in: 1...1024)
        if let values = c.values["patch_prenorm"] as? [Any] {
            patchPrenorm = try values.map {
                guard let b = $0 as? Bool ?? (JSONConfig.number($0).map { $0.intValue != 0 }) else { throw fail("key 'patch_prenorm' needs booleans") }
                return b
            }
        } else {
            patchPrenorm = [false, true, true, true]
        }
        windowSize = try c.int("window_size", default: 12, in: 1...1024)
        mlpRatio = try c.double("mlp_ratio", default: 4)
        qkvBias = try c.bool("qkv_bias", default: true)
        activation = try Kernels.Activation(name: try c.string("activation_function") ?? "gelu")
        projectionDim = try c.int("projection_dim", default: 1024, in: 1...16384)
        temporalEmbeddings = try c.int("max_temporal_embeddings", default: 100, in: 1...65536)
        positionEmbeddings = try c.int("max_position_embeddings", default: 50, in: 1...65536)
        let stages = embedDim.count
        guard stages >= 1, [depths, patchSize, patchStride, patchPadding, heads, groups].allSatisfy({ $0.count == stages }),
              patchPrenorm.count == stages else {
            throw fail("depths, patch_size, patch_stride, patch_padding, patch_prenorm, embed_dim, num_heads and num_groups need one entry per stage")
        }
        for s in 0..<stages {
            guard embedDim[s] % heads[s] == 0, embedDim[s] % groups[s] == 0 else {
                throw fail("embed_dim[\(s)] = \(embedDim[s]) is not divisible by num_heads[\(s)] = \(heads[s]) and num_groups[\(s)] = \(groups[s])")
            }
        }
        guard mlpRatio.isFinite, mlpRatio > 0, mlpRatio <= 64 else { throw fail("key 'mlp_ratio' = \(mlpRatio) is outside (0, 64]") }
    }

    /// int(embed_dim · mlp_ratio), as nn.Linear is built.
    func inner(_ stage: Int) -> Int { Int(Double(embedDim[stage]) * mlpRatio) }

    /// The side of each stage's feature map for a `side`-pixel input (conv output size per stage).
    func sides(input side: Int) -> [Int] {
        var s = side
        return embedDim.indices.map { i in
            s = (s + 2 * patchPadding[i] - patchSize[i]) / patchStride[i] + 1
            return s
        }
    }
}

/// The BART config Florence-2 keeps as `text_config` (transformers' `BartConfig` defaults).
public struct BartConfig: Sendable {
    public var vocabSize: Int             // vocab_size
    public var width: Int                 // d_model
    public var encoderLayers: Int         // encoder_layers
    public var decoderLayers: Int         // decoder_layers
    public var encoderHeads: Int          // encoder_attention_heads
    public var decoderHeads: Int          // decoder_attention_heads
    public var encoderInner: Int          // encoder_ffn_dim
    public var decoderInner: Int          // decoder_ffn_dim
    public var activation: Kernels.Activation  // activation_function
    public var positions: Int             // max_position_embeddings
    public var scaleEmbedding: Bool       // scale_embedding: token embeddings × √d_model
    public var bosTokenId: Int            // bos_token_id
    public var eosTokenId: Int            // eos_token_id
    public var padTokenId: Int?           // pad_token_id
    public var decoderStartTokenId: Int   // decoder_start_token_id

    public init(_ c: JSONConfig) throws {
        vocabSize = try c.int("vocab_size", default: 50265, in: 1...1_000_000)
        width = try c.int("d_model", default: 1024, in: 1...16384)
        encoderLayers = try c.int("encoder_layers", default: 12, in: 0...256)
        decoderLayers = try c.int("decoder_layers", default: 12, in: 1...256)
        encoderHeads = try c.int("encoder_attention_heads", default: 16, in: 1...1024)
        decoderHeads = try c.int("decoder_attention_heads", default: 16, in: 1...1024)
        encoderInner = try c.int("encoder_ffn_dim", default: 4096, in: 1...65536)
        decoderInner = try c.int("decoder_ffn_dim", default: 4096, in: 1...65536)
        activation = try Kernels.Activation(name: try c.string("activation_function") ?? "gelu")
        positions = try c.int("max_position_embeddings", default: 1024, in: 1...65536)
        scaleEmbedding = try c.bool("scale_embedding", default: false)
        bosTokenId = try c.intOrFirst("bos_token_id") ?? 0
        eosTokenId = try c.intOrFirst("eos_token_id") ?? 2
        padTokenId = c.has("pad_token_id") ? try c.intOrFirst("pad_token_id") : 1
        decoderStartTokenId = try c.intOrFirst("decoder_start_token_id") ?? 2
        for (key, heads) in [("encoder_attention_heads", encoderHeads), ("decoder_attention_heads", decoderHeads)] where width % heads != 0 {
            throw ModelError.invalidConfig(file: c.file, detail: "d_model \(width) is not divisible by \(key) \(heads)")
        }
        for (key, id) in [("bos_token_id", bosTokenId), ("eos_token_id", eosTokenId), ("decoder_start_token_id", decoderStartTokenId)]
        where id < 0 || id >= vocabSize {
            throw ModelError.invalidConfig(file: c.file, detail: "\(key) \(id) is outside the vocabulary (\(vocabSize))")
        }
    }

    /// BartScaledWordEmbedding's factor.
    var embedScale: Float { scaleEmbedding ? Float(width).squareRoot() : 1 }
    /// BartLearnedPositionalEmbedding stores max_position_embeddings + 2 rows and reads position + 2.
    static let positionOffset = 2
}

// MARK: - DaViT vision tower

/// A convolution run as im2col + one product over channels-last feature maps ([side², C] per image):
/// Florence-2's patch embeddings (`nn.Conv2d(C_in, C_out, k, stride, padding)`).
struct Convolution {
    let weight: WeightMatrix    // [C_out, C_in, k, k], read as [C_out, C_in·k·k]
    let bias: Tensor            // [C_out]
    let inChannels: Int
    let kernel: Int
    let stride: Int
    let padding: Int

    init(_ w: WeightLoader, _ name: String, in inChannels: Int, out: Int, kernel: Int, stride: Int, padding: Int) throws {
        let s = w.scoped(name)
        weight = WeightMatrix(try s.tensor("weight", shape: [out, inChannels, kernel, kernel])
                                  .reshaped([out, inChannels * kernel * kernel]), layout: .outputMajor)
        bias = try s.tensor("bias", shape: [out])
        self.inChannels = inChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    func outputSide(_ side: Int) -> Int { (side + 2 * padding - kernel) / stride + 1 }

    /// One image: `x` holds the input map, element (y, x, c) at `x[(y·side + x)·rowStride + c·channelStride]`
    /// (channels-last: rowStride C, channelStride 1; channels-first pixels: rowStride 1, channelStride side²);
    /// `out` gets [outSide², C_out]. `columns` is scratch of outSide² · C_in·k² floats.
    func callAsFunction(_ x: UnsafePointer<Float>, side: Int, rowStride: Int, channelStride: Int,
                        columns: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let o = outputSide(side), k = kernel, width = inChannels * k * k
        for oy in 0..<o {
            for ox in 0..<o {
                var dst = columns + (oy * o + ox) * width   // column order [c][ky][kx] = the weight's
                for c in 0..<inChannels {
                    for ky in 0..<k {
                        let iy = oy * stride - padding + ky
                        for kx in 0..<k {
                            let ix = ox * stride - padding + kx
                            dst.pointee = iy >= 0 && iy < side && ix >= 0 && ix < side
                                ? x[(iy * side + ix) * rowStride + c * channelStride] : 0
                            dst += 1
                        }
                    }
                }
            }
        }
        Kernels.broadcastRows(bias.data, rows: o * o, cols: bias.count, into: out)
        BLAS.product(columns, rows: o * o, weight: weight, into: out, accumulate: true)
    }
}

/// A 3×3 depthwise convolution with padding 1 added to its input (DaViT's conv position encoding:
/// torch `x = conv(x) + x` with `nn.Conv2d(C, C, 3, padding=1, groups=C)`), on a channels-last map.
struct DepthwiseConvResidual {
    let weight: Tensor   // [C, 1, 3, 3]
    let bias: Tensor     // [C]

    init(_ w: WeightLoader, _ name: String, channels: Int) throws {
        let s = w.scoped(name)
        weight = try s.tensor("weight", shape: [channels, 1, 3, 3])
        bias = try s.tensor("bias", shape: [channels])
    }

    /// x [side², C] ← conv(x) + x; `scratch` holds side²·C floats.
    func apply(_ x: UnsafeMutablePointer<Float>, side: Int, scratch: UnsafeMutablePointer<Float>) {
        let c = bias.count, w = weight.data, b = bias.data
        // Tap-major weights [9][C] so the channel loop reads both operands contiguously.
        var taps = [Float](repeating: 0, count: 9 * c)
        for ch in 0..<c { for t in 0..<9 { taps[t * c + ch] = w[ch * 9 + t] } }
        taps.withUnsafeBufferPointer { taps in
            let taps = taps.baseAddress!
            for y in 0..<side {
                for xx in 0..<side {
                    let o = scratch + (y * side + xx) * c
                    for ch in 0..<c { o[ch] = b[ch] }
                    for ky in 0..<3 {
                        let iy = y + ky - 1
                        guard iy >= 0 && iy < side else { continue }
                        for kx in 0..<3 {
                            let ix = xx + kx - 1
                            guard ix >= 0 && ix < side else { continue }
                            let src = x + (iy * side + ix) * c, tap = taps + (ky * 3 + kx) * c
                            for ch in 0..<c { o[ch] += tap[ch] * src[ch] }
                        }
                    }
                }
            }
        }
        Kernels.add(x, scratch, count: side * side * c)
    }
}

/// One DaViT block (`Florence2VisionBlock`): a spatial block (window attention) then a channel block
/// (channel-group attention), each: x = x + dwconv(x); x = x + attn(norm1(x)); x = x + dwconv2(x);
/// x = x + ffn(norm2(x)).
struct DaViTBlock {
    struct Half {
        let conv1: DepthwiseConvResidual
        let norm1: LayerNorm
        let qkv: Linear          // [3C, C]
        let projection: Linear   // [C, C]
        let conv2: DepthwiseConvResidual
        let norm2: LayerNorm
        let fc1: Linear
        let fc2: Linear

        init(_ w: WeightLoader, attention: String, channels c: Int, inner: Int, qkvBias: Bool) throws {
            conv1 = try DepthwiseConvResidual(w, "conv1", channels: c)
            norm1 = try LayerNorm(w, "norm1", dim: c, eps: 1e-5)
            qkv = try Linear.linear(w, "\(attention).qkv", in: c, out: 3 * c, bias: qkvBias)
            projection = try Linear.linear(w, "\(attention).proj", in: c, out: c)
            conv2 = try DepthwiseConvResidual(w, "conv2", channels: c)
            norm2 = try LayerNorm(w, "norm2", dim: c, eps: 1e-5)
            fc1 = try Linear.linear(w, "ffn.fc1", in: c, out: inner)
            fc2 = try Linear.linear(w, "ffn.fc2", in: inner, out: c)
        }
    }
    let spatial: Half
    let channel: Half
}

/// Scratch for one DaViT stage over one image (sized to the largest stage, reused across stages).
final class DaViTScratch {
    let normed = Scratch(), qkv = Scratch(), context = Scratch(), mlp = Scratch()
    let windows = Scratch(), scores = Scratch(), transposed = Scratch(), conv = Scratch()
}

/// Florence-2's vision tower (`Florence2VisionBackbone`) and projector (`Florence2MultiModalProjector`).
final class DaViT: @unchecked Sendable {
    let config: Florence2VisionConfig
    let imageSide: Int
    let sides: [Int]
    let embeddings: [Convolution]          // convs.N.conv
    let embeddingNorms: [LayerNorm]        // convs.N.norm (before the conv when patch_prenorm)
    let blocks: [[DaViTBlock]]             // blocks.N.M
    // projector
    let projection: WeightMatrix           // multi_modal_projector.image_projection.weight [P, C]
    let projectionNorm: LayerNorm          // multi_modal_projector.image_proj_norm
    let rowEmbeddings: Tensor              // image_position_embed.row_embeddings.weight    [maxPos, C/2]
    let columnEmbeddings: Tensor           // image_position_embed.column_embeddings.weight [maxPos, C - C/2]
    let temporalEmbedding: [Float]         // visual_temporal_embed.pos_idx_to_embed[0]     [C]

    var grid: Int { sides.last ?? 0 }
    var width: Int { config.embedDim.last ?? 0 }
    /// Rows the projector gives: the spatial mean, then the grid.
    var tokens: Int { 1 + grid * grid }

    init(config: Florence2VisionConfig, imageSide: Int, tower w: WeightLoader, projector p: WeightLoader) throws {
        self.config = config
        self.imageSide = imageSide
        sides = config.sides(input: imageSide)
        guard let last = sides.last, sides.allSatisfy({ $0 >= 1 }) else {
            throw ModelError.invalidConfig(file: "vision_config", detail: "an image of \(imageSide) px leaves no feature map after the patch embeddings")
        }
        guard last <= config.positionEmbeddings else {
            throw ModelError.invalidConfig(file: "vision_config", detail: "the final \(last)×\(last) grid needs max_position_embeddings ≥ \(last) (it is \(config.positionEmbeddings))")
        }
        var convs: [Convolution] = [], norms: [LayerNorm] = [], stages: [[DaViTBlock]] = []
        for s in config.embedDim.indices {
            let inChannels = s == 0 ? config.channels : config.embedDim[s - 1], c = config.embedDim[s]
            let conv = w.scoped("convs.\(s)")
            convs.append(try Convolution(conv, "conv", in: inChannels, out: c, kernel: config.patchSize[s],
                                         stride: config.patchStride[s], padding: config.patchPadding[s]))
            norms.append(try LayerNorm(conv, "norm", dim: config.patchPrenorm[s] ? inChannels : c, eps: 1e-5))
            stages.append(try (0..<config.depths[s]).map { b in
                let block = w.scoped("blocks.\(s).\(b)")
                return DaViTBlock(
                    spatial: try .init(block.scoped("spatial_block"), attention: "window_attn", channels: c,
                                       inner: config.inner(s), qkvBias: config.qkvBias),
                    channel: try .init(block.scoped("channel_block"), attention: "channel_attn", channels: c,
                                       inner: config.inner(s), qkvBias: config.qkvBias))
            })
        }
        embeddings = convs
        embeddingNorms = norms
        blocks = stages
        let c = config.embedDim[config.embedDim.count - 1], d = config.projectionDim
        projection = try p.weightMatrix("image_projection.weight", out: d, in: c, layout: .outputMajor)
        projectionNorm = try LayerNorm(p, "image_proj_norm", dim: d, eps: 1e-5)
        rowEmbeddings = try p.tensor("image_position_embed.row_embeddings.weight", shape: [config.positionEmbeddings, c / 2])
        columnEmbeddings = try p.tensor("image_position_embed.column_embeddings.weight", shape: [config.positionEmbeddings, c - c / 2])
        // A persistent buffer, so checkpoints carry it; the sinusoid it was built from when they do not.
        if let stored = try p.optionalTensor("visual_temporal_embed.pos_idx_to_embed", shape: [config.temporalEmbeddings, c]) {
            temporalEmbedding = Array(UnsafeBufferPointer(start: stored.data, count: c))
        } else {
            // row 0 of [sin(0·f), cos(0·f)] interleaved: 0 at even columns, 1 at odd ones
            temporalEmbedding = (0..<c).map { $0 % 2 == 0 ? 0 : 1 }
        }
    }

    /// Image features [count, tokens, projectionDim] for `count` images' pixel values [count, C, S, S].
    func features(_ pixelValues: UnsafePointer<Float>, count: Int) -> Tensor {
        let d = config.projectionDim, n = tokens
        let out = Tensor(zeros: [count, n, d])
        let maps = Scratch(), next = Scratch(), scratch = DaViTScratch(), pooled = Scratch(n * width)
        for b in 0..<count {
            let map = tower(pixelValues + b * config.channels * imageSide * imageSide, maps: maps, next: next, scratch: scratch)
            project(map, into: out.data + b * n * d, rows: pooled.reserve(n * width))
        }
        return out
    }

    /// The last stage's map [grid², C] of one image (pointer into `maps` or `next`).
    private func tower(_ pixels: UnsafePointer<Float>, maps: Scratch, next: Scratch, scratch: DaViTScratch) -> UnsafeMutablePointer<Float> {
        var side = imageSide
        var current: UnsafeMutablePointer<Float>? = nil
        var (a, b) = (maps, next)
        for s in config.embedDim.indices {
            let conv = embeddings[s], norm = embeddingNorms[s], c = config.embedDim[s], o = sides[s]
            let output = a.reserve(o * o * c)
            let columns = scratch.conv.reserve(o * o * conv.inChannels * conv.kernel * conv.kernel)
            if let input = current {
                // torch: prenorm over channels (a channels-last LayerNorm), then the conv.
                let normed = scratch.normed.reserve(side * side * conv.inChannels)
                if config.patchPrenorm[s] { norm(input, rows: side * side, into: normed) } else { normed.update(from: input, count: side * side * conv.inChannels) }
                conv(normed, side: side, rowStride: conv.inChannels, channelStride: 1, columns: columns, into: output)
            } else if config.patchPrenorm[s] {
                // Pixels are channels-first: a channels-last copy to normalize over the channels.
                let plane = side * side, channels = conv.inChannels
                let normed = scratch.normed.reserve(plane * channels)
                for i in 0..<plane { for c in 0..<channels { normed[i * channels + c] = pixels[c * plane + i] } }
                norm(normed, rows: plane, into: normed)
                conv(normed, side: side, rowStride: channels, channelStride: 1, columns: columns, into: output)
            } else {
                conv(pixels, side: side, rowStride: 1, channelStride: side * side, columns: columns, into: output)
            }
            if !config.patchPrenorm[s] { norm(output, rows: o * o, into: output) }
            side = o
            for block in blocks[s] {
                windowAttention(block.spatial, output, side: side, stage: s, scratch: scratch)
                channelAttention(block.channel, output, side: side, stage: s, scratch: scratch)
            }
            current = output
            swap(&a, &b)
        }
        return current!
    }

    /// The shared shape of both halves: x += dwconv(x); x += attention(norm1(x)); x += dwconv2(x); x += ffn(norm2(x)).
    private func runHalf(_ half: DaViTBlock.Half, _ x: UnsafeMutablePointer<Float>, side: Int, stage s: Int,
                         scratch: DaViTScratch, attention: (_ normed: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) -> Void) {
        let c = config.embedDim[s], rows = side * side, inner = config.inner(s)
        let tmp = scratch.context.reserve(rows * max(c, 1))
        half.conv1.apply(x, side: side, scratch: scratch.transposed.reserve(rows * c))
        let normed = scratch.normed.reserve(rows * c)
        half.norm1(x, rows: rows, into: normed)
        attention(normed, tmp)
        Kernels.add(x, tmp, count: rows * c)
        half.conv2.apply(x, side: side, scratch: scratch.transposed.reserve(rows * c))
        half.norm2(x, rows: rows, into: normed)
        let mlp = scratch.mlp.reserve(rows * inner)
        half.fc1(normed, rows: rows, into: mlp)
        Kernels.activate(mlp, count: rows * inner, config.activation)
        half.fc2(mlp, rows: rows, into: normed)
        Kernels.add(x, normed, count: rows * c)
    }

    /// Spatial window attention (`Florence2VisionWindowAttention`): the normed map is zero-padded on the
    /// right and bottom to whole windows (the padding rows take part as keys, as in torch), each
    /// window attends within itself per head, and the padding is cropped off again.
    private func windowAttention(_ half: DaViTBlock.Half, _ x: UnsafeMutablePointer<Float>, side: Int, stage s: Int, scratch: DaViTScratch) {
        let c = config.embedDim[s], ws = config.windowSize, heads = config.heads[s], headDim = c / heads
        let per = (side + ws - 1) / ws, windowRows = ws * ws, total = per * per * windowRows
        runHalf(half, x, side: side, stage: s, scratch: scratch) { normed, out in
            let windows = scratch.windows.reserve(total * c)
            windows.update(repeating: 0, count: total * c)
            for y in 0..<side {
                for xx in 0..<side {
                    let w = (y / ws) * per + xx / ws, r = (y % ws) * ws + xx % ws
                    (windows + (w * windowRows + r) * c).update(from: normed + (y * side + xx) * c, count: c)
                }
            }
            let qkv = scratch.qkv.reserve(total * 3 * c)
            half.qkv(windows, rows: total, into: qkv)
            let context = scratch.windows.pointer   // the windows are no longer needed: reuse for the context
            let scores = scratch.scores.reserve(Attention.scoreFloats(queryRows: windowRows, keyRows: windowRows, headDim: headDim, heads: heads))
            for w in 0..<(per * per) {
                let base = qkv + w * windowRows * 3 * c
                // torch: softmax(q @ kᵀ · head_dim^-0.5) @ v per head within the window
                Attention.attend(.init(query: base, queryStride: 3 * c, key: base + c, keyStride: 3 * c,
                                       value: base + 2 * c, valueStride: 3 * c, queryRows: windowRows, keyRows: windowRows,
                                       heads: heads, headDim: headDim, scale: 1 / Float(headDim).squareRoot(), causalOffset: nil),
                                 into: context + w * windowRows * c, outStride: c, scores: scores)
            }
            let projected = scratch.qkv.pointer   // qkv is spent: the projection of every window row
            half.projection(context, rows: total, into: projected)
            for y in 0..<side {
                for xx in 0..<side {
                    let w = (y / ws) * per + xx / ws, r = (y % ws) * ws + xx % ws
                    (out + (y * side + xx) * c).update(from: projected + (w * windowRows + r) * c, count: c)
                }
            }
        }
    }

    /// Channel-group attention (`Florence2VisionChannelAttention`): within each of the groups, every
    /// channel attends to the group's channels, comparing them over all N tokens (scale N^-0.5).
    private func channelAttention(_ half: DaViTBlock.Half, _ x: UnsafeMutablePointer<Float>, side: Int, stage s: Int, scratch: DaViTScratch) {
        let c = config.embedDim[s], groups = config.groups[s], d = c / groups, n = side * side
        runHalf(half, x, side: side, stage: s, scratch: scratch) { normed, out in
            let qkv = scratch.qkv.reserve(n * 3 * c)
            half.qkv(normed, rows: n, into: qkv)
            // Channels-first copies [3C, N] so each channel's N values are one attention row.
            let t = scratch.windows.reserve(3 * c * n)
            for i in 0..<n { for j in 0..<(3 * c) { t[j * n + i] = qkv[i * 3 * c + j] } }
            let context = scratch.qkv.pointer   // [C, N], channel-major
            let scores = scratch.scores.reserve(Attention.scoreFloats(queryRows: d, keyRows: d, headDim: n, heads: 1))
            for g in 0..<groups {
                // torch: q, k, v [groups, C/groups, N]; softmax(q @ kᵀ · N^-0.5) @ v
                Attention.attend(.init(query: t + g * d * n, queryStride: n, key: t + (c + g * d) * n, keyStride: n,
                                       value: t + (2 * c + g * d) * n, valueStride: n, queryRows: d, keyRows: d,
                                       heads: 1, headDim: n, scale: 1 / Float(n).squareRoot(), causalOffset: nil),
                                 into: context + g * d * n, outStride: n, scores: scores)
            }
            // torch: permute back to [N, C] with channel g·(C/groups) + j, then proj.
            let merged = scratch.windows.pointer
            for j in 0..<c { for i in 0..<n { merged[i * c + j] = context[j * n + i] } }
            half.projection(merged, rows: n, into: out)
        }
    }

    /// torch (Florence2MultiModalProjector): x + 2-D positions + temporal[0], [mean; x], projection, LayerNorm.
    private func project(_ map: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>, rows: UnsafeMutablePointer<Float>) {
        let c = width, g = grid, n = tokens, half = c - c / 2
        var mean = [Double](repeating: 0, count: c)
        for y in 0..<g {
            for xx in 0..<g {
                let src = map + (y * g + xx) * c, dst = rows + (1 + y * g + xx) * c
                let column = columnEmbeddings.data + xx * half, row = rowEmbeddings.data + y * (c / 2)
                for j in 0..<c {
                    // pos = cat([column_embeddings(x), row_embeddings(y)], -1)
                    let position = j < half ? column[j] : row[j - half]
                    let v = (src[j] + position) + temporalEmbedding[j]
                    dst[j] = v
                    mean[j] += Double(v)
                }
            }
        }
        for j in 0..<c { rows[j] = Float(mean[j] / Double(g * g)) }
        BLAS.product(rows, rows: n, weight: projection, into: out)
        projectionNorm(out, rows: n, into: out)
    }
}

// MARK: - BART encoder over [image tokens; prompt]

/// BART's attention projections under one name (`q_proj`, `k_proj`, `v_proj`, `out_proj`, [E, E] each),
/// as its encoder's self-attention and its decoder's self- and cross-attention all store them.
struct BartAttention {
    let query: Linear, key: Linear, value: Linear, output: Linear

    init(_ w: WeightLoader, _ name: String, width e: Int) throws {
        query = try Linear.linear(w, "\(name).q_proj", in: e, out: e)
        key = try Linear.linear(w, "\(name).k_proj", in: e, out: e)
        value = try Linear.linear(w, "\(name).v_proj", in: e, out: e)
        output = try Linear.linear(w, "\(name).out_proj", in: e, out: e)
    }
}

/// One post-LN BART encoder layer: x = LN(x + out_proj(attn(x))); x = LN(x + fc2(act(fc1(x)))).
struct BartEncoderLayer {
    let qkv: [Linear]          // self_attn.{q,k,v}_proj  [E, E] each
    let output: Linear         // self_attn.out_proj
    let attentionNorm: LayerNorm   // self_attn_layer_norm
    let fc1: Linear
    let fc2: Linear
    let finalNorm: LayerNorm   // final_layer_norm
}

/// Florence-2's encoder side: the vision tower and projector, then BART's encoder over the image
/// tokens followed by the prompt's token embeddings. Weights under `model.`.
final class Florence2Encoder: ImageEncoder, @unchecked Sendable {
    let vision: DaViT
    let text: BartConfig
    let sharedEmbeddings: Tensor        // language_model.shared.weight [V, E]
    let positionEmbeddings: Tensor      // language_model.encoder.embed_positions.weight [P + 2, E]
    let embeddingNorm: LayerNorm        // language_model.encoder.layernorm_embedding
    let layers: [BartEncoderLayer]      // language_model.encoder.layers.N

    let imageSize: Int
    var channels: Int { vision.config.channels }
    var hiddenSize: Int { text.width }
    var sequenceLength: Int { vision.tokens }
    /// The pooled row first, then the grid; prompt rows follow the patches.
    var patches: PatchRows { PatchRows(first: 1, grid: vision.grid) }

    init(vision: DaViT, text: BartConfig, shared: Tensor, weights w: WeightLoader) throws {
        self.vision = vision
        self.text = text
        imageSize = vision.imageSide
        sharedEmbeddings = shared
        let e = text.width, eps = 1e-5
        let enc = w.scoped("encoder")
        positionEmbeddings = try enc.tensor("embed_positions.weight", shape: [text.positions + BartConfig.positionOffset, e])
        embeddingNorm = try LayerNorm(enc, "layernorm_embedding", dim: e, eps: eps)
        layers = try (0..<text.encoderLayers).map { i in
            let l = enc.scoped("layers.\(i)"), attention = try BartAttention(l, "self_attn", width: e)
            return BartEncoderLayer(
                qkv: [attention.query, attention.key, attention.value],
                output: attention.output,
                attentionNorm: try LayerNorm(l, "self_attn_layer_norm", dim: e, eps: eps),
                fc1: try Linear.linear(l, "fc1", in: e, out: text.encoderInner),
                fc2: try Linear.linear(l, "fc2", in: text.encoderInner, out: e),
                finalNorm: try LayerNorm(l, "final_layer_norm", dim: e, eps: eps))
        }
        // "<s>" and "</s>" at least follow the image tokens within BART's learned positions.
        guard vision.tokens + 2 <= text.positions else {
            throw ModelError.invalidConfig(file: "config.json", detail: "text_config.max_position_embeddings \(text.positions) leaves no room "
                + "for a prompt after the \(vision.tokens) image tokens of a \(vision.imageSide) px image")
        }
        guard vision.config.projectionDim == e else {
            throw ModelError.invalidConfig(file: "config.json", detail: "vision_config.projection_dim \(vision.config.projectionDim) differs from text_config.d_model \(e)")
        }
    }

    /// BART's learned positions cover the image tokens and this many prompt tokens.
    var maxPromptLength: Int { max(0, text.positions - vision.tokens) }

    /// BART encoder states [count, tokens + prompt.count, E]: each image's features, then `prompt`'s
    /// token embeddings (the processor's "<image>"×tokens + "<s>" + prompt + "</s>", image tokens replaced
    /// by the features as `masked_scatter` does).
    func encode(pixelValues: UnsafePointer<Float>, count: Int, prompt: [Int]) -> Tensor {
        let e = text.width, n = vision.tokens + prompt.count
        precondition(n <= text.positions, "encoder input of \(n) rows exceeds max_position_embeddings \(text.positions)")
        let features = vision.features(pixelValues, count: count)
        let hidden = Tensor(zeros: [count, n, e])
        let h = hidden.data
        for b in 0..<count {
            let rows = h + b * n * e
            rows.update(from: features.data + b * vision.tokens * e, count: vision.tokens * e)
            for (i, id) in prompt.enumerated() {
                let x = rows + (vision.tokens + i) * e
                Kernels.embeddingRow(sharedEmbeddings.data, index: id, dim: e, into: x)
                if text.embedScale != 1 { for j in 0..<e { x[j] *= text.embedScale } }
            }
            // torch (BartEncoder): hidden = inputs_embeds + embed_positions(0..<n); layernorm_embedding
            Kernels.add(rows, positionEmbeddings.data + BartConfig.positionOffset * e, count: n * e)
        }
        embeddingNorm(h, rows: count * n, into: h)
        runLayers(h, count: count, length: n)
        return hidden
    }

    private func runLayers(_ h: UnsafeMutablePointer<Float>, count: Int, length n: Int) {
        let e = text.width, rows = count * n, heads = text.encoderHeads, headDim = e / heads, inner = text.encoderInner
        let qkv = Scratch(rows * 3 * e), context = Scratch(rows * e), tmp = Scratch(rows * e), mlp = Scratch(rows * inner)
        let scores = Scratch(Attention.scoreFloats(queryRows: n, keyRows: n, headDim: headDim, heads: heads))
        for layer in layers {
            var column = 0
            for projection in layer.qkv {
                projection(h, rows: rows, into: qkv.pointer + column, outStride: 3 * e)
                column += projection.outFeatures
            }
            for b in 0..<count {
                let base = qkv.pointer + b * n * 3 * e
                // torch (BartAttention): softmax(q @ kᵀ · head_dim^-0.5) @ v, no mask (one unpadded sequence)
                Attention.attend(.init(query: base, queryStride: 3 * e, key: base + e, keyStride: 3 * e,
                                       value: base + 2 * e, valueStride: 3 * e, queryRows: n, keyRows: n,
                                       heads: heads, headDim: headDim, scale: 1 / Float(headDim).squareRoot(), causalOffset: nil),
                                 into: context.pointer + b * n * e, outStride: e, scores: scores.pointer)
            }
            layer.output(context.pointer, rows: rows, into: tmp.pointer)
            Kernels.add(tmp.pointer, h, count: rows * e)
            layer.attentionNorm(tmp.pointer, rows: rows, into: h)
            layer.fc1(h, rows: rows, into: mlp.pointer)
            Kernels.activate(mlp.pointer, count: rows * inner, text.activation)
            layer.fc2(mlp.pointer, rows: rows, into: tmp.pointer)
            Kernels.add(tmp.pointer, h, count: rows * e)
            layer.finalNorm(tmp.pointer, rows: rows, into: h)
        }
    }
}

// MARK: - BART decoder

/// BART's decoder (post-LN blocks, `DecoderBlock.runPostNorm`), its LM head tied to the shared
/// embeddings (`lm_head.weight`, no bias). Weights under `model.language_model.decoder.`.
final class BartDecoder: TextDecoder, @unchecked Sendable {
    let config: BartConfig
    let tokenEmbeddings: Tensor      // shared.weight [V, E]
    let positionEmbeddings: Tensor   // decoder.embed_positions.weight [P + 2, E]
    let embeddingNorm: LayerNorm     // decoder.layernorm_embedding
    let blocks: [DecoderBlock]       // decoder.layers.N
    let head: WeightMatrix           // lm_head.weight [V, E], the shared embeddings when absent

    var vocabularySize: Int { config.vocabSize }
    var layerCount: Int { config.decoderLayers }
    var headCount: Int { config.decoderHeads }
    var maxPositions: Int { config.positions }
    var hiddenSize: Int { config.width }
    var stepWeightBytes: Int {
        let e = config.width, perLayer = 4 * e * e + 2 * e * e + 2 * e * config.decoderInner
        return 4 * (config.decoderLayers * perLayer + config.vocabSize * e)
    }

    init(config: BartConfig, shared: Tensor, head: WeightMatrix, weights w: WeightLoader) throws {
        self.config = config
        tokenEmbeddings = shared
        self.head = head
        let e = config.width, eps = 1e-5, inner = config.decoderInner
        let dec = w.scoped("decoder")
        positionEmbeddings = try dec.tensor("embed_positions.weight", shape: [config.positions + BartConfig.positionOffset, e])
        embeddingNorm = try LayerNorm(dec, "layernorm_embedding", dim: e, eps: eps)
        blocks = try (0..<config.decoderLayers).map { i in
            let l = dec.scoped("layers.\(i)")
            let attention = try BartAttention(l, "self_attn", width: e), cross = try BartAttention(l, "encoder_attn", width: e)
            return DecoderBlock(
                selfQKV: [attention.query, attention.key, attention.value],
                selfOutput: attention.output,
                selfNorm: try LayerNorm(l, "self_attn_layer_norm", dim: e, eps: eps),
                crossQuery: cross.query,
                crossKeyValue: [cross.key, cross.value],
                crossOutput: cross.output,
                crossNorm: try LayerNorm(l, "encoder_attn_layer_norm", dim: e, eps: eps),
                fc1: try Linear.linear(l, "fc1", in: e, out: inner),
                fc2: try Linear.linear(l, "fc2", in: inner, out: e),
                mlpNorm: try LayerNorm(l, "final_layer_norm", dim: e, eps: eps),
                activation: config.activation)
        }
    }

    /// `states`: the BART encoder's output for one image and prompt, [rows, E].
    func setEncoderStates(_ states: UnsafePointer<Float>, rows: Int, state: DecoderState, slot: Int) {
        let e = config.width
        for (l, block) in blocks.enumerated() {
            block.crossKeysAndValues(states, rows: rows, width: e, into: state.crossKeyValue(layer: l, slot: slot).reserve(rows * 2 * e))
        }
        state.encoderRows = rows
        state.reset(slot: slot)
    }

    func logits(state: DecoderState, allPositions: Bool, captureCrossAttention: Bool) -> UnsafeMutablePointer<Float> {
        let e = config.width, heads = config.decoderHeads, rows = state.scheduledRows
        let buffers = state.prepareStep(layers: config.decoderLayers, heads: heads, inner: config.decoderInner,
                                        capture: captureCrossAttention)
        let h = buffers.hidden, normed = buffers.normed
        // torch (BartDecoder): embed_tokens(ids) · embed_scale + embed_positions(past..<past+n) (offset 2); layernorm_embedding
        state.embed(tokenTable: tokenEmbeddings, positionTable: positionEmbeddings, positionOffset: BartConfig.positionOffset,
                    scale: config.embedScale, into: h)
        embeddingNorm(h, rows: rows, into: h)
        let scale = 1 / Float(e / heads).squareRoot()
        for (l, block) in blocks.enumerated() {
            block.runPostNorm(layer: l, state: state, buffers: buffers, heads: heads, scale: scale, capture: captureCrossAttention)
        }
        // torch: logits = lm_head(x) — only the rows generation needs.
        let outRows = state.gatherOutputRows(h, into: normed, allPositions: allPositions)
        let logits = state.logits.reserve(outRows * config.vocabSize)
        BLAS.product(normed, rows: outRows, weight: head, into: logits)
        return logits
    }
}

// MARK: - Family facade

/// The Florence-2 family: maps `Florence2ForConditionalGeneration` checkpoints (`model.vision_tower.*`,
/// `model.multi_modal_projector.*`, `model.language_model.*`, `lm_head.*`) to layers, builds the
/// encoder prompt of a task and holds the generation rules.
public struct Florence2: CaptionFamily {
    public init() {}
    public var name: String { "florence2" }
    public var displayName: String { "Florence-2 (Florence2ForConditionalGeneration)" }
    public var decoderPrefix: String { "model.language_model.decoder." }
    public var tasks: [String] { taskTokens }
    public var taskTokens: [String] { Florence2Task.allCases.map(\.rawValue) }
    /// The task a prompt-less caption request runs.
    public static let defaultTask = "<CAPTION>"

    public func recognizes(architectures: [String], modelType: String?) -> Bool {
        architectures.contains("Florence2ForConditionalGeneration") || modelType == "florence2"
    }

    public func load(config: JSONConfig, weights: WeightLoader) throws -> (ImageEncoder, TextDecoder) {
        let (vision, text) = try Self.configs(config)
        let model = weights.scoped("model")
        let lm = model.scoped("language_model")
        let v = text.vocabSize, e = text.width
        // transformers ties lm_head, shared and both embed_tokens; whichever the file holds serves all.
        let shared = try lm.optionalTensor("shared.weight", shape: [v, e])
            ?? lm.optionalTensor("encoder.embed_tokens.weight", shape: [v, e])
            ?? lm.optionalTensor("decoder.embed_tokens.weight", shape: [v, e])
            ?? weights.tensor("lm_head.weight", shape: [v, e])
        for tied in ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"] { _ = try lm.optionalTensor(tied, shape: [v, e]) }
        let head = try weights.optionalTensor("lm_head.weight", shape: [v, e]) != nil
            ? try weights.weightMatrix("lm_head.weight", out: v, in: e, layout: .outputMajor)
            : WeightMatrix(shared, layout: .outputMajor)
        let side = try Self.imageSide(config)
        let tower = try DaViT(config: vision, imageSide: side, tower: model.scoped("vision_tower"),
                              projector: model.scoped("multi_modal_projector"))
        let encoder = try Florence2Encoder(vision: tower, text: text, shared: shared, weights: lm)
        let decoder = try BartDecoder(config: text, shared: shared, head: head, weights: lm)
        return (encoder, decoder)
    }

    /// The vision and text configs of a `Florence2Config`.
    public static func configs(_ config: JSONConfig) throws -> (Florence2VisionConfig, BartConfig) {
        let vision = try config.object("vision_config") ?? JSONConfig(values: [:], file: "\(config.file) [vision_config]")
        let text = try config.object("text_config") ?? JSONConfig(values: [:], file: "\(config.file) [text_config]")
        return (try Florence2VisionConfig(vision), try BartConfig(text))
    }

    /// The image side the encoder is built for. config.json does not say it; the image processor does
    /// (768 for the published checkpoints): its size when the directory holds one, else 768.
    static func imageSide(_ config: JSONConfig) throws -> Int {
        let directory = URL(fileURLWithPath: config.file).deletingLastPathComponent()
        guard let size = try ModelDirectory.declaredImageSize(in: directory) else { return 768 }
        guard size.width == size.height else {
            throw ModelError.unsupported("\(directory.path): the image processor resizes to \(size.width)x\(size.height); Glimpse runs square Florence-2 inputs")
        }
        return size.width
    }

    /// "<s>" + the task's prompt (Florence2Processor's construction) + "</s>", as the processor
    /// tokenizes it without adding special tokens; no text runs the default task.
    public func encoderPrompt(_ text: String?, tokenizer: any Tokenizer) throws -> [Int] {
        let prompt = try Florence2Task.prompt(text ?? Self.defaultTask)
        return tokenizer.encode("<s>" + prompt + "</s>")
    }

    /// The encoder takes the prompt; the decoder starts from decoder_start_token_id alone.
    public func decoderPrompt(_ text: String?, tokenizer: any Tokenizer, parameters: GenerationParameters) -> [Int] {
        [parameters.decoderStartTokenId]
    }

    public func decoderPrompt(generateInputIds ids: [Int]?, parameters: GenerationParameters) throws -> [Int] {
        [parameters.decoderStartTokenId]
    }

    /// The post-processor of processor_config.json's `post_processor_config` (transformers 5 saves it
    /// there). Without one transformers refuses every task ("Unsupported parse task"); Glimpse parses
    /// with every parse type present and no options instead (the README says so).
    public func taskParser(directory: URL, tokenizer: any Tokenizer) throws -> (any TaskParser)? {
        let file = directory.appendingPathComponent("processor_config.json")
        var config: JSONConfig?
        if FileManager.default.fileExists(atPath: file.path) {
            config = try JSONConfig(contentsOf: file).object("post_processor_config")
        }
        let fallback = JSONConfig(values: Dictionary(uniqueKeysWithValues: Florence2AnswerType.allCases.map { ($0.rawValue, [String: Any]()) }),
                                  file: "\(file.path) [default post_processor_config]")
        return Florence2TaskParser(postProcessor: try Florence2PostProcessor(config: config ?? fallback), tokenizer: tokenizer)
    }
}

/// Florence-2's answers: the generated ids decoded with special tokens kept (`batch_decode(ids,
/// skip_special_tokens=False)`), then `post_process_generation(text, task, image_size=(w, h))`.
struct Florence2TaskParser: TaskParser {
    let postProcessor: Florence2PostProcessor
    let tokenizer: any Tokenizer

    /// The first task token in the prompt, in the processor's table order; the default task without a prompt.
    func task(of prompt: String?) -> String? {
        guard let prompt else { return Florence2.defaultTask }
        return Florence2Task.allCases.first { prompt.unicodeScalars.contains($0.rawValue.unicodeScalars) }?.rawValue
    }

    func answer(tokens: [Int], task: String, width: Int, height: Int) throws -> TaskAnswer {
        let text = tokenizer.decode(tokens, skipSpecialTokens: false)
        let answer = try postProcessor.answer(text: text, task: task, imageSize: (width, height))
        return TaskAnswer(task: task, value: answer.value, detections: answer.detections(width: width, height: height))
    }
}

extension Florence2Answer {
    /// The answer as a JSON value, in transformers' shape.
    var value: AnswerValue {
        func ints(_ v: [Int]) -> AnswerValue { .array(v.map(AnswerValue.int)) }
        func strings(_ v: [String]) -> AnswerValue { .array(v.map(AnswerValue.string)) }
        func nested(_ v: [[Int]]) -> AnswerValue { .array(v.map(ints)) }
        switch self {
        case .text(let text): return .string(text)
        case .boxes(let boxes, let labels, let scores):
            var o: [String: AnswerValue] = ["bboxes": nested(boxes), "labels": strings(labels)]
            if let scores { o["scores"] = .array(scores.map(AnswerValue.double)) }
            return .object(o)
        case .quadBoxes(let quads, let labels):
            return .object(["quad_boxes": nested(quads), "labels": strings(labels)])
        case .polygons(let polygons, let labels):
            return .object(["polygons": .array(polygons.map(nested)), "labels": strings(labels)])
        case .boxesAndPolygons(let boxes, let boxLabels, let polygons, let polygonLabels):
            return .object(["bboxes": nested(boxes), "bboxes_labels": strings(boxLabels),
                            "polygons": .array(polygons.map(nested)), "polygons_labels": strings(polygonLabels)])
        }
    }

    /// The answer's regions as output-contract detections on a `width` × `height` image: boxes as
    /// [x, y, width, height], OCR quads and polygons with their bounding boxes, polygons also as a COCO
    /// RLE mask (pycocotools' rasterization; a polygon of fewer than 3 points has none). Florence-2
    /// gives no confidence: score 1; no single token carries a region: token_index -1.
    func detections(width: Int, height: Int) -> [Detection] {
        func detection(_ label: String, _ points: [Int], polygons: [[Double]]? = nil, quad: [Double]? = nil) -> Detection? {
            let xs = stride(from: 0, to: points.count - 1, by: 2).map { points[$0] }
            let ys = stride(from: 1, to: points.count, by: 2).map { points[$0] }
            guard let x0 = xs.min(), let x1 = xs.max(), let y0 = ys.min(), let y1 = ys.max() else { return nil }
            let mask = polygons.flatMap { try? RLE(polygons: $0, height: height, width: width) }
            return Detection(label: label, word: label, tokenIndex: -1, box: PixelBox(x: x0, y: y0, width: x1 - x0, height: y1 - y0),
                             score: 1, mask: mask, polygons: polygons, quad: quad)
        }
        func boxes(_ boxes: [[Int]], _ labels: [String]) -> [Detection] {
            zip(boxes, labels).compactMap { box, label in
                box.count == 4 ? Detection(label: label, word: label, tokenIndex: -1,
                                           box: PixelBox(x: box[0], y: box[1], width: box[2] - box[0], height: box[3] - box[1]),
                                           score: 1, mask: nil) : nil
            }
        }
        func polygons(_ list: [[[Int]]], _ labels: [String]) -> [Detection] {
            zip(list, labels).compactMap { polygons, label in
                detection(label, polygons.flatMap { $0 }, polygons: polygons.map { $0.map(Double.init) })
            }
        }
        switch self {
        case .text: return []
        case .boxes(let b, let labels, _): return boxes(b, labels)
        case .quadBoxes(let quads, let labels):
            return zip(quads, labels).compactMap { quad, label in detection(label, quad, quad: quad.map(Double.init)) }
        case .polygons(let list, let labels): return polygons(list, labels)
        case .boxesAndPolygons(let b, let boxLabels, let list, let polygonLabels):
            return boxes(b, boxLabels) + polygons(list, polygonLabels)
        }
    }
}
