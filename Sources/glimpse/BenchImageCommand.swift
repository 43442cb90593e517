import ArgumentParser
import Glimpse

/// `glimpse bench-image`: decode + preprocess timing on a generated 12 MP image (for `make bench`).
struct BenchImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-image",
        abstract: "Time JPEG/PNG decode and ViT preprocessing of a generated 12 MP image.",
        shouldDisplay: false
    )

    @Option(help: "Runs per format (the median is reported).")
    var iterations = 5

    func run() throws {
        print(try ImageBenchmark.run(iterations: max(1, iterations)))
    }
}
