import Foundation

/// Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", 2020): how much
/// each input row reaches an output row through every layer, counting the residual path. Per layer
/// Â = ½·(mean over heads of A) + ½·I with rows renormalized; rollout = Â_L ⋯ Â_1.
public enum AttentionRollout {
    /// The rollout row of `row` (the class row of a ViT: 0) over the patches, a G×G map (row-major)
    /// from one image's attention probabilities, each layer's [heads, n, n] `layerStride` floats after
    /// the one before (heads·n·n for one image's layers alone). Only that row is needed, so it is
    /// carried down from the last layer as a vector: O(L·n²), not O(L·n³).
    public static func map(attentions: UnsafePointer<Float>, layers: Int, heads: Int, length n: Int,
                           layerStride: Int? = nil, row: Int = 0, patches: PatchRows) -> [Float] {
        precondition(row >= 0 && row < n && patches.rows.upperBound <= n)
        var vector = [Double](repeating: 0, count: n), next = [Double](repeating: 0, count: n)
        var layerRow = [Double](repeating: 0, count: n)
        vector[row] = 1
        for l in stride(from: layers - 1, through: 0, by: -1) {
            for j in 0..<n { next[j] = 0 }
            let a = attentions + l * (layerStride ?? heads * n * n)
            for i in 0..<n where vector[i] != 0 {
                // Row i of Â: the head mean, plus the identity, renormalized.
                var sum = 0.0
                for j in 0..<n {
                    var mean = 0.0
                    for h in 0..<heads { mean += Double(a[(h * n + i) * n + j]) }
                    layerRow[j] = 0.5 * mean / Double(heads) + (i == j ? 0.5 : 0)
                    sum += layerRow[j]
                }
                let weight = sum > 0 ? vector[i] / sum : 0
                for j in 0..<n { next[j] += weight * layerRow[j] }
            }
            swap(&vector, &next)
        }
        return patches.rows.map { Float(vector[$0]) }
    }
}
