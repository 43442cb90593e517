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
        var bandwidth = 0.0
        if wants("kernels") {
            print("\n## sgemm (C = A·Bᵀ), best of 5")
            print(String(format: "%-18@ %12@ %12@", "M×N×K" as NSString, "Glimpse" as NSString, "OpenBLAS" as NSString))
            for f in KernelBenchmark.gemm() {
                print(String(format: "%-18@ %8.1f GF/s %8.1f GF/s", "\(f.m)×\(f.n)×\(f.k)" as NSString, f.glimpseGFLOPS, f.openBLASGFLOPS))
            }
            bandwidth = KernelBenchmark.copyBandwidth()
            print(String(format: "\nmemory copy bandwidth: %.1f GB/s (read + write)", bandwidth))
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
            if bandwidth == 0 { bandwidth = KernelBenchmark.copyBandwidth() }
            for dir in dirs {
                let loadStart = Date()
                guard let m = try? CaptionModel(directory: URL(fileURLWithPath: dir)) else {
                    print("\n## model \(dir): cannot load, skipped"); continue
                }
                let load = Date().timeIntervalSince(loadStart) * 1000
                let f = try ModelBenchmark.run(model: m, newTokens: tokens, beamWidth: beams)
                let floor = Double(f.stepWeightBytes) / (bandwidth * 1e9) * 1000
                print("\n## model \(dir) (\(m.family.rawValue)), \(tokens) new tokens, median of 3")
                print(String(format: "load %.1f ms | encoder %.1f ms | greedy %.1f ms (%.2f ms/step) | beam-%d %.1f ms (%.2f ms/step)",
                             load, f.encoderMilliseconds, f.greedyMilliseconds, f.greedyStepMilliseconds, beams, f.beamMilliseconds, f.beamStepMilliseconds))
                print(String(format: "beam-%d for %d images decoded together: %.1f ms per image (%.2fx one image alone)",
                             beams, f.batchImages, f.batchedBeamMillisecondsPerImage,
                             f.beamMilliseconds > 0 ? f.batchedBeamMillisecondsPerImage / f.beamMilliseconds : 0))
                print(String(format: "decoder step floor: %.1f MB of weights / %.1f GB/s = %.2f ms; greedy step is %.2fx the floor",
                             Double(f.stepWeightBytes) / 1e6, bandwidth, floor, floor > 0 ? f.greedyStepMilliseconds / floor : 0))
                print(String(format: "peak RSS so far: %.0f MiB", ProcessMemory.residentMiB().peak))
            }
        }
        if wants("batch") && batchImages > 0 {
            print("\n## batch (\(batchImages) generated images, models/default)")
            print(try BatchBenchmark.run(count: batchImages, modelDirectory: URL(fileURLWithPath: model.first ?? "models/default")))
        }
    }
}
