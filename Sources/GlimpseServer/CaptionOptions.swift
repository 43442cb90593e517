import Foundation
import Glimpse

/// A request's options (query parameters or form fields, the CLI's flag names with underscores),
/// turned into a `CaptionRequest`. Every refusal is a 400 naming the option.
struct CaptionOptions {
    /// Every option the API takes; anything else is refused, so a typo never passes silently.
    static let names = ["beams", "max_tokens", "min_tokens", "n_best", "length_penalty", "no_repeat_ngram",
                        "repetition_penalty", "early_stopping", "prompt", "detect", "segment", "grounding", "task", "text"]

    private var values: [String: String] = [:]

    mutating func set(_ name: String, _ value: String) throws {
        guard Self.names.contains(name) else {
            throw ServeError(.badOption, "unknown option '\(name)' (options: \(Self.names.joined(separator: ", ")))")
        }
        values[name] = value
    }

    /// The captioning request for `model`, within the server's limits.
    func request(model: CaptionModel, limits: ServeLimits) throws -> CaptionRequest {
        var o = GenerationOverrides()
        o.beams = try int("beams")
        o.maxTokens = try int("max_tokens")
        o.minTokens = try int("min_tokens")
        o.nBest = try int("n_best")
        o.noRepeatNgram = try int("no_repeat_ngram")
        o.lengthPenalty = try float("length_penalty")
        o.repetitionPenalty = try float("repetition_penalty")
        o.earlyStopping = values["early_stopping"]
        // The server's own ceilings come first: a client must not size the caches (beams × tokens).
        if let beams = o.beams, beams > limits.maxBeams {
            throw ServeError(.badOption, "beams: at most \(limits.maxBeams) on this server (got \(beams))")
        }
        if let n = o.nBest, n > limits.maxBeams {
            throw ServeError(.badOption, "n_best: at most \(limits.maxBeams) on this server (got \(n))")
        }
        if let tokens = o.maxTokens, tokens > limits.maxTokens {
            throw ServeError(.badOption, "max_tokens: at most \(limits.maxTokens) on this server (got \(tokens))")
        }
        let parameters: GenerationParameters
        do { parameters = try o.applied(to: model.defaults) } catch {
            throw ServeError(.badOption, "\(Self.option(for: error)): \(RecordPipeline.describe(error))")
        }
        var request = CaptionRequest(parameters: parameters)
        do { request.prompt = try model.prompt(task: values["task"], text: values["text"], prompt: values["prompt"]) } catch let invalid as PromptOptionError {
            throw ServeError(.badOption, "\(invalid.option): \(invalid.message)")
        }
        let segment = try bool("segment")
        request.detect = try bool("detect") || segment
        request.segment = segment
        if let grounding = values["grounding"] {
            guard let method = Grounding.Method(rawValue: grounding.lowercased()) else {
                throw ServeError(.badOption, "grounding: must be auto, learned or attention (got '\(grounding)')")
            }
            request.grounding = method
        }
        request.maxPixels = limits.maxPixels
        return request
    }

    /// The API's name of the option a validation message is about (the messages use transformers' names).
    static func option(for error: Error) -> String {
        if let invalid = error as? GenerationOverrides.Invalid { return invalid.option }
        let text = String(describing: error)
        // num_return_sequences first: its messages also name num_beams.
        let names = [("num_return_sequences", "n_best"), ("num_beams", "beams"), ("max_new_tokens", "max_tokens"),
                     ("min_new_tokens", "min_tokens"), ("no_repeat_ngram_size", "no_repeat_ngram"),
                     ("length_penalty", "length_penalty"), ("repetition_penalty", "repetition_penalty")]
        return names.first { text.contains($0.0) }?.1 ?? "options"
    }

    private func int(_ name: String) throws -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw ServeError(.badOption, "\(name): must be an integer (got '\(text.prefix(40))')")
        }
        return value
    }

    private func float(_ name: String) throws -> Float? {
        guard let text = values[name] else { return nil }
        guard let value = Float(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            throw ServeError(.badOption, "\(name): must be a finite number (got '\(text.prefix(40))')")
        }
        return value
    }

    /// A flag: present with no value, or true/false/1/0.
    private func bool(_ name: String) throws -> Bool {
        guard let text = values[name]?.lowercased() else { return false }
        switch text {
        case "", "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw ServeError(.badOption, "\(name): must be true or false (got '\(text.prefix(40))')")
        }
    }
}

/// The server's ceilings, each from a flag and checked when the server starts.
struct ServeLimits: Sendable {
    var maxBodyBytes: Int
    var maxImagesPerRequest: Int
    var maxBeams: Int
    var maxTokens: Int
    var maxPixels: Int
    var requestTimeout: Duration
}
