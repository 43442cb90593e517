import CGlimpseKernels
import Foundation

/// `glimpse quantize`: a model directory whose layer weight matrices are stored as bf16, or as int8
/// with one fp32 scale per output channel (docs/quantization.md). Everything else (embeddings
/// other than a tied lm_head, norms, biases, the patch embedding, heads, tokenizer, configs) is
/// copied unchanged, so every command loads the result like any other model directory.
public enum Quantizer {
    public enum Target: String, Sendable, CaseIterable {
        case bf16, int8
    }

    public struct Summary: Sendable {
        public var matrices: Int
        public var inputBytes: Int
        public var outputBytes: Int
        public var copiedFiles: [String]
    }

    public enum QuantizeError: Error, CustomStringConvertible {
        case outputNotEmpty(String)
        case alreadyQuantized(file: String, tensor: String, dtype: String)
        case io(String, String)

        public var description: String {
            switch self {
            case let .outputNotEmpty(path):
                return "\(path): output directory exists and is not empty (refusing to write into a directory glimpse did not create)"
            case let .alreadyQuantized(file, tensor, dtype):
                return "\(file): tensor '\(tensor)' is already \(dtype); quantize an fp32/fp16 checkpoint"
            case let .io(path, reason):
                return "\(path): \(reason)"
            }
        }
    }

    /// int8, symmetric, per output channel: scale = max|w| / 127 over the channel, q = round(w / scale).
    /// `alongRows`: channels are rows of [rows, cols] (nn.Linear) or columns (Conv1D).
    public static func int8(_ w: UnsafePointer<Float>, rows: Int, cols: Int, alongRows: Bool) -> (q: [Int8], scales: [Float]) {
        let channels = alongRows ? rows : cols
        var peak = [Float](repeating: 0, count: channels)
        for r in 0..<rows {
            for c in 0..<cols {
                let ch = alongRows ? r : c
                peak[ch] = max(peak[ch], abs(w[r * cols + c]))
            }
        }
        let scales = peak.map { $0 > 0 ? $0 / 127 : 1 }
        var q = [Int8](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for c in 0..<cols {
                let v = (w[r * cols + c] / scales[alongRows ? r : c]).rounded(.toNearestOrEven)
                q[r * cols + c] = Int8(max(-127, min(127, v)))
            }
        }
        return (q, scales)
    }

    /// Writes the quantized copy of `model` (loaded from `source`) into `output`, which must not exist
    /// or be an empty directory. Files are written under temporary names and renamed when complete.
    @discardableResult
    public static func quantize(model: CaptionModel, to output: URL, target: Target) throws -> Summary {
        let source = model.directory
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: output.path, isDirectory: &isDir) {
            let contents = (try? fm.contentsOfDirectory(atPath: output.path)) ?? ["?"]
            guard isDir.boolValue, contents.isEmpty else { throw QuantizeError.outputNotEmpty(output.path) }
        } else {
            do { try fm.createDirectory(at: output, withIntermediateDirectories: true) } catch {
                throw QuantizeError.io(output.path, "cannot create directory: \(error.localizedDescription)")
            }
        }
        let weightsURL = source.appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(url: weightsURL)
        var entries: [SafeTensorsWriter.Entry] = []
        var matrices = 0
        for name in file.tensorNames {
            guard let info = file.info(name) else { continue }
            if let layout = model.matrixTensors[name] {
                guard info.dtype == .f32 || info.dtype == .f16 else {
                    throw QuantizeError.alreadyQuantized(file: weightsURL.path, tensor: name, dtype: info.dtype.rawValue)
                }
                let values = try file.tensor(name)
                matrices += 1
                switch target {
                case .bf16:
                    var bits = [UInt16](repeating: 0, count: values.count)
                    gk_f32_to_bf16(values.data, &bits, values.count)
                    entries.append(.init(name: name, dtype: .bf16, shape: info.shape, bytes: bits.withUnsafeBytes { Data($0) }))
                case .int8:
                    let alongRows = layout == .outputMajor
                    let (q, scales) = int8(values.data, rows: info.shape[0], cols: info.shape[1], alongRows: alongRows)
                    entries.append(.init(name: name, dtype: .i8, shape: info.shape, bytes: q.withUnsafeBytes { Data($0) }))
                    entries.append(.init(name: name + "_scale", shape: alongRows ? [info.shape[0], 1] : [1, info.shape[1]], values: scales))
                }
            } else if let bytes = file.rawBytes(name) {
                entries.append(.init(name: name, dtype: info.dtype, shape: info.shape, bytes: Data(bytes)))
            } else {
                entries.append(.init(name: name, tensor: try file.tensor(name)))
            }
        }
        var metadata = file.metadata
        metadata["glimpse.quantized"] = target.rawValue
        metadata["format"] = metadata["format"] ?? "pt"
        let data = try SafeTensorsWriter.encode(entries, metadata: metadata, file: output.appendingPathComponent("model.safetensors").path)
        try write(data, to: output.appendingPathComponent("model.safetensors"))
        // Everything else in the directory, unchanged (configs, tokenizer, heads, model card).
        var copied: [String] = []
        let names = (try? fm.contentsOfDirectory(atPath: source.path)) ?? []
        for name in names.sorted() where name != "model.safetensors" && !name.hasPrefix(".") {
            let url = source.appendingPathComponent(name)
            var sub: ObjCBool = false
            guard fm.fileExists(atPath: url.path, isDirectory: &sub), !sub.boolValue else { continue }
            guard let contents = fm.contents(atPath: url.path) else { throw QuantizeError.io(url.path, "cannot read") }
            try write(contents, to: output.appendingPathComponent(name))
            copied.append(name)
        }
        let inputBytes = (try? fm.attributesOfItem(atPath: weightsURL.path)[.size] as? Int) ?? 0
        return Summary(matrices: matrices, inputBytes: inputBytes, outputBytes: data.count, copiedFiles: copied)
    }

    private static func write(_ data: Data, to url: URL) throws {
        // The directory is new or was empty; a name already there was written by someone else meanwhile.
        guard !FileManager.default.fileExists(atPath: url.path) else {
            throw QuantizeError.io(url.path, "appeared while quantizing; not overwritten")
        }
        do { try data.write(to: url, options: .atomic) } catch {
            throw QuantizeError.io(url.path, "cannot write: \(error.localizedDescription)")
        }
    }
}
