import Foundation

/// Bilinear resampling with the semantics of `torch.nn.functional.interpolate(mode="bilinear",
/// align_corners=False)` (no antialias): output pixel centers map to
/// src = (dst + 0.5) · (in / out) − 0.5, clamped below at 0, and the two neighbours are blended.
public enum Bilinear {
    /// Source index and weight of each output coordinate along one axis (computed in Float as torch's CPU kernel does).
    @inline(__always)
    static func axis(input: Int, output: Int) -> (lo: [Int32], hi: [Int32], frac: [Float]) {
        var lo = [Int32](repeating: 0, count: output), hi = lo
        var frac = [Float](repeating: 0, count: output)
        let scale = Float(input) / Float(output)
        for o in 0..<output {
            let src = max(scale * (Float(o) + 0.5) - 0.5, 0)
            let i0 = min(Int(src), input - 1)
            lo[o] = Int32(i0)
            hi[o] = Int32(min(i0 + 1, input - 1))
            frac[o] = src - Float(i0)
        }
        return (lo, hi, frac)
    }

    /// Resizes a row-major `inWidth`×`inHeight` plane to `outWidth`×`outHeight`.
    public static func resize(_ input: [Float], width inWidth: Int, height inHeight: Int,
                              toWidth outWidth: Int, height outHeight: Int) -> [Float] {
        precondition(input.count == inWidth * inHeight, "plane of \(input.count) values is not \(inWidth)×\(inHeight)")
        guard outWidth > 0, outHeight > 0, inWidth > 0, inHeight > 0 else { return [] }
        let xs = axis(input: inWidth, output: outWidth), ys = axis(input: inHeight, output: outHeight)
        var out = [Float](repeating: 0, count: outWidth * outHeight)
        input.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<outHeight {
                    let r0 = Int(ys.lo[oy]) * inWidth, r1 = Int(ys.hi[oy]) * inWidth
                    let h1 = ys.frac[oy], h0 = 1 - h1
                    let row = oy * outWidth
                    for ox in 0..<outWidth {
                        let x0 = Int(xs.lo[ox]), x1 = Int(xs.hi[ox])
                        let w1 = xs.frac[ox], w0 = 1 - w1
                        // torch: h0·(w0·a + w1·b) + h1·(w0·c + w1·d)
                        dst[row + ox] = h0 * (w0 * src[r0 + x0] + w1 * src[r0 + x1])
                                      + h1 * (w0 * src[r1 + x0] + w1 * src[r1 + x1])
                    }
                }
            }
        }
        return out
    }
}

public enum Connectivity: Int, Sendable {
    case four = 4
    case eight = 8
}

public enum ConnectedComponents {
    /// The largest connected component of `mask` (ties: the one met first in row-major order);
    /// nil when the mask is empty. One flood fill over a preallocated stack, no per-pixel allocation.
    public static func largest(_ mask: BitMask, connectivity: Connectivity = .eight) -> BitMask? {
        let w = mask.width, h = mask.height, n = w * h
        guard n > 0 else { return nil }
        var label = [Int32](repeating: 0, count: n)       // 0 = unvisited
        var stack = [Int32](repeating: 0, count: n)
        var bestLabel: Int32 = 0, bestSize = 0, next: Int32 = 0
        let eight = connectivity == .eight
        mask.bits.withUnsafeBufferPointer { bits in
            label.withUnsafeMutableBufferPointer { lab in
                stack.withUnsafeMutableBufferPointer { st in
                    for start in 0..<n where bits[start] != 0 && lab[start] == 0 {
                        next += 1
                        var top = 0, size = 0
                        lab[start] = next
                        st[top] = Int32(start); top += 1
                        while top > 0 {
                            top -= 1
                            let p = Int(st[top])
                            size += 1
                            let x = p % w, y = p / w
                            for dy in -1...1 {
                                let ny = y + dy
                                if ny < 0 || ny >= h { continue }
                                for dx in -1...1 {
                                    if dx == 0 && dy == 0 { continue }
                                    if !eight && dx != 0 && dy != 0 { continue }
                                    let nx = x + dx
                                    if nx < 0 || nx >= w { continue }
                                    let q = ny * w + nx
                                    if bits[q] != 0 && lab[q] == 0 {
                                        lab[q] = next
                                        st[top] = Int32(q); top += 1
                                    }
                                }
                            }
                        }
                        if size > bestSize { bestSize = size; bestLabel = next }
                    }
                }
            }
        }
        guard bestLabel > 0 else { return nil }
        var out = BitMask(width: w, height: h)
        for i in 0..<n where label[i] == bestLabel { out.bits[i] = 1 }
        return out
    }
}

/// Which words are grounded and how they are labelled.
public struct GroundingVocabulary: Sendable, Equatable {
    /// Function words and spatial words never grounded (matched on `CaptionWord.normalized`).
    public static let defaultStopwords: Set<String> = [
        "a", "an", "the", "of", "to", "left", "right", "above", "below", "and", "with", "in", "on",
        "at", "by", "for", "from", "into", "onto", "near", "next", "beside", "behind", "under", "over",
        "is", "are", "its", "it", "this", "that", "there", "some", "two", "three", "one", "top", "bottom",
        "front", "side", "up", "down", "while", "his", "her", "their", "as", "or", "be",
    ]
    public var stopwords: Set<String>
    /// When set (heads.json `object_words`), only these words are grounded.
    public var objectWords: Set<String>?
    /// When set (heads.json `attribute_words`), the label is the phrase's attribute words + the word.
    public var attributeWords: Set<String>?

    public init(stopwords: Set<String> = GroundingVocabulary.defaultStopwords,
                objectWords: Set<String>? = nil, attributeWords: Set<String>? = nil) {
        self.stopwords = stopwords
        self.objectWords = objectWords
        self.attributeWords = attributeWords
    }

    /// Whether word `w` names something to ground.
    public func isContent(_ word: CaptionWord) -> Bool {
        let w = word.normalized
        guard !w.isEmpty, w.contains(where: { $0.isLetter }) else { return false }
        if let objects = objectWords { return objects.contains(w) }
        return !stopwords.contains(w)
    }

    /// Label of `words[index]`: with attribute words, those of its phrase (the words since the
    /// previous grounded word, e.g. "a large red" before "circle") followed by the word —
    /// "red circle"; otherwise the word itself.
    public func label(of index: Int, in words: [CaptionWord]) -> String {
        let word = words[index].normalized
        guard let attributes = attributeWords else { return word }
        var phrase: [String] = []
        var j = index - 1
        while j >= 0 {
            // A phrase ends at the previous object word, or where the caption's punctuation ends a clause.
            if isContent(words[j]) && (objectWords != nil || !attributes.contains(words[j].normalized)) { break }
            if let last = words[j].text.last, last == "," || last == ";" || last == "." { break }
            let w = words[j].normalized
            if attributes.contains(w) { phrase.insert(w, at: 0) }
            j -= 1
        }
        return (phrase + [word]).joined(separator: " ")
    }
}

/// Training-free grounding from cross-attention maps alone; works with any checkpoint.
///
/// For each content word: its map → bilinear upsampling to the original image (align_corners=False)
/// → threshold at `threshold` × max → largest connected component → box (tight) and mask;
/// score = the share of the upsampled map's mass inside that component.
public struct AttentionGrounder: Sendable {
    public var vocabulary: GroundingVocabulary
    /// Fraction of the map's maximum a pixel needs to be kept.
    public var threshold: Float
    public var connectivity: Connectivity

    public init(vocabulary: GroundingVocabulary = GroundingVocabulary(), threshold: Float = 0.5,
                connectivity: Connectivity = .eight) {
        self.vocabulary = vocabulary
        self.threshold = threshold
        self.connectivity = connectivity
    }

    /// Detections for the content words of `words`, in caption order.
    public func ground(_ words: [WordMap], imageWidth: Int, imageHeight: Int) -> [Detection] {
        let captionWords = words.map(\.word)
        return words.indices.compactMap { i in
            guard vocabulary.isContent(words[i].word) else { return nil }
            guard let (mask, score) = region(words[i].map, grid: words[i].grid,
                                             width: imageWidth, height: imageHeight),
                  let box = mask.boundingBox else { return nil }
            return Detection(label: vocabulary.label(of: i, in: captionWords), word: words[i].word.normalized,
                             tokenIndex: words[i].word.tokenIndex, box: box, score: Double(score), mask: RLE(mask: mask))
        }
    }

    /// The thresholded largest component of one G×G map at image resolution, and its mass share.
    public func region(_ map: [Float], grid: Int, width: Int, height: Int) -> (BitMask, Float)? {
        guard grid > 0, map.count == grid * grid, width > 0, height > 0 else { return nil }
        let up = Bilinear.resize(map, width: grid, height: grid, toWidth: width, height: height)
        var maxv: Float = 0, total: Double = 0
        for v in up { if v > maxv { maxv = v }; total += Double(max(v, 0)) }
        guard maxv > 0, total > 0 else { return nil }
        let cut = threshold * maxv
        var kept = BitMask(width: width, height: height)
        kept.bits.withUnsafeMutableBufferPointer { b in
            for i in 0..<up.count where up[i] >= cut { b[i] = 1 }
        }
        guard let component = ConnectedComponents.largest(kept, connectivity: connectivity) else { return nil }
        var inside: Double = 0
        for i in 0..<up.count where component.bits[i] != 0 { inside += Double(max(up[i], 0)) }
        return (component, Float(inside / total))
    }
}
