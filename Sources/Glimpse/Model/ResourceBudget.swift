import Foundation

/// What a run's options ask of memory, estimated from the model's sizes before anything is
/// allocated: `--beams 1000 --max-tokens 30000` on a large decoder is refused with the figure
/// instead of aborting in `malloc` after gigabytes.
extension CaptionModel {
    /// Bytes a run may allocate: half of physical memory (the rest is the OS's, the weights' and other work's).
    public static var defaultMemoryBudget: Double { Double(ProcessInfo.processInfo.physicalMemory) / 2 }

    /// Estimated peak bytes of the per-run buffers (weights excluded, they are mapped): the decoder's
    /// KV caches and logits for `beamWidth` beams over the resolved length, the kept cross-attention
    /// maps when `captureAttention`, and `encoderBatch` images through the encoder. In Double, so no
    /// product can overflow.
    public func memoryEstimate(_ p: GenerationParameters, captureAttention: Bool, encoderBatch: Int = 1) -> Double {
        let beams = Double(p.beamWidth)
        let length = Double(min(p.resolvedMaxLength(promptLength: 1), decoder.maxPositions))
        let e = Double(decoder.hiddenSize), layers = Double(decoder.layerCount), vocab = Double(decoder.vocabularySize)
        let rows = Double(encoder.sequenceLength), h = Double(encoder.hiddenSize)
        var floats = 2 * layers * beams * length * e       // self-attention K and V caches
        floats += 2 * beams * length * e                   // reorder scratch
        floats += layers * rows * 2 * e                    // cross-attention K/V of one image
        floats += 3 * beams * vocab                        // logits, log-probs, candidate rows
        if captureAttention { floats += length * beams * layers * Double(decoder.headCount) * rows }
        let side = Double(encoder.imageSize), encoderHeads = max(1, h / 64)
        floats += Double(encoderBatch) * (3 * side * side + rows * h * 8 + encoderHeads * rows * rows)
        return 4 * floats
    }

    /// Throws when `memoryEstimate` is over `budget` bytes, naming the options to lower.
    public func checkResources(_ p: GenerationParameters, captureAttention: Bool, encoderBatch: Int = 1,
                               budget: Double = CaptionModel.defaultMemoryBudget) throws {
        let need = memoryEstimate(p, captureAttention: captureAttention, encoderBatch: encoderBatch)
        guard need <= budget else {
            func gib(_ bytes: Double) -> String { String(format: "%.1f GiB", bytes / 1_073_741_824) }
            throw ModelError.invalidInput("num_beams \(p.beamWidth) over \(min(p.resolvedMaxLength(promptLength: 1), decoder.maxPositions)) positions"
                + (encoderBatch > 1 ? " with an encoder batch of \(encoderBatch)" : "")
                + " needs about \(gib(need)), over the memory budget of \(gib(budget)) (half of this machine's memory); "
                + "lower --beams, --max-tokens or --encoder-batch")
        }
    }
}
