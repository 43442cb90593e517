import Foundation

/// config.json / preprocessor_config.json / generation_config.json: the input is read as each of them.
/// Only `ModelError` (`PreprocessorConfigError` for the image processor) may come out; no trap.
enum FuzzConfig {
    static let emptyDirectory: URL = {
        let url = fuzzScratch.appendingPathComponent("empty")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()
    static let generationDirectory: URL = {
        let url = fuzzScratch.appendingPathComponent("generation")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let data = Data(bytes)
        guard let config = expectModelError({ try JSONConfig(data: data, file: "config.json") }) else { return }
        _ = expectModelError { try ModelFamily.detect(config) }
        // VisionEncoderDecoder sub-configs (also tried on the top level, as a bare ViT/GPT-2 config).
        for c in [config, (try? config.object("encoder")) ?? nil, (try? config.object("decoder")) ?? nil].compactMap({ $0 }) {
            if let vit = expectModelError({ try ViTConfig(c) }) {
                fuzzCheck(vit.sequenceLength >= 2 && vit.hiddenSize % vit.heads == 0, "ViTConfig accepted inconsistent sizes")
            }
            _ = expectModelError { try GPT2Config(c) }
        }
        _ = expectModelError { try BLIP.configs(config) }
        // As preprocessor_config.json (ImagePreprocessor reads a file); a small image through it when it loads.
        let preprocessorURL = fuzzScratch.appendingPathComponent("preprocessor_config.json")
        try? data.write(to: preprocessorURL)
        do {
            let preprocessor = try ImagePreprocessor(contentsOf: preprocessorURL)
            if case (let pixels, false) = preprocessor.width.multipliedReportingOverflow(by: preprocessor.height), pixels <= 4096 {
                let values = preprocessor.pixelValues(RGBImage(width: 5, height: 3, pixels: Array(repeating: 7, count: 45)))
                let expected = preprocessor.doResize ? 3 * preprocessor.width * preprocessor.height : 45
                fuzzCheck(values.count == expected, "pixel values \(values.count), expected \(expected)")
            }
        } catch is PreprocessorConfigError {
        } catch {
            fuzzCheck(false, "unexpected error type \(type(of: error)): \(error)")
        }
        if let p = expectModelError({ try GenerationParameters(modelDirectory: emptyDirectory, config: config) }) {
            _ = expectModelError { try p.validate() }
        }
        // As generation_config.json (read from a file by design).
        try? data.write(to: generationDirectory.appendingPathComponent("generation_config.json"))
        let base = JSONConfig(values: [:], file: "config.json")
        if let p = expectModelError({ try GenerationParameters(modelDirectory: generationDirectory, config: base) }) {
            _ = expectModelError { try p.validate() }
            _ = p.resolvedMaxLength(promptLength: 1)
            _ = p.outputFillTokenId
        }
    }

    private static func expectModelError<T>(_ body: () throws -> T) -> T? {
        do { return try body() } catch is ModelError { return nil } catch {
            fuzzCheck(false, "unexpected error type \(type(of: error)): \(error)")
            return nil
        }
    }
}
