import Foundation

/// Where the model comes from when neither `--model` nor `$GLIMPSE_MODEL` names one: the default
/// model installed or built beside the executable.
enum DefaultModel {
    /// The executable's real path (symlinks resolved): `/proc/self/exe` on Linux, so a `glimpse`
    /// symlinked onto the PATH, or started by name from the PATH, finds what is installed beside it.
    static func executable() -> URL? {
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: target)
        }
        let argv0 = CommandLine.arguments.first ?? ""
        if argv0.contains("/") { return URL(fileURLWithPath: argv0).resolvingSymlinksInPath() }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent(argv0)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.resolvingSymlinksInPath() }
        }
        return nil
    }

    /// Where the default model is looked for, in order: `PREFIX/share/glimpse/models/default` for
    /// `PREFIX/bin/glimpse` (`make install`); `REPO/models/default` for a binary in the build tree
    /// (`REPO/.build/<triple>/release/glimpse`); `./models/default`.
    static func candidates() -> [URL] {
        var out: [URL] = []
        if let exe = executable() {
            let bin = exe.deletingLastPathComponent()
            out.append(bin.deletingLastPathComponent().appendingPathComponent("share/glimpse/models/default"))
            let parts = bin.pathComponents
            if let build = parts.lastIndex(of: ".build"), build > 0 {
                out.append(URL(fileURLWithPath: NSString.path(withComponents: Array(parts[..<build])))
                    .appendingPathComponent("models/default"))
            }
        }
        out.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("models/default"))
        return out
    }

    /// The first candidate that holds a `config.json`.
    static func locate() -> URL? {
        candidates().first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("config.json").path) }
    }

    /// How to choose a model, for messages that say none could be loaded.
    static let howToChoose = "choose a model with --model DIR or --model OWNER/NAME (a Hugging Face Hub ID), or set GLIMPSE_MODEL"
}
