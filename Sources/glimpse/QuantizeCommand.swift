import ArgumentParser
import Foundation
import Glimpse

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a copy of a model with bf16 or int8 (per-output-channel) weight matrices.",
        discussion: """
        OUT_DIR must not exist or be empty. The layer weight matrices (every linear layer and the \
        lm_head) are stored as BF16, or as I8 with an F32 `<name>_scale` per output channel; every \
        other tensor and file is copied unchanged. See docs/quantization.md.
        """)

    @Argument(help: "The model directory to quantize (fp32 or fp16 weights).")
    var modelDir: String
    @Argument(help: "The directory to create.")
    var outDir: String
    @Option(name: .long, help: "bf16 or int8.")
    var dtype: String

    func run() throws {
        guard let target = Quantizer.Target(rawValue: dtype.lowercased()) else {
            throw ValidationError("--dtype must be bf16 or int8 (got '\(dtype)')")
        }
        let source = URL(fileURLWithPath: modelDir), output = URL(fileURLWithPath: outDir)
        guard source.standardizedFileURL.path != output.standardizedFileURL.path else {
            throw ValidationError("OUT_DIR must differ from MODEL_DIR")
        }
        let model: CaptionModel
        do { model = try CaptionModel(directory: source) } catch {
            printError("glimpse: cannot load model \(source.path): \(error)")
            throw ExitCode(2)
        }
        do {
            let s = try Quantizer.quantize(model: model, to: output, target: target)
            print(String(format: "%@: %d weight matrices as %@, model.safetensors %.1f MB -> %.1f MB; copied %@",
                         output.path, s.matrices, target.rawValue, Double(s.inputBytes) / 1e6, Double(s.outputBytes) / 1e6,
                         s.copiedFiles.joined(separator: ", ")))
        } catch {
            printError("glimpse: quantize: \(error)")
            throw ExitCode(1)
        }
    }
}
