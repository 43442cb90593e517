import ArgumentParser
import Foundation
import Glimpse

struct BatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Caption every image under a directory.",
        discussion: """
        Walks DIR recursively (JPEG/PNG recognized by their bytes; symlink loops are followed once), \
        sorts the files, and writes one record per image as soon as it is ready: JSON Lines (default) \
        or CSV to --out (with OUT.meta.json: what the run was made with), or IMAGE.txt sidecars \
        (photo.jpg -> photo.jpg.txt). A file that fails becomes an error record and the run goes on. \
        An existing output is never replaced or appended to unless glimpse wrote it: --resume \
        continues it (same model and options only; repairs a last line cut by a kill), --overwrite \
        replaces it. --shard I/N takes the I-th of N contiguous slices of the sorted list: N processes \
        split a corpus without coordination, and their outputs concatenated in shard order equal one run.
        """)

    @Argument(help: "Directory to caption.")
    var directory: String

    @Option(name: .long, help: "Output file (default: glimpse-captions.jsonl, or .csv with --format csv).")
    var out: String?
    @Option(name: .long, help: "Output format: jsonl or csv.")
    var format: String = "jsonl"
    @Flag(name: .long, help: "Write IMAGE.txt (photo.jpg -> photo.jpg.txt) next to each image instead of one output file.")
    var sidecar = false
    @Flag(name: .long, help: "Continue an earlier run's output: skip images already recorded (same model and options only).")
    var resume = false
    @Flag(name: .long, help: "With --resume (implied): remove the earlier run's error records and caption those files again.")
    var retryErrors = false
    @Flag(name: .long, help: "Replace an earlier run's output (only ever one glimpse wrote).")
    var overwrite = false
    @Option(name: .long, help: "Process only shard I of N (I/N, 0-based), e.g. --shard 0/4.")
    var shard: String?
    @Option(name: .long, parsing: .unconditional, help: "Images per encoder pass (1...\(BatchCommand.maxEncoderBatch)). 1 (default) makes every record independent of batch composition, bit for bit; larger batches may change scores in the last float digits.")
    var encoderBatch = 1

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var generation: GenerationOptions

    @OptionGroup var detection: DetectionOptions
    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    static let maxEncoderBatch = 256

    func run() throws {
        guard (1...Self.maxEncoderBatch).contains(encoderBatch) else {
            throw ValidationError("--encoder-batch must be between 1 and \(Self.maxEncoderBatch) (got \(encoderBatch))")
        }
        // Past a file-size limit (ulimit -f, RLIMIT_FSIZE) the kernel sends SIGXFSZ, whose default action
        // kills the process mid-record with no message. Ignored, write(2) fails with EFBIG instead and the
        // run stops with an error that says the results so far are kept.
        signal(SIGXFSZ, SIG_IGN)
        guard let fmt = BatchFormat(rawValue: format.lowercased()) else {
            throw ValidationError("--format must be jsonl or csv")
        }
        let slice = try shard.map { try Shard(parsing: $0) } ?? Shard(index: 0, count: 1)
        let listing: FileWalker.Listing
        do { listing = try FileWalker.list(directory) } catch {
            printError("glimpse: \(error)")
            throw ExitCode(2)
        }
        for w in listing.warnings { printError("glimpse: warning: \(w)") }

        let model = try modelOptions.loadOrExit()
        var request = CaptionRequest(parameters: try generation.parameters(defaults: model.defaults))
        request.prompt = try generation.resolvedPrompt(model: model)
        try detection.apply(to: &request)
        try model.checkResources(request.parameters, captureAttention: request.needsAttention, encoderBatch: encoderBatch)

        let images = listing.images
        guard !(overwrite && (resume || retryErrors)) else {
            throw ValidationError("--overwrite replaces the output; --resume/--retry-errors continue it: choose one")
        }
        let mode: BatchOutput.Mode = overwrite ? .overwrite : (resume || retryErrors) ? .resume(retryErrors: retryErrors) : .create
        var options = RunManifest.options(of: request)
        options["encoder_batch"] = String(encoderBatch)
        options["shard"] = "\(slice.index)/\(slice.count)"
        let manifest = RunManifest(format: sidecar ? "sidecar" : fmt.rawValue, root: directory, model: model.directory.path,
                                   modelRevision: RunManifest.revision(ofModelDirectory: model.directory), options: options)
        let shardRange = slice.range(of: images.count)
        var wanted = [Bool](repeating: false, count: images.count)
        for i in shardRange { wanted[i] = true }
        let output: BatchOutput?
        let sidecars: SidecarOutput?
        let target: String
        do {
            if sidecar {
                output = nil
                let s = try SidecarOutput(root: directory, mode: mode, manifest: manifest, inputs: listing.identities)
                sidecars = s
                target = "the sidecars"
                for i in shardRange where s.isDone(images[i]) { wanted[i] = false }
            } else {
                let path = out ?? (fmt == .csv ? "glimpse-captions.csv" : "glimpse-captions.jsonl")
                let o = try BatchOutput(path: path, format: fmt, mode: mode, manifest: manifest, inputs: listing.identities)
                output = o
                sidecars = nil
                target = path
                if let m = o.manifest, !o.completed.isEmpty {
                    for i in shardRange where o.completed.contains(m.relativeKey(images[i])) { wanted[i] = false }
                }
                if o.retried > 0 { printError("glimpse: \(o.retried) error record(s) removed from \(path), captioning those files again") }
            }
        } catch {
            printError("glimpse: \(error)")
            throw ExitCode(2)
        }
        let files = shardRange.filter { wanted[$0] }
        let alreadyDone = shardRange.count - files.count
        MappedFileRegistry.prepare()
        BatchSignals.install(output: target)

        let progress = Progress(total: files.count, quiet: quiet)
        let runner = BatchRunner(pipeline: try RecordPipeline(model: model, request: request), encoderBatch: encoderBatch,
                                 decodeBatch: try generation.validatedDecodeBatch())
        var summary: BatchRunner.Summary
        var sidecarFailures = 0
        do {
            // The whole listing goes in, so encoder batches line up with an uninterrupted, unsharded run.
            summary = try runner.run(listing: images, include: { wanted[$0] }, emit: { record in
                if let error = record.error { progress.clearLine(); printError("glimpse: \(record.file): \(error)") }
                if let output { try output.write(record); return }
                do { try sidecars?.write(record) } catch {
                    // One image's sidecar (a read-only directory, a name taken): that image fails, the run goes on.
                    progress.clearLine()
                    printError("glimpse: \(record.file): \(error)")
                    if !record.isError { sidecarFailures += 1 }
                }
            }, progress: progress.update)
        } catch {
            progress.clearLine()
            printError("glimpse: \(error)")
            throw ExitCode(3)
        }
        summary.captioned -= sidecarFailures
        summary.failed += sidecarFailures
        progress.finish()
        printError(String(format: "glimpse: %d captioned, %d failed, %d skipped (not images), %d already done; %.1f images/s",
                          summary.captioned, summary.failed, listing.skipped, alreadyDone, summary.imagesPerSecond))
        if summary.failed > 0 { throw ExitCode(1) }
    }
}

/// Progress on stderr: a bar with count, rate and ETA on a terminal; a plain line every 10 s otherwise.
final class Progress {
    let total: Int
    let quiet: Bool
    let isTerminal = isatty(STDERR_FILENO) != 0
    let start = Date()
    var lastPrint = Date.distantPast

    init(total: Int, quiet: Bool) { self.total = total; self.quiet = quiet }

    func update(done: Int, total: Int) {
        guard !quiet else { return }
        let now = Date()
        guard done == total || now.timeIntervalSince(lastPrint) >= (isTerminal ? 0.2 : 10) else { return }
        lastPrint = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let status = String(format: "%d/%d  %.1f img/s  ETA %@", done, total, rate, Self.clock(eta))
        if isTerminal {
            let width = 30, filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            FileHandle.standardError.write(Data("\r\u{1B}[K\(bar) \(status)".utf8))
        } else {
            printError("glimpse: \(status)")
        }
    }

    func clearLine() { if isTerminal && !quiet { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
    func finish() { if isTerminal && !quiet { FileHandle.standardError.write(Data("\n".utf8)) } }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
