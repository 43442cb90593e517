import ArgumentParser
import Foundation
import Glimpse
import GlimpseServer

/// `glimpse serve`: an HTTP captioning service over one model (see docs/serve.md).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve captions over HTTP: POST /v1/caption, with requests batched together through the model.",
        discussion: """
        Listens on 127.0.0.1 unless --host says otherwise. Prints 'glimpse: listening on http://HOST:PORT' \
        on stdout once bound (--port 0 lets the kernel choose the port). SIGTERM or SIGINT stops accepting, \
        lets in-flight requests finish within --grace seconds, and exits 0 (1 when the grace period ran out). \
        Access log lines go to stderr. Routes: /v1/caption, /v1/models, /healthz, /readyz, /metrics, /openapi.json.
        """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Address to bind (loopback by default; 0.0.0.0 for every interface).")
    var host = "127.0.0.1"
    @Option(name: .long, help: "Port (0: any free port).")
    var port = 8080
    @Option(name: .long, help: "Images decoded together across requests, per worker (1-256).")
    var maxBatch = 8
    @Option(name: .long, help: "Inference threads, each running its own batch on one core (1-64; default: one per core). 1: one batch whose products use every core (lower latency for a large model under light load).")
    var workers = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: .long, help: "Milliseconds an idle model waits for more images before starting a batch (0-10000).")
    var maxWaitMs = 5
    @Option(name: .long, help: "Images that may wait for the model; more get 503 with Retry-After (1-100000).")
    var queueDepth = 64
    @Option(name: .long, help: "Largest request body in bytes (413 above it).")
    var maxBodyBytes = 20 << 20
    @Option(name: .long, help: "Most images in one multipart request (1-256).")
    var maxImages = 16
    @Option(name: .long, help: "Seconds a request may take before 504.")
    var timeout = 30.0
    @Option(name: .long, help: "Open connections at most (more wait to be accepted).")
    var maxConnections = 256
    @Option(name: .long, help: "Seconds in-flight requests get to finish after SIGTERM/SIGINT.")
    var grace = 30.0
    @Option(name: .long, help: "Largest beam width (and n_best) a request may ask for.")
    var maxBeams = 8
    @Option(name: .customLong("max-tokens-limit"), help: "Largest max_tokens a request may ask for.")
    var maxTokensLimit = 64
    @Option(name: .long, help: "Refuse images larger than this many pixels (422; checked from the header).")
    var maxPixels = 40_000_000

    func run() throws {
        var c = ServeConfiguration()
        c.host = host; c.port = port; c.maxBatch = maxBatch; c.workers = workers; c.maxWaitMilliseconds = maxWaitMs; c.queueDepth = queueDepth
        c.maxBodyBytes = maxBodyBytes; c.maxImagesPerRequest = maxImages; c.requestTimeoutSeconds = timeout
        c.maxConnections = maxConnections; c.gracePeriodSeconds = grace; c.maxBeams = maxBeams; c.maxTokens = maxTokensLimit
        c.maxPixels = maxPixels
        // Flags are checked before the model loads, so a typo fails at once.
        do { try c.validate() } catch { throw ValidationError(String(describing: error)) }
        let model = try modelOptions.loadOrExit()
        let finished = ServeOutcome()
        // The service runs on Swift concurrency; this thread only waits for it to end.
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                let clean = try await GlimpseHTTPServer.run(model: model, configuration: c) { host, port in
                    print("glimpse: listening on http://\(host):\(port)")
                    fflush(stdout)
                }
                finished.set(clean ? 0 : 1)
            } catch {
                printError("glimpse: serve: \(error)")
                finished.set(3)
            }
            done.signal()
        }
        done.wait()
        if finished.status != 0 { throw ExitCode(finished.status) }
    }
}

/// The exit status, handed from the service's task to the waiting thread.
private final class ServeOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int32 = 0
    func set(_ status: Int32) { lock.withLock { value = status } }
    var status: Int32 { lock.withLock { value } }
}
