import Foundation

/// `glimpse bench` batch section: caption a generated directory of images and report throughput
/// and resident memory early vs late in the run (flat means nothing accumulates).
public enum BatchBenchmark {
    /// Writes `count` simple scenes (colored rectangles on light backgrounds, 160–320 px) to `directory`.
    public static func makeImages(count: Int, in directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var rng = SplitMix64(seed: 42)
        for i in 0..<count {
            let w = 160 + Int(rng.next() % 161), h = 160 + Int(rng.next() % 161)
            var pixels = [UInt8](repeating: 0, count: w * h * 3)
            let bg = (UInt8(200 + rng.next() % 56), UInt8(200 + rng.next() % 56), UInt8(200 + rng.next() % 56))
            for p in 0..<(w * h) { pixels[3 * p] = bg.0; pixels[3 * p + 1] = bg.1; pixels[3 * p + 2] = bg.2 }
            let side = min(w, h) / 3, x0 = Int(rng.next() % UInt64(w - side)), y0 = Int(rng.next() % UInt64(h - side))
            let color = (UInt8(rng.next() % 200), UInt8(rng.next() % 200), UInt8(rng.next() % 200))
            for y in y0..<(y0 + side) { for x in x0..<(x0 + side) {
                let p = y * w + x
                pixels[3 * p] = color.0; pixels[3 * p + 1] = color.1; pixels[3 * p + 2] = color.2
            } }
            try PNGWriter.write(RGBImage(width: w, height: h, pixels: pixels),
                                to: directory.appendingPathComponent(String(format: "img-%05d.png", i)))
        }
    }

    public static func run(count: Int, modelDirectory: URL) throws -> String {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("glimpse-bench-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try makeImages(count: count, in: dir.appendingPathComponent("images"))
        let model = try CaptionModel(directory: modelDirectory)
        let pipeline = try RecordPipeline(model: model, request: CaptionRequest(parameters: model.defaults))
        let output = try BatchOutput(path: dir.appendingPathComponent("out.jsonl").path, format: .jsonl)
        let files = try FileWalker.list(dir.appendingPathComponent("images").path).images
        var early = 0.0, late = 0.0
        var earlyTime = ContinuousClock.now
        var lateStart = 0.0
        let start = ContinuousClock.now
        let summary = try BatchRunner(pipeline: pipeline).run(files: files, emit: { try output.write($0) }, progress: { done, total in
            if done == total / 10 { early = ProcessMemory.residentMiB().current; earlyTime = ContinuousClock.now }
            if done == total { late = ProcessMemory.residentMiB().current; lateStart = milliseconds(since: earlyTime) }
        })
        let total = milliseconds(since: start) / 1000
        return String(format: "%d images in %.1f s: %.1f images/s (%d failed); RSS after 10%%: %.0f MiB, at the end: %.0f MiB, peak %.0f MiB; last 90%% at %.1f images/s",
                      files.count, total, summary.imagesPerSecond, summary.failed, early, late, ProcessMemory.residentMiB().peak,
                      lateStart > 0 ? Double(files.count - files.count / 10) / (lateStart / 1000) : 0)
    }
}

/// Small deterministic generator for synthetic benchmark data.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
