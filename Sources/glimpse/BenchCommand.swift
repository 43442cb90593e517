import ArgumentParser
import Foundation
import Glimpse

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure kernels, image decoding, the model and batch throughput (a benchmark, not a test).")

    @Option(name: .long, parsing: .upToNextOption, help: "Model directories to time (default: models/default, plus .bench/vit-gpt2 when present).")
    var model: [String] = []
    @Option(name: .long, help: "New tokens per caption (min = max).")
    var tokens = 16
    @Option(name: .long, help: "Beam width for the beam-search figure.")
    var beams = 3
    @Option(name: .long, help: "Images in the batch benchmark (0 to skip).")
    var batchImages = 1000
    @Option(name: .long, parsing: .upToNextOption, help: "Sections to run: kernels, image, model, batch (default: all).")
    var only: [String] = []

    /// Left-aligns `text` in `width` columns (String(format:) cannot pad %@ on Linux).
    func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    func wants(_ section: String) -> Bool { only.isEmpty || only.contains(section) }

    func run() throws {
        print("glimpse bench — OpenBLAS core \(BLAS.coreName), \(BLAS.threadCount) threads, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        for line in KernelReport.lines() { print(line) }
        var bandwidth = 0.0
        if wants("kernels") {
            bandwidth = KernelBenchmark.readBandwidth()
            print(String(format: "\nread-only memory bandwidth: %.1f GB/s (loads only, all threads); copy: %.1f GB/s (read + write)",
                         bandwidth, KernelBenchmark.copyBandwidth()))
            print("\n## encoder-size products (C = A·Bᵀ): fp32 through the door (\(OneDNNMatMul.engine(.fp32).rawValue))"
                  + " and OpenBLAS directly (one thread, as the door calls it on each of its row shares); bf16 weights through the door (\(OneDNNMatMul.engine(.reduced).rawValue)); best of 5")
            print(pad("M×N×K", 18) + pad("Glimpse fp32", 15) + pad("OpenBLAS fp32", 15) + "Glimpse bf16 weights")
            for f in KernelBenchmark.gemm() {
                print(pad("\(f.m)×\(f.n)×\(f.k)", 18) + pad(String(format: "%.1f GF/s", f.glimpseGFLOPS), 15)
                      + pad(String(format: "%.1f GF/s", f.openBLASGFLOPS), 15) + String(format: "%.1f GF/s", f.bf16GFLOPS))
            }
            print("\n## decode-step products, weights read from memory (not cache): ms (GFLOPS);"
                  + " floor = weight bytes / read bandwidth; best of 3")
            print("layout: [in,out] = GPT-2 Conv1D, [out,in] = nn.Linear / lm_head; OpenBLAS one thread; door = what fp32 runs at this M")
            print(pad("M×N×K layout", 24) + pad("OpenBLAS fp32", 15) + pad("Glimpse fp32", 15) + pad("Glimpse bf16", 15)
                  + pad("Glimpse int8", 15) + pad("floor fp32/bf16/int8", 22) + "door")
            for f in KernelBenchmark.products() {
                let weights = Double(f.n * f.k)
                let floors = [4.0, 2.0, 1.0].map { weights * $0 / (bandwidth * 1e9) * 1000 }
                func cell(_ ms: Double) -> String { pad(String(format: "%.3f (%.0f)", ms, f.gflops(ms)), 15) }
                print(pad("\(f.m)×\(f.n)×\(f.k) \(f.layout == .inputMajor ? "[in,out]" : "[out,in]")", 24)
                      + cell(f.openBLAS) + cell(f.fp32) + cell(f.bf16) + cell(f.int8)
                      + pad(String(format: "%.3f/%.3f/%.3f", floors[0], floors[1], floors[2]), 22) + f.doorPath)
            }
        }
        if wants("image") {
            print("\n## image decode + preprocess (12 MP)")
            print(try ImageBenchmark.run())
        }
        if wants("model") {
            var dirs = model
            if dirs.isEmpty {
                dirs = ["models/default"]
                if FileManager.default.fileExists(atPath: ".bench/vit-gpt2/config.json") { dirs.append(".bench/vit-gpt2") }
            }
            if bandwidth == 0 { bandwidth = KernelBenchmark.readBandwidth() }
            for dir in dirs {
                let loadStart = Date()
                guard let m = try? CaptionModel(directory: URL(fileURLWithPath: dir)) else {
                    print("\n## model \(dir): cannot load, skipped"); continue
                }
                let load = Date().timeIntervalSince(loadStart) * 1000
                let f = try ModelBenchmark.run(model: m, newTokens: tokens, beamWidth: beams)
                let stepBytes = Double(f.stepWeightBytes) * m.decoderWeightByteRatio
                let floor = stepBytes / (bandwidth * 1e9) * 1000
                print("\n## model \(dir) (\(m.family.name)), \(tokens) new tokens, median of 3")
                print(String(format: "load %.1f ms | encoder %.1f ms | greedy %.1f ms (%.2f ms/step) | beam-%d %.1f ms (%.2f ms/step)",
                             load, f.encoderMilliseconds, f.greedyMilliseconds, f.greedyStepMilliseconds, beams, f.beamMilliseconds, f.beamStepMilliseconds))
                print(String(format: "per caption before the steps (cross-attention keys/values, prompt): greedy %.1f ms, beam-%d %.1f ms; a step = (%d-token caption - 1-token caption) / %d",
                             f.greedySetupMilliseconds, beams, f.beamSetupMilliseconds, tokens, max(1, tokens - 1)))
                print(String(format: "beam-%d for %d images decoded together: %.1f ms per image (%.2fx one image alone)",
                             beams, f.batchImages, f.batchedBeamMillisecondsPerImage,
                             f.beamMilliseconds > 0 ? f.batchedBeamMillisecondsPerImage / f.beamMilliseconds : 0))
                print(String(format: "decoder step floor: %.1f MB of weights (%@) / %.1f GB/s read = %.2f ms; greedy step %.2fx, beam-%d step %.2fx the floor",
                             stepBytes / 1e6, m.weightElements as NSString, bandwidth, floor, floor > 0 ? f.greedyStepMilliseconds / floor : 0,
                             beams, floor > 0 ? f.beamStepMilliseconds / floor : 0))
                print(String(format: "peak RSS so far: %.0f MiB", ProcessMemory.residentMiB().peak))
            }
        }
        if wants("batch") && batchImages > 0 {
            print("\n## batch (\(batchImages) generated images, models/default)")
            print(try BatchBenchmark.run(count: batchImages, modelDirectory: URL(fileURLWithPath: model.first ?? "models/default")))
        }
    }
}
