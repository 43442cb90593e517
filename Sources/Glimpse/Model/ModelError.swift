import Foundation

/// Errors of model loading and running, each naming the file and key or tensor at fault.
public enum ModelError: Error, CustomStringConvertible, LocalizedError {
    case missingFile(URL)
    case invalidConfig(file: String, detail: String)
    case unsupported(String)
    case unsupportedArchitecture(String)
    case nonFiniteLogits(step: Int)
    case invalidInput(String)

    public var description: String {
        switch self {
        case .missingFile(let url): return "\(url.path): file not found"
        case .invalidConfig(let file, let detail): return "\(file): \(detail)"
        case .unsupported(let what): return "unsupported \(what)"
        case .unsupportedArchitecture(let what):
            return "unsupported model architecture \(what); supported families: \(ModelFamilies.supportedList)"
        case .nonFiniteLogits(let step): return "the decoder produced NaN or infinite logits at step \(step) (corrupt weights? try --check-weights)"
        case .invalidInput(let what): return what
        }
    }
    public var errorDescription: String? { description }
}
