import Foundation

/// A dense layer. PyTorch `nn.Linear` stores weight as [out, in] (y = x·Wᵀ + b); GPT-2's `Conv1D`
/// stores it as [in, out] (y = x·W + b). Either runs as one product over all rows through
/// `BLAS.product`, with the weights in whatever element type the checkpoint holds (fp32, bf16, int8).
struct Linear {
    let weight: WeightMatrix
    let bias: Tensor?
    var inFeatures: Int { weight.inFeatures }
    var outFeatures: Int { weight.outFeatures }

    init(weight: WeightMatrix, bias: Tensor?) {
        precondition(bias.map { $0.count == weight.outFeatures } ?? true, "bias of \(bias?.count ?? 0) for \(weight.outFeatures) outputs")
        self.weight = weight
        self.bias = bias
    }

    /// Loads `<prefix>.weight` / `<prefix>.bias` in nn.Linear layout ([out, in]).
    static func linear(_ w: WeightLoader, _ name: String, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws -> Linear {
        let s = w.scoped(name)
        return Linear(weight: try s.weightMatrix("weight", out: outFeatures, in: inFeatures, layout: .outputMajor),
                      bias: bias ? try s.tensor("bias", shape: [outFeatures]) : nil)
    }

    /// Loads GPT-2's Conv1D (`<prefix>.weight` [in, out], `<prefix>.bias` [out]).
    static func conv1D(_ w: WeightLoader, _ name: String, in inFeatures: Int, out outFeatures: Int) throws -> Linear {
        let s = w.scoped(name)
        return Linear(weight: try s.weightMatrix("weight", out: outFeatures, in: inFeatures, layout: .inputMajor),
                      bias: try s.tensor("bias", shape: [outFeatures]))
    }

    /// out[rows × outFeatures] = x[rows × inFeatures] · W (+ b); `xStride`/`outStride` allow column slices.
    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>,
                        xStride: Int? = nil, outStride: Int? = nil) {
        let ldo = outStride ?? outFeatures
        if let bias { Kernels.broadcastRows(bias.data, rows: rows, cols: outFeatures, into: out, rowStride: ldo) }
        BLAS.product(x, rows: rows, xStride: xStride, weight: weight, into: out, outStride: ldo, accumulate: bias != nil)
    }
}

/// torch.nn.LayerNorm over the last dimension.
struct LayerNorm {
    let weight: Tensor
    let bias: Tensor
    let eps: Float
    var dim: Int { weight.count }

    init(_ w: WeightLoader, _ name: String, dim: Int, eps: Double) throws {
        let s = w.scoped(name)
        weight = try s.tensor("weight", shape: [dim])
        bias = try s.tensor("bias", shape: [dim])
        self.eps = Float(eps)
    }

    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        Kernels.layerNorm(x, rows: rows, dim: dim, gamma: weight.data, beta: bias.data, eps: eps, into: out)
    }
}

/// Non-overlapping patch embedding, torch `nn.Conv2d(C, D, kernel_size=P, stride=P)` over a square
/// image, run as im2col + one product per image. Shared by every ViT-style encoder (ViT, BLIP).
struct PatchEmbedding {
    let weight: WeightMatrix   // <prefix>.weight [D, C, P, P], read as [D, C·P·P] (nn.Linear layout)
    let bias: Tensor           // <prefix>.bias   [D]
    let channels: Int
    let patchSize: Int
    var width: Int { bias.count }

    init(_ w: WeightLoader, _ name: String, channels: Int, patchSize: Int, width: Int) throws {
        let s = w.scoped(name)
        weight = WeightMatrix(try s.tensor("weight", shape: [width, channels, patchSize, patchSize])
                                  .reshaped([width, channels * patchSize * patchSize]), layout: .outputMajor)
        bias = try s.tensor("bias", shape: [width])
        self.channels = channels
        self.patchSize = patchSize
    }

    /// Embeds `count` images [count, C, S, S]: image b's G×G patch rows (row-major over the grid,
    /// each `width` floats) are written at `out + b·imageStride`.
    /// torch: embeddings = conv(pixel_values).flatten(2).transpose(1, 2)
    func callAsFunction(_ pixelValues: UnsafePointer<Float>, count: Int, imageSize s: Int,
                        into out: UnsafeMutablePointer<Float>, imageStride: Int) {
        let p = patchSize, g = s / p, d = width, k = channels * p * p
        let patches = UnsafeMutablePointer<Float>.allocate(capacity: max(g * g * k, 1))
        defer { patches.deallocate() }
        for b in 0..<count {
            let image = pixelValues + b * channels * s * s
            for py in 0..<g {
                for px in 0..<g {
                    var dst = patches + (py * g + px) * k   // column order [c][ky][kx] = the weight's
                    for ch in 0..<channels {
                        for ky in 0..<p {
                            dst.update(from: image + (ch * s + py * p + ky) * s + px * p, count: p)
                            dst += p
                        }
                    }
                }
            }
            let rows = out + b * imageStride
            Kernels.broadcastRows(bias.data, rows: g * g, cols: d, into: rows)
            BLAS.product(patches, rows: g * g, weight: weight, into: rows, accumulate: true)
        }
    }
}

/// A scratch buffer allocated once per run state and reused across steps (no allocation in hot loops).
final class Scratch {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init(_ capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = .allocate(capacity: self.capacity)
        pointer.initialize(repeating: 0, count: self.capacity)
    }

    /// Grows (never shrinks) to hold `count` floats; contents are not preserved across growth.
    @discardableResult
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = .allocate(capacity: count)
            pointer.initialize(repeating: 0, count: count)
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}

extension PatchEmbedding {
    /// The ViT-style input sequence of `count` images: [class token; patches] + positions, as
    /// [count, 1+G², D]. torch: cat(cls_token, conv(pixel_values).flatten(2).transpose(1, 2)) + position_embeddings
    func sequences(_ pixelValues: UnsafePointer<Float>, count: Int, imageSize: Int,
                   classToken: Tensor, positions: Tensor) -> Tensor {
        let d = width, n = positions.count / d
        let hidden = Tensor(zeros: [count, n, d])
        self(pixelValues, count: count, imageSize: imageSize, into: hidden.data + d, imageStride: n * d)
        for b in 0..<count {
            let out = hidden.data + b * n * d
            out.update(from: classToken.data, count: d)
            Kernels.add(out, positions.data, count: n * d)
        }
        return hidden
    }
}

/// A pre-LN transformer encoder block, as ViT and BLIP's vision model both build it:
/// x = x + proj(attn(ln1(x))); x = x + fc2(act(fc1(ln2(x)))).
struct PreNormEncoderBlock {
    let layerNorm1: LayerNorm
    /// Q | K | V projections writing column blocks of one [rows, 3D] buffer: a fused [3D, D] layer
    /// (BLIP's `qkv`) or three [D, D] layers (ViT's query, key, value).
    let qkv: [Linear]
    let projection: Linear
    let layerNorm2: LayerNorm
    let fc1: Linear
    let fc2: Linear
}

/// Runs pre-LN encoder blocks over `count` sequences of `length` rows in place (hidden [count·length, D]).
/// With `attentions`, each block's attention probabilities are stored there as
/// [blocks, count, heads, length, length] (transformers' `output_attentions`).
enum PreNormEncoder {
    static func run(_ blocks: [PreNormEncoderBlock], hidden h: UnsafeMutablePointer<Float>, count: Int, length n: Int,
                    width d: Int, heads: Int, inner: Int, activation: Kernels.Activation,
                    attentions: UnsafeMutablePointer<Float>? = nil) {
        let rows = count * n, headDim = d / heads
        let normed = Scratch(rows * d), qkv = Scratch(rows * 3 * d), context = Scratch(rows * d)
        let mlp = Scratch(rows * inner), scores = Scratch(Attention.scoreFloats(queryRows: n, keyRows: n, headDim: headDim, heads: heads))
        for (l, block) in blocks.enumerated() {
            // torch: x = x + attention(layernorm_before(x))
            block.layerNorm1(h, rows: rows, into: normed.pointer)
            var column = 0
            for projection in block.qkv {
                projection(normed.pointer, rows: rows, into: qkv.pointer + column, outStride: 3 * d)
                column += projection.outFeatures
            }
            for b in 0..<count {
                let base = qkv.pointer + b * n * 3 * d
                // softmax(q @ kᵀ / sqrt(head_dim)) @ v, per head
                Attention.attend(.init(query: base, queryStride: 3 * d, key: base + d, keyStride: 3 * d,
                                       value: base + 2 * d, valueStride: 3 * d, queryRows: n, keyRows: n,
                                       heads: heads, headDim: headDim,
                                       scale: 1 / Float(headDim).squareRoot(), causalOffset: nil),
                                 into: context.pointer + b * n * d, outStride: d, scores: scores.pointer,
                                 weights: attentions.map { $0 + (l * count + b) * heads * n * n })
            }
            block.projection(context.pointer, rows: rows, into: normed.pointer)
            Kernels.add(h, normed.pointer, count: rows * d)
            // torch: x = x + fc2(act(fc1(layernorm_after(x))))
            block.layerNorm2(h, rows: rows, into: normed.pointer)
            block.fc1(normed.pointer, rows: rows, into: mlp.pointer)
            Kernels.activate(mlp.pointer, count: rows * inner, activation)
            block.fc2(mlp.pointer, rows: rows, into: normed.pointer)
            Kernels.add(h, normed.pointer, count: rows * d)
        }
    }
}
