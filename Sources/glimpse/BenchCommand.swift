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

    func wants(_ section: String) -> Bool { only.isEmpty || only.contains(section) }

    func run() throws {
        print("glimpse bench — OpenBLAS core \(BLAS.coreName), \(BLAS.threadCount) threads, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        for line in KernelReport.lines() { print(line) }
        var bandwidth = 0.0
        if wants("kernels") {
            bandwidth = KernelBenchmark.readBandwidth()
            print(String(format: "\nread-only memory bandwidth: %.1f GB/s (loads only, all threads); copy: %.1f GB/s (read + write)",
                         bandwidth, KernelBenchmark.copyBandwidth()))
            print("\n## encoder-size sgemm (C = A·Bᵀ) through the door vs OpenBLAS directly, best of 5")
            print(String(format: "%-18@ %12@ %12@", "M×N×K" as NSString, "Glimpse" as NSString, "OpenBLAS" as NSString))
            for f in KernelBenchmark.gemm() {
                print(String(format: "%-18@ %8.1f GF/s %8.1f GF/s", "\(f.m)×\(f.n)×\(f.k)" as NSString, f.glimpseGFLOPS, f.openBLASGFLOPS))
            }
            print("\n## decode-step products: ms (GFLOPS); floor = weight bytes / read bandwidth; best of 3")
            print("layout: [in,out] = GPT-2 Conv1D, [out,in] = nn.Linear / lm_head; door = what fp32 runs at this M")
            print(String(format: "%-22@ %-15@ %-15@ %-15@ %-15@ %-21@ %@", "M×N×K layout" as NSString, "OpenBLAS fp32" as NSString,
                         "Glimpse fp32" as NSString, "Glimpse bf16" as NSString, "Glimpse int8" as NSString,
                         "floor fp32/bf16/int8" as NSString, "door" as NSString))
            for f in KernelBenchmark.products() {
                let weights = Double(f.n * f.k)
                let floors = [4.0, 2.0, 1.0].map { weights * $0 / (bandwidth * 1e9) * 1000 }
                func cell(_ ms: Double) -> NSString { String(format: "%.3f (%.0f)", ms, f.gflops(ms)) as NSString }
                print(String(format: "%-22@ %-15@ %-15@ %-15@ %-15@ %-21@ %@",
                             "\(f.m)×\(f.n)×\(f.k) \(f.layout == .inputMajor ? "[in,out]" : "[out,in]")" as NSString,
                             cell(f.openBLAS), cell(f.fp32), cell(f.bf16), cell(f.int8),
                             String(format: "%.3f/%.3f/%.3f", floors[0], floors[1], floors[2]) as NSString, f.doorPath as NSString))
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
                print("\n## model \(dir) (\(m.family.rawValue)), \(tokens) new tokens, median of 3")
                print(String(format: "load %.1f ms | encoder %.1f ms | greedy %.1f ms (%.2f ms/step) | beam-%d %.1f ms (%.2f ms/step)",
                             load, f.encoderMilliseconds, f.greedyMilliseconds, f.greedyStepMilliseconds, beams, f.beamMilliseconds, f.beamStepMilliseconds))
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
