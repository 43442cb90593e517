import CImageCodecs
import Foundation

/// Decode + preprocess timing on a generated 12 MP (4000 x 3000) photo-sized image, as
/// JPEG (quality 90, 4:2:0) and PNG. A program for `make bench`, never a test.
public enum ImageBenchmark {
    /// Runs the benchmark and returns a small report, one line per stage.
    public static func run(width: Int = 4000, height: Int = 3000, iterations: Int = 5) throws -> String {
        let image = syntheticPhoto(width: width, height: height)
        let jpeg = try encodeJPEG(image, quality: 90)
        let png = try PNGWriter.encode(pixels: image.pixels, width: width, height: height, channels: 3)
        let preprocessor = ImagePreprocessor() // ViT: 224 x 224 bilinear, mean/std 0.5

        var lines = ["image benchmark: \(width)x\(height) (\(width * height / 1_000_000) MP) -> 224x224 bilinear, "
                     + "median of \(iterations) runs; wall ms (process CPU ms, all threads: a busy machine inflates wall time, not this)"]
        for (format, data) in [("jpeg", jpeg), ("png", png)] {
            var decodeTimes: [Clock] = [], preprocessTimes: [Clock] = []
            for _ in 0..<(iterations + 1) { // the first run warms caches and is dropped
                let start = Clock.now()
                let decoded = try ImageDecoder.decode(data: data, name: "benchmark.\(format)")
                let middle = Clock.now()
                let values = preprocessor.pixelValues(decoded.image)
                let end = Clock.now()
                precondition(values.count == 3 * 224 * 224)
                decodeTimes.append(middle - start)
                preprocessTimes.append(end - middle)
            }
            let decode = Clock.median(decodeTimes.dropFirst()), preprocess = Clock.median(preprocessTimes.dropFirst())
            lines.append(String(format: "%@ (%.1f MB): decode %.1f (%.1f), preprocess %.1f (%.1f), total %.1f (%.1f)",
                                format, Double(data.count) / 1e6, decode.wall, decode.cpu, preprocess.wall,
                                preprocess.cpu, decode.wall + preprocess.wall, decode.cpu + preprocess.cpu))
        }
        return lines.joined(separator: "\n")
    }

    /// Smooth gradients with some texture, so the codecs see something photo-like.
    static func syntheticPhoto(width: Int, height: Int) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        var state: UInt32 = 12345
        for y in 0..<height {
            for x in 0..<width {
                state = state &* 1_664_525 &+ 1_013_904_223
                let noise = Int(state >> 28) - 8
                let i = (y * width + x) * 3
                pixels[i] = UInt8(clamping: x * 255 / width + noise)
                pixels[i + 1] = UInt8(clamping: y * 255 / height + noise)
                pixels[i + 2] = UInt8(clamping: ((x / 40 + y / 40) % 2) * 120 + 60 + noise)
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    static func encodeJPEG(_ image: RGBImage, quality: Int) throws -> Data {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = image.pixels.withUnsafeBufferPointer {
            glimpse_jpeg_encode($0.baseAddress, UInt32(image.width), UInt32(image.height), 3, Int32(quality), &out, &size)
        }
        defer { glimpse_free(out) }
        guard status == Int32(GLIMPSE_OK), let bytes = out else {
            throw ImageError.corrupt(file: "benchmark.jpg", detail: "JPEG encoding failed")
        }
        return Data(bytes: bytes, count: size)
    }

    /// Wall-clock and thread CPU time in milliseconds.
    private struct Clock {
        var wall: Double
        var cpu: Double

        static func now() -> Clock {
            var wall = timespec(), cpu = timespec()
            clock_gettime(CLOCK_MONOTONIC, &wall)
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu)
            return Clock(wall: Double(wall.tv_sec) * 1e3 + Double(wall.tv_nsec) / 1e6,
                         cpu: Double(cpu.tv_sec) * 1e3 + Double(cpu.tv_nsec) / 1e6)
        }

        static func - (a: Clock, b: Clock) -> Clock { Clock(wall: a.wall - b.wall, cpu: a.cpu - b.cpu) }

        static func median<S: Sequence>(_ samples: S) -> Clock where S.Element == Clock {
            let wall = samples.map(\.wall).sorted(), cpu = samples.map(\.cpu).sorted()
            guard !wall.isEmpty else { return Clock(wall: 0, cpu: 0) }
            return Clock(wall: wall[wall.count / 2], cpu: cpu[cpu.count / 2])
        }
    }
}
