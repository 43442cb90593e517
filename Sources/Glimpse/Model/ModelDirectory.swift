import Foundation

/// What every family's model directory holds and Glimpse reads the same way for all of them: the
/// weights file and the image processor.
enum ModelDirectory {
    /// The directory itself, checked to be one.
    static func check(_ directory: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelError.missingFile(directory)
        }
    }

    /// model.safetensors when present (no pickle at all), else pytorch_model.bin read natively; with
    /// `checkFinite`, every tensor is scanned for NaN/Inf.
    static func weights(in directory: URL, checkFinite: Bool) throws -> SafeTensorsFile {
        guard let url = HubFiles.weightFiles.lazy.map(directory.appendingPathComponent)
            .first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw ModelError.invalidConfig(file: directory.path, detail: "no model.safetensors or pytorch_model.bin")
        }
        let file = url.lastPathComponent == "pytorch_model.bin" ? try SafeTensorsFile(pytorchCheckpoint: url) : try SafeTensorsFile(url: url)
        if checkFinite { try file.checkFinite() }
        return file
    }

    /// The image processor's configured input size when the directory has one (preprocessor_config.json
    /// or processor_config.json) and it resizes: for encoders whose config.json does not fix a size.
    static func declaredImageSize(in directory: URL) throws -> (width: Int, height: Int)? {
        let url = directory.appendingPathComponent("preprocessor_config.json")
        let processor = directory.appendingPathComponent("processor_config.json")
        let preprocessor: ImagePreprocessor
        if FileManager.default.fileExists(atPath: url.path) {
            preprocessor = try ImagePreprocessor(contentsOf: url)
        } else if FileManager.default.fileExists(atPath: processor.path) {
            preprocessor = try ImagePreprocessor(processorConfig: processor)
        } else {
            return nil
        }
        return preprocessor.doResize ? (preprocessor.width, preprocessor.height) : nil
    }

    /// The checkpoint's image processor, checked against the encoder's input size and channels.
    static func preprocessor(in directory: URL, imageSize: Int, channels: Int) throws -> ImagePreprocessor {
        // The image processor makes RGB pixel values; a patch embedding over other channel counts
        // would read past (or short of) them.
        guard channels == 3 else {
            throw ModelError.invalidConfig(file: directory.appendingPathComponent("config.json").path,
                                           detail: "num_channels \(channels): the image processor makes 3-channel (RGB) pixel values")
        }
        // preprocessor_config.json, else the image processor inside processor_config.json (how
        // transformers 5 saves a processor), else a plain resize to the encoder's side.
        let url = directory.appendingPathComponent("preprocessor_config.json")
        let processor = directory.appendingPathComponent("processor_config.json")
        let preprocessor: ImagePreprocessor, source: URL
        if FileManager.default.fileExists(atPath: url.path) {
            (preprocessor, source) = (try ImagePreprocessor(contentsOf: url), url)
        } else if FileManager.default.fileExists(atPath: processor.path) {
            (preprocessor, source) = (try ImagePreprocessor(processorConfig: processor), processor)
        } else {
            var plain = ImagePreprocessor()
            plain.width = imageSize
            plain.height = imageSize
            return plain
        }
        guard !preprocessor.doResize || (preprocessor.width == imageSize && preprocessor.height == imageSize) else {
            throw ModelError.invalidConfig(file: source.path, detail: "size \(preprocessor.width)x\(preprocessor.height) differs from the encoder's image_size \(imageSize) (interpolated position embeddings are not supported)")
        }
        return preprocessor
    }
}
