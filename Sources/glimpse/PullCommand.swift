import ArgumentParser
import Foundation
import Glimpse

/// `glimpse pull OWNER/NAME[@REVISION]`: downloads a Hub model into the Hugging Face cache.
struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Download a model from the Hugging Face Hub into the shared cache.",
        discussion: """
        Resolves the revision (default main) to a commit, downloads the files Glimpse reads (configs, \
        tokenizer, and model.safetensors, else pytorch_model.bin) into the Hugging Face cache \
        ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub) exactly as huggingface_hub lays \
        it out, verifies each file against the Hub's hash, and prints the snapshot directory. Files \
        already cached are not downloaded again; an interrupted download resumes. $HF_ENDPOINT picks \
        the Hub; $HF_TOKEN or --token authenticates for gated and private models.
        """)

    @Argument(help: "Hub model ID: OWNER/NAME or OWNER/NAME@REVISION.")
    var id: String

    @Option(name: .long, help: "Branch, tag or commit (instead of @REVISION).")
    var revision: String?

    @Option(name: .long, help: "Hugging Face token (default: $HF_TOKEN, then the token file). Never printed.")
    var token: String?

    func run() throws {
        do {
            let model = try HubModelID(parsing: id, revision: revision)
            var locator = ModelLocator(token: token)
            locator.progress = DownloadProgress.standardError
            let result = try locator.pull(model)
            let fetched = result.downloadedBytes > 0 ? "downloaded \(ByteCount.format(result.downloadedBytes))" : "already cached"
            printError("glimpse: \(model) at \(result.commit): \(result.files.count) files, \(fetched)")
            print(result.snapshot.path)
        } catch let error as HubError {
            printError("glimpse: pull: \(error)")
            throw ExitCode(2)
        }
    }
}

/// Download progress on stderr: a redrawn bar with bytes and rate on a terminal, plain lines otherwise.
final class DownloadProgress: HubProgress {
    static let standardError = DownloadProgress(interactive: isatty(STDERR_FILENO) != 0)

    private let interactive: Bool
    private var current: (file: String, total: Int64?, start: ContinuousClock.Instant, startBytes: Int64)?
    private var lastDraw = ContinuousClock.now - .seconds(1)

    init(interactive: Bool) { self.interactive = interactive }

    func began(file: String, total: Int64?, resumedAt: Int64) {
        current = (file, total, .now, resumedAt)
        let size = total.map { " (\(ByteCount.format($0)))" } ?? ""
        let resumed = resumedAt > 0 ? ", resuming at \(ByteCount.format(resumedAt))" : ""
        if interactive { draw(bytes: resumedAt, force: true) } else { printError("glimpse: downloading \(file)\(size)\(resumed)") }
    }

    func advanced(file: String, bytes: Int64) {
        if interactive { draw(bytes: bytes, force: false) }
    }

    func finished(file: String, downloaded: Bool) {
        guard downloaded else { return }
        if interactive {
            if let total = current?.total { draw(bytes: total, force: true) }
            FileHandle.standardError.write(Data("\n".utf8))
        } else {
            printError("glimpse: downloaded \(file)")
        }
        current = nil
    }

    func note(_ message: String) {
        if interactive && current != nil { FileHandle.standardError.write(Data("\n".utf8)) }
        printError("glimpse: \(message)")
    }

    private func draw(bytes: Int64, force: Bool) {
        guard let current else { return }
        let now = ContinuousClock.now
        guard force || now - lastDraw >= .milliseconds(100) else { return }
        lastDraw = now
        let elapsed = now - current.start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Double(bytes - current.startBytes) / seconds : 0
        var line = "  \(current.file)  "
        if let total = current.total, total > 0 {
            let fraction = min(1, Double(bytes) / Double(total))
            let width = 24, filled = Int(fraction * Double(width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] "
            line += "\(ByteCount.format(bytes)) / \(ByteCount.format(total))"
        } else {
            line += ByteCount.format(bytes)
        }
        line += "  \(ByteCount.format(Int64(rate)))/s"
        FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
    }
}
