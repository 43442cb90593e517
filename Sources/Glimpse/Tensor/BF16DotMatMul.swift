import CGlimpseKernels
import Dispatch
import Synchronization

/// Large products (more rows than `SmallMatMul` takes: encoder passes, cross-attention keys and
/// values, prompt prefill, wide batches) with bf16 or int8 weights, on the CPU's AVX512_BF16 dot
/// products (`Sources/CGlimpseKernels/matmul_bf16dot.c`): the weights are read in place from the
/// model file ([in, out] Conv1D columns gathered a 12-column tile at a time), the activations
/// rounded to bf16 and packed once per product, sums kept in fp32. About twice OpenBLAS's fp32 rate
/// on the same core, with nothing to pack at load time.
enum BF16DotMatMul {
    /// Whether the CPU has the instructions (CPUID).
    static var isSupported: Bool { gk_bf16dot_supported() != 0 }

    /// Whether the door sends this product here.
    static func handles(_ w: WeightMatrix) -> Bool {
        w.element != .f32 && OneDNNMatMul.engine(.reduced) == .glimpse
    }

    /// out = x · Wᵀ (+ out when `accumulate`), output columns split over the idle cores in
    /// multiples of the kernel's 12-column tile.
    static func run(_ x: UnsafePointer<Float>, rows: Int, lda: Int, weight w: WeightMatrix,
                    into out: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        let n = w.outFeatures, k = w.inFeatures
        let scratch = packedScratch.withLock { $0.popLast() } ?? Scratch()
        defer { packedScratch.withLock { $0.append(scratch) } }
        let tile = 12
        let workers = rows * n * k >= 1 << 20 ? min(SmallMatMul.idleThreads, max(1, n / tile)) : 1
        // One buffer: the packed activations (even count), then a staging tile per worker.
        let count = Int(gk_bf16dot_packed_count(Int32(rows), Int32(k))), stage = Int(gk_bf16dot_stage_count(Int32(k)))
        let packed = UnsafeMutableRawPointer(scratch.reserve((count + workers * stage + 1) / 2))
            .assumingMemoryBound(to: UInt16.self)
        gk_bf16dot_pack(Int32(rows), Int32(k), x, lda, packed)
        let dtype = w.element == .bf16 ? Int32(GK_BF16) : Int32(GK_I8)
        let form = w.layout == .outputMajor ? Int32(GK_FORM_NK) : Int32(GK_FORM_KN)
        let scales = w.scales.map { UnsafePointer($0.data) }
        let acc: Int32 = accumulate ? 1 : 0
        if workers == 1 {
            gk_bf16dot_matmul(dtype, form, Int32(rows), 0, Int32(n), Int32(k), packed, w.base, w.rowStride, scales, out, ldc,
                              acc, packed + count)
            return
        }
        Parallel.forEach(iterations: workers) { t in
            let lo = n * t / workers / tile * tile, hi = t == workers - 1 ? n : n * (t + 1) / workers / tile * tile
            if lo < hi {
                gk_bf16dot_matmul(dtype, form, Int32(rows), Int32(lo), Int32(hi), Int32(k), packed, w.base, w.rowStride,
                                  scales, out, ldc, acc, packed + count + t * stage)
            }
        }
    }

    /// Packed-activation buffers, kept between calls: one for each product running at the same time.
    private static let packedScratch = Mutex<[Scratch]>([])
}
