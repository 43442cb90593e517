import Foundation
import Metrics
import class Prometheus.PrometheusCollectorRegistry
import struct Prometheus.PrometheusMetricsFactory

/// The service's metrics, through swift-metrics into one Prometheus registry (what `/metrics` prints).
/// Requests are labelled by route pattern, never by the raw path, so a scan of random URLs cannot
/// grow the registry.
final class ServeMetrics: @unchecked Sendable {
    let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let queue: Gauge
    private let batch: Recorder
    private let images: Counter
    private let rate: Gauge
    private let rss: Gauge
    private let lock = NSLock()
    private var imagesTotal = 0
    private var lastScrape = (time: ContinuousClock.now, images: 0)

    init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                                   .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                                   .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30)]
        factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256]
        self.factory = factory
        // The handlers come from this registry's factory directly, not the global MetricsSystem, so
        // several servers in one process (tests) keep apart and nothing needs bootstrapping.
        queue = Gauge(label: "glimpse_queue_depth", dimensions: [], factory: factory)
        batch = Recorder(label: "glimpse_decode_batch_images", dimensions: [], aggregate: true, factory: factory)
        images = Counter(label: "glimpse_images_total", dimensions: [], factory: factory)
        rate = Gauge(label: "glimpse_images_per_second", dimensions: [], factory: factory)
        rss = Gauge(label: "process_resident_memory_bytes", dimensions: [], factory: factory)
    }

    /// One finished request: counted by route, method and status; its latency in the route's histogram.
    func request(route: String, method: String, status: Int, duration: Duration) {
        Counter(label: "glimpse_http_requests_total",
                dimensions: [("route", route), ("method", method), ("status", String(status))], factory: factory).increment()
        Metrics.Timer(label: "glimpse_http_request_duration_seconds", dimensions: [("route", route)], factory: factory)
            .recordNanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    func queueDepth(_ depth: Int) { queue.record(depth) }
    /// Images in the decode batch at one step.
    func decodeBatch(_ images: Int) { batch.record(images) }

    func imageDone() {
        images.increment()
        lock.withLock { imagesTotal += 1 }
    }

    /// The exposition text, with the images/s since the previous scrape and the RSS read now.
    func scrape() -> String {
        let now = ContinuousClock.now
        lock.withLock {
            let seconds = InferenceWorker.seconds(now - lastScrape.time)
            if seconds > 0 { rate.record(Double(imagesTotal - lastScrape.images) / seconds) }
            lastScrape = (now, imagesTotal)
        }
        if let bytes = Self.residentBytes() { rss.record(bytes) }
        return registry.emitToString()
    }

    /// Resident set size from /proc/self/statm (pages × page size); nil where it cannot be read.
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
