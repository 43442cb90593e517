import Foundation
import Glimpse
import Hummingbird
import Logging
import MultipartKit
import NIOCore

/// The routes of `glimpse serve` over one loaded model and its inference thread.
public final class CaptionService: @unchecked Sendable {
    let model: CaptionModel
    let limits: ServeLimits
    let worker: InferenceWorker
    let metrics: ServeMetrics
    /// The model's learned heads, read once at start (nil when it has none).
    let heads: LearnedHeads?
    private let lock = NSLock()
    private var draining = false

    init(model: CaptionModel, limits: ServeLimits, worker: InferenceWorker, metrics: ServeMetrics) throws {
        self.model = model
        self.limits = limits
        self.worker = worker
        self.metrics = metrics
        heads = try model.loadHeads()
    }

    /// Marks the service as stopping: /readyz turns 503 and new captioning requests are refused.
    func beginDraining() { lock.withLock { draining = true } }
    var isDraining: Bool { lock.withLock { draining } }

    /// The router: access log and metrics around every route, errors as JSON bodies.
    func router(logger: Logger) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        let routes = RouteMethods()
        router.add(middleware: AccessMiddleware(logger: logger, metrics: metrics, routes: routes))
        router.post("/v1/caption") { request, _ in try await self.caption(request) }
        router.get("/v1/models") { _, _ in self.models() }
        router.get("/healthz") { _, _ in jsonResponse("{\"status\":\"ok\"}") }
        router.get("/readyz") { _, _ in
            self.isDraining ? ServeError(.overloaded, "the server is shutting down", retryAfter: 1).response
                            : jsonResponse("{\"status\":\"ready\",\"model\":\(JSONText.quoted(self.model.directory.path))}")
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metrics.scrape())))
        }
        router.get("/openapi.json") { _, _ in jsonResponse(OpenAPIDocument.json) }
        routes.record(router)
        return router
    }

    // MARK: - POST /v1/caption

    /// One image from the request body, before decoding.
    struct Upload {
        var name: String
        var bytes: ByteBuffer
    }

    func caption(_ request: Request) async throws -> Response {
        if isDraining { throw ServeError(.overloaded, "the server is shutting down", retryAfter: 1) }
        let deadline = ContinuousClock.now + limits.requestTimeout
        // Counted from here to its queue place, so an idle worker waits for its images and no longer.
        let arrival = worker.arriving()
        defer { arrival.end() }
        let (uploads, options, multiple) = try await read(request)
        let captionRequest = try options.request(model: model, limits: limits)
        let pipeline: RecordPipeline
        do { pipeline = try RecordPipeline(model: model, request: captionRequest, heads: heads) } catch {
            throw ServeError(.badOption, "\(CaptionOptions.option(for: error)): \(RecordPipeline.describe(error))")
        }
        // Decoding and preprocessing run on Dispatch's threads: neither NIO's event loops nor the
        // concurrency pool wait on them; a bad image fails the request before it takes a queue place.
        var prepared: [PreparedImage] = []
        for upload in uploads { prepared.append(try await Self.prepare(upload, pipeline: pipeline, maxPixels: limits.maxPixels)) }
        let tickets = prepared.map { _ in Ticket() }
        let jobs = zip(prepared, tickets).map { InferenceJob(prepared: $0, pipeline: pipeline, ticket: $1) }
        guard worker.enqueue(jobs, ending: arrival) else {
            throw ServeError(.overloaded, "the captioning queue is full (\(worker.limits.queueCapacity) images); retry later", retryAfter: 1)
        }
        let timer = Task {
            try await Task.sleep(until: deadline, clock: .continuous)
            for ticket in tickets { ticket.resolve(.timedOut) }
        }
        defer { timer.cancel() }
        var records: [CaptionRecord] = []
        for ticket in tickets {
            switch await ticket.wait() {
            case .record(let record): records.append(record)
            case .timedOut:
                throw ServeError(.timeout, "captioning took longer than the server's limit of \(InferenceWorker.seconds(limits.requestTimeout)) s")
            case .cancelled: throw ServeError(.overloaded, "the request was cancelled before its images were captioned", retryAfter: 1)
            }
        }
        if !multiple, let record = records.first, let error = record.error {
            throw ServeError(.captioningFailed, "\(record.file): \(error)")
        }
        let lines = records.map { RecordCoding.line($0) }
        return jsonResponse(multiple ? "[" + lines.joined(separator: ",") + "]" : lines[0])
    }

    static func prepare(_ upload: Upload, pipeline: RecordPipeline, maxPixels: Int) async throws -> PreparedImage {
        let result: Result<PreparedImage, Error> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: Result {
                    var bytes = upload.bytes
                    let data = bytes.readData(length: bytes.readableBytes) ?? Data()
                    var prepared = try Captioner.prepare(data: data, name: upload.name, model: pipeline.model, maxPixels: maxPixels)
                    pipeline.shed(&prepared)
                    return prepared
                })
            }
        }
        do { return try result.get() } catch {
            throw ServeError(.undecodableImage, RecordPipeline.describe(error))
        }
    }

    /// The uploads and options of a request: a raw image body with query options, or multipart/form-data
    /// with `image` parts and option fields. `multiple` is true for form uploads, whose answer is an array.
    func read(_ request: Request) async throws -> (uploads: [Upload], options: CaptionOptions, multiple: Bool) {
        var options = CaptionOptions()
        for (key, value) in request.uri.queryParameters where key != "filename" { try options.set(String(key), String(value)) }
        let type = request.headers[.contentType].map { MediaType(header: $0) }
        guard let type, type.isImage || type.isMultipart else {
            throw ServeError(.unsupportedMediaType, "Content-Type must be image/jpeg, image/png or multipart/form-data (got \(request.headers[.contentType] ?? "none"))")
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limits.maxBodyBytes {
            throw ServeError(.payloadTooLarge, "the body is \(length) bytes; the server takes at most \(limits.maxBodyBytes)")
        }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: limits.maxBodyBytes) } catch {
            throw ServeError(.payloadTooLarge, "the body is larger than the server's limit of \(limits.maxBodyBytes) bytes")
        }
        if type.isImage {
            let name = request.uri.queryParameters["filename"].map(String.init) ?? "upload"
            return ([Upload(name: name, bytes: body)], options, false)
        }
        guard let boundary = type.boundary else { throw ServeError(.badOption, "multipart/form-data needs a boundary parameter") }
        var uploads: [Upload] = []
        for part in try Self.parts(of: body, boundary: boundary) {
            let disposition = part.headers.first(name: "Content-Disposition") ?? ""
            let name = MediaType.parameter("name", in: disposition)
            if name == "image" {
                let partType = part.headers.first(name: "Content-Type").map { MediaType(header: $0) }
                if let partType, !partType.isImage && partType.essence != "application/octet-stream" {
                    throw ServeError(.unsupportedMediaType, "image parts must be image/jpeg or image/png (got \(partType.essence))")
                }
                guard uploads.count < limits.maxImagesPerRequest else {
                    throw ServeError(.badOption, "image: at most \(limits.maxImagesPerRequest) images per request")
                }
                uploads.append(Upload(name: MediaType.parameter("filename", in: disposition) ?? "image", bytes: part.body))
            } else if let name {
                try options.set(name, String(buffer: part.body))
            }
        }
        guard !uploads.isEmpty else { throw ServeError(.badOption, "image: the form has no 'image' part") }
        return (uploads, options, true)
    }

    static func parts(of body: ByteBuffer, boundary: String) throws -> [MultipartPart] {
        let parser = MultipartParser(boundary: boundary)
        var parts: [MultipartPart] = []
        var headers = HTTPHeaders(), partBody = ByteBuffer()
        parser.onHeader = { headers.add(name: $0, value: $1) }
        parser.onBody = { partBody.writeBuffer(&$0) }
        parser.onPartComplete = {
            parts.append(MultipartPart(headers: headers, body: partBody))
            headers = HTTPHeaders()
            partBody = ByteBuffer()
        }
        do { try parser.execute(body) } catch {
            throw ServeError(.badOption, "the multipart/form-data body could not be parsed: \(error)")
        }
        return parts
    }

    // MARK: - GET /v1/models

    func models() -> Response {
        let p = model.defaults
        let tasks = ["caption"] + (heads != nil ? ["detect", "segment"] : ["detect", "segment (training-free grounding)"])
        let taskList = tasks.map { JSONText.quoted($0) }.joined(separator: ",")
        var text = "{\"models\":[{\"path\":" + JSONText.quoted(model.directory.path)
        text += ",\"family\":" + JSONText.quoted(model.family.name)
        text += ",\"tasks\":[" + taskList + "]"
        text += ",\"learned_heads\":\(heads != nil),\"image_size\":\(model.encoder.imageSize)"
        text += ",\"defaults\":{\"beams\":\(p.beamWidth),\"max_length\":\(p.maxLength)}"
        text += ",\"limits\":{\"max_beams\":\(limits.maxBeams),\"max_tokens\":\(limits.maxTokens),\"max_pixels\":\(limits.maxPixels)"
        text += ",\"max_body_bytes\":\(limits.maxBodyBytes),\"max_images_per_request\":\(limits.maxImagesPerRequest)}}]}"
        return jsonResponse(text)
    }
}

/// A Content-Type header: its essence (type/subtype, lower case) and parameters.
struct MediaType {
    var essence: String
    var boundary: String?

    init(header: String) {
        essence = header.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        boundary = Self.parameter("boundary", in: header)
    }

    var isImage: Bool { essence == "image/jpeg" || essence == "image/png" }
    var isMultipart: Bool { essence == "multipart/form-data" }

    /// A `key=value` or `key="value"` parameter of a header value.
    static func parameter(_ key: String, in header: String) -> String? {
        for piece in header.split(separator: ";").dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == key else { continue }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            return value
        }
        return nil
    }
}
