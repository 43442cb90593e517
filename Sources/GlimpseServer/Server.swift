import Foundation
import Glimpse
import Hummingbird
import Logging
import ServiceLifecycle

/// Everything `glimpse serve` is configured with; `validate` bounds every size before use.
public struct ServeConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var maxBodyBytes = 20 << 20
    public var maxImagesPerRequest = 16
    public var maxBatch = 8
    /// Inference threads (each one core's products and its own decode batch).
    public var workers = ProcessInfo.processInfo.activeProcessorCount
    public var maxWaitMilliseconds = 5
    public var queueDepth = 64
    public var requestTimeoutSeconds = 30.0
    public var maxConnections = 256
    public var gracePeriodSeconds = 30.0
    public var maxBeams = 8
    public var maxTokens = 64
    public var maxPixels = 40_000_000

    public init() {}

    /// Why a setting was refused: the flag and its allowed range.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public func validate() throws {
        func check<T: Comparable>(_ flag: String, _ value: T, _ range: ClosedRange<T>) throws {
            guard range.contains(value) else {
                throw Invalid(description: "--\(flag) must be between \(range.lowerBound) and \(range.upperBound) (got \(value))")
            }
        }
        try check("port", port, 0...65535)
        try check("max-body-bytes", maxBodyBytes, 1...(1 << 30))
        try check("max-images", maxImagesPerRequest, 1...256)
        try check("max-batch", maxBatch, 1...DecodeBatch.maximumCapacity)
        try check("workers", workers, 1...64)
        try check("max-wait-ms", maxWaitMilliseconds, 0...10_000)
        try check("queue-depth", queueDepth, 1...100_000)
        try check("timeout", requestTimeoutSeconds, 0.001...3600)
        try check("max-connections", maxConnections, 1...100_000)
        try check("grace", gracePeriodSeconds, 0...3600)
        try check("max-beams", maxBeams, 1...GenerationParameters.maxBeams)
        try check("max-tokens-limit", maxTokens, 1...GenerationParameters.maxTokens)
        try check("max-pixels", maxPixels, 1...ImageDecoder.defaultMaxPixels)
        guard !host.isEmpty else { throw Invalid(description: "--host must not be empty") }
    }
}

/// `glimpse serve`: the HTTP service over one model, until SIGTERM or SIGINT.
public enum GlimpseHTTPServer {
    /// Serves `model` until a signal: then stops accepting, lets in-flight requests finish within the
    /// grace period, and returns (true when every request finished in time). `onListening` receives
    /// the bound address (the port is the kernel's choice with port 0).
    public static func run(model: CaptionModel, configuration c: ServeConfiguration,
                           onListening: @escaping @Sendable (_ host: String, _ port: Int) -> Void) async throws -> Bool {
        try c.validate()
        var logger = Logger(label: "glimpse.serve")
        logger.logLevel = .info
        let metrics = ServeMetrics()
        let worker = InferenceWorker(model: model, limits: .init(maxBatch: c.maxBatch, maxWait: .milliseconds(c.maxWaitMilliseconds),
                                                                 queueCapacity: c.queueDepth, threads: c.workers), metrics: metrics)
        let limits = ServeLimits(maxBodyBytes: c.maxBodyBytes, maxImagesPerRequest: c.maxImagesPerRequest, maxBeams: c.maxBeams,
                                 maxTokens: c.maxTokens, maxPixels: c.maxPixels,
                                 requestTimeout: .milliseconds(Int64(c.requestTimeoutSeconds * 1000)))
        let service = try CaptionService(model: model, limits: limits, worker: worker, metrics: metrics)
        // The inference thread is the one that computes: its products use the whole thread budget,
        // as `caption` does for an image alone (so a request's record equals that one bit for bit).
        BLAS.setThreadCount(BLAS.threadBudget)
        worker.start()
        defer { worker.stop() }

        let app = Application(
            router: service.router(logger: logger),
            configuration: .init(address: .hostname(c.host, port: c.port), serverName: "glimpse",
                                 availableConnectionsDelegate: .maximum(c.maxConnections, logger: logger)),
            onServerRunning: { channel in onListening(c.host, channel.localAddress?.port ?? c.port) },
            logger: logger)
        var group = ServiceGroupConfiguration(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint],
                                              logger: logger)
        group.maximumGracefulShutdownDuration = .milliseconds(Int64(c.gracePeriodSeconds * 1000))
        group.maximumCancellationDuration = .seconds(5)
        let shutdown = Task {
            // /readyz says 503 from the first signal on, so a balancer stops sending while requests finish.
            for await _ in signalStream([SIGTERM, SIGINT]) { service.beginDraining(); break }
        }
        defer { shutdown.cancel() }
        do {
            try await ServiceGroup(configuration: group).run()
            return true
        } catch {
            logger.error("shutdown did not complete within the grace period", metadata: ["error": .string("\(error)")])
            return false
        }
    }

    /// Signals as an async stream, beside ServiceLifecycle's own handling of the same signals.
    static func signalStream(_ signals: [Int32]) -> AsyncStream<Int32> {
        AsyncStream { continuation in
            let sources = signals.map { number -> DispatchSourceSignal in
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { continuation.yield(number) }
                source.resume()
                return source
            }
            continuation.onTermination = { _ in sources.forEach { $0.cancel() } }
        }
    }
}
