import Foundation

/// Version-2 heads' mask refinement from the image's own pixels (tools/train_heads.py `refined_mask`,
/// a CondInst-style dynamic filter): the heads write, per object, the weights θ of a tiny MLP that
/// scores every pixel around the detection box. The coarse M×M mask cannot follow a shape's edge
/// inside a cell; the pixels can.
///
/// For each pixel (px, py) of the box (x, y, w, h) grown by max(2, (size + 2) / 4) pixels a side
/// (inside the image), p = (r, g, b, u, v, c):
///
///     r, g, b = value / 127.5 − 1
///     u = (2·px + 1 − 2·x − w) / w,   v = (2·py + 1 − 2·y − h) / h            (±1 at the box's edges)
///     c = clamp(coarse, −10, 10) / 5, coarse = the M×M logits, bilinear at
///         sx = clamp((px + 0.5 − x)·M / w − 0.5, 0, M − 1) and sy likewise
///         (align_corners=False inside the box, the edge value beyond it)
///     logit = w2 · relu(W1·p + b1) + b2,   θ = [W1 (P×6 row-major), b1 (P), w2 (P), b2]
///
/// A pixel is in the mask where logit > 0.
public struct PixelRefinement: Sendable, Equatable {
    /// Hidden size of the controller refine.fc1 (x → θ).
    var controllerHiddenSize: Int
    /// P, hidden size of the per-pixel MLP.
    var hiddenSize: Int

    static let inputCount = 6

    /// Images up to this many pixels are refined; larger ones keep the coarse masks and boxes, in every
    /// command alike, so a batch holds at most this much decode per queued image (24 MiB).
    public static let maxImagePixels = 8 << 20

    /// Whether an image of this size is refined.
    public static func refines(width: Int, height: Int) -> Bool { width * height <= maxImagePixels }

    /// Length of θ.
    var parameterCount: Int { hiddenSize * Self.inputCount + 2 * hiddenSize + 1 }

    /// [x0, x1) × [y0, y1): the pixels scored around `box`.
    static func region(around box: PixelBox, width: Int, height: Int) -> (x: Range<Int>, y: Range<Int>) {
        let padX = max(2, (box.width + 2) / 4), padY = max(2, (box.height + 2) / 4)
        let x0 = max(0, box.x - padX), x1 = min(width, box.x + box.width + padX)
        let y0 = max(0, box.y - padY), y1 = min(height, box.y + box.height + padY)
        return (x0..<max(x0, x1), y0..<max(y0, y1))
    }

    /// Bilinear taps of pixel coordinate `p` along an axis where the box starts at `origin` and is
    /// `size` pixels long, over `m` cells.
    private static func taps(_ p: Int, origin: Int, size: Int, m: Int) -> (Int, Int, Float, Float) {
        let s = min(max((Float(p) + 0.5 - Float(origin)) * Float(m) / Float(size) - 0.5, 0), Float(m - 1))
        let i0 = Int(s.rounded(.down))
        let l1 = s - Float(i0)
        return (i0, min(i0 + 1, m - 1), 1 - l1, l1)
    }

    /// The refined mask of one object (image-sized; nothing set outside the region).
    /// - Parameters:
    ///   - box: the detection box; `coarse`: its M×M logits; `weights`: θ of this object.
    func mask(image: RGBImage, box: PixelBox, coarse: [Float], maskSize m: Int, weights theta: [Float]) -> BitMask {
        var mask = BitMask(width: image.width, height: image.height)
        let (xs, ys) = Self.region(around: box, width: image.width, height: image.height)
        guard box.width > 0, box.height > 0, coarse.count == m * m, theta.count == parameterCount,
              image.hasPixels, !xs.isEmpty, !ys.isEmpty else { return mask }
        let hidden = hiddenSize, k = Self.inputCount
        let columnTaps = xs.map { Self.taps($0, origin: box.x, size: box.width, m: m) }
        let us = xs.map { Float(2 * $0 + 1 - 2 * box.x - box.width) / Float(box.width) }
        theta.withUnsafeBufferPointer { t in
            guard let w1 = t.baseAddress else { return }
            let b1 = w1 + hidden * k, w2 = b1 + hidden, b2 = w2[hidden]
            for py in ys {
                let (y0, y1, wy0, wy1) = Self.taps(py, origin: box.y, size: box.height, m: m)
                let v = Float(2 * py + 1 - 2 * box.y - box.height) / Float(box.height)
                for (j, px) in xs.enumerated() {
                    let (x0, x1, wx0, wx1) = columnTaps[j]
                    let top = wx0 * coarse[y0 * m + x0] + wx1 * coarse[y0 * m + x1]
                    let bottom = wx0 * coarse[y1 * m + x0] + wx1 * coarse[y1 * m + x1]
                    let c = min(max(wy0 * top + wy1 * bottom, -10), 10) / 5
                    let i = (py * image.width + px) * 3
                    let p: (Float, Float, Float, Float, Float, Float) = (
                        Float(image.pixels[i]) / 127.5 - 1, Float(image.pixels[i + 1]) / 127.5 - 1,
                        Float(image.pixels[i + 2]) / 127.5 - 1, us[j], v, c)
                    var logit = b2
                    for o in 0..<hidden {
                        let w = w1 + o * k
                        let a = b1[o] + (w[0] * p.0 + w[1] * p.1 + w[2] * p.2 + w[3] * p.3 + w[4] * p.4 + w[5] * p.5)
                        logit += w2[o] * max(a, 0)
                    }
                    if logit > 0 { mask.bits[py * image.width + px] = 1 }
                }
            }
        }
        return mask
    }
}
