import ArgumentParser
import Foundation
import Glimpse

/// `glimpse info FILE...`: what each file is, or why it cannot be decoded.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Decode images and print format, size (after EXIF orientation), channel layout and bit depth.",
        discussion: "Exits with status 0 only when every file decoded; errors go to standard error."
    )

    @Argument(help: "Image files (JPEG or PNG; the format is read from the file's first bytes).")
    var files: [String]

    @Flag(name: .long, help: "Print one JSON object per line (JSON Lines), errors included.")
    var json = false

    @Option(name: .long, help: "Refuse images with more pixels than this (checked before decoding).")
    var maxPixels: Int = ImageDecoder.defaultMaxPixels

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one file") }
        if maxPixels <= 0 { throw ValidationError("--max-pixels must be positive") }
    }

    func run() throws {
        var failures = 0
        for file in files {
            do {
                let decoded = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: file), maxPixels: maxPixels)
                print(json ? jsonLine(file: file, info: decoded.info) : textLine(file, decoded.info))
            } catch {
                failures += 1
                let message = (error as? ImageError)?.description ?? "\(file): \(error)"
                if json {
                    // A failed file is {"file": ..., "error": ...} and nothing else (output contract).
                    print(JSONLine.object([("file", .string(file)), ("error", .string(message))]))
                }
                FileHandle.standardError.write(Data("glimpse: \(message)\n".utf8))
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }

    private func textLine(_ file: String, _ info: ImageInfo) -> String {
        var fields = ["\(file):", info.format.rawValue, "\(info.width)x\(info.height)", info.layout.rawValue,
                      "\(info.bitDepth)-bit"]
        if info.orientation != 1 { fields.append("orientation \(info.orientation)") }
        if info.interlaced { fields.append(info.format == .jpeg ? "progressive" : "interlaced") }
        if info.hasTransparency { fields.append("tRNS") }
        return fields.joined(separator: " ")
    }

    /// `glimpse info --json` line for a decoded file; keys in a fixed, readable order.
    private func jsonLine(file: String, info: ImageInfo) -> String {
        JSONLine.object([
            ("file", .string(file)), ("format", .string(info.format.rawValue)),
            ("width", .int(info.width)), ("height", .int(info.height)),
            ("layout", .string(info.layout.rawValue)), ("bit_depth", .int(info.bitDepth)),
            ("orientation", .int(info.orientation)), ("interlaced", .bool(info.interlaced)),
            ("transparency", .bool(info.hasTransparency)),
        ])
    }
}

/// A minimal JSON Lines writer: one flat object per line, keys in the order given.
enum JSONLine {
    enum Value {
        case string(String)
        case int(Int)
        case bool(Bool)
    }

    static func object(_ fields: [(String, Value)]) -> String {
        let body = fields.map { key, value -> String in
            let text: String
            switch value {
            case .string(let s): text = JSONText.quoted(s)
            case .int(let i): text = String(i)
            case .bool(let b): text = b ? "true" : "false"
            }
            return "\(JSONText.quoted(key)): \(text)"
        }
        return "{" + body.joined(separator: ", ") + "}"
    }

}
