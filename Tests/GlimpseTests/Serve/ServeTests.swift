import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import GlimpseServer
import Glimpse

/// A `glimpse serve` process on a free loopback port (--port 0; the port is read from its stdout).
final class ServeProcess {
    let process: Process
    let port: Int
    let stderrFile: URL
    private let scratch: URL

    init(_ arguments: [String], model: String? = nil) throws {
        scratch = try GlimpseCLI.temporaryDirectory()
        let model = model ?? DefaultModelTests.root.appendingPathComponent("models/default").path
        let (process, out, err) = try GlimpseCLI.process(["serve", "--model", model, "--port", "0"] + arguments, scratch: scratch)
        self.process = process
        stderrFile = err
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while true {
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.contains("listening on http://") }),
               let port = line.split(separator: ":").last.flatMap({ Int($0) }) {
                self.port = port
                break
            }
            guard process.isRunning, Date() < deadline else {
                throw XCTSkip("glimpse serve did not start: \((try? String(contentsOf: err, encoding: .utf8)) ?? "")")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// SIGTERM, then the exit status.
    func stop() -> Int32 {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: scratch)
        return process.terminationStatus
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: Any? { try? JSONSerialization.jsonObject(with: body) }
        var object: [String: Any] { json as? [String: Any] ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// One HTTP request (synchronous: the test thread waits, URLSession's threads do the work).
    func send(_ path: String, method: String = "GET", contentType: String? = nil, body: Data? = nil) throws -> Reply {
        var request = URLRequest(url: try XCTUnwrap(URL(string: "http://127.0.0.1:\(port)\(path)")))
        request.httpMethod = method
        request.timeoutInterval = 60
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        request.httpBody = body
        let done = DispatchSemaphore(value: 0)
        let reply = Slots<Result<Reply, Error>>(count: 1)
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let error { reply[0] = .failure(error) } else if let http = response as? HTTPURLResponse {
                var headers: [String: String] = [:]
                for (k, v) in http.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
                reply[0] = .success(Reply(status: http.statusCode, headers: headers, body: data ?? Data()))
            }
            done.signal()
        }.resume()
        done.wait()
        return try (reply[0] ?? .failure(URLError(.unknown))).get()
    }

    /// POST an image file as the raw body.
    func caption(_ file: String, query: String = "") throws -> Reply {
        let url = DefaultModelTests.root.appendingPathComponent(file)
        let type = file.hasSuffix(".png") ? "image/png" : "image/jpeg"
        return try send("/v1/caption?filename=\(file)" + (query.isEmpty ? "" : "&" + query), method: "POST",
                        contentType: type, body: try Data(contentsOf: url))
    }

    /// POST several image files (and fields) as multipart/form-data.
    func captionForm(_ files: [String], fields: [(String, String)] = []) throws -> Reply {
        let boundary = "glimpse-test-\(UUID().uuidString)"
        var body = Data()
        for (name, value) in fields {
            body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8))
        }
        for file in files {
            let bytes = try Data(contentsOf: DefaultModelTests.root.appendingPathComponent(file))
            body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"image\"; filename=\"\(file)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8))
            body.append(bytes)
            body.append(Data("\r\n".utf8))
        }
        body.append(Data("--\(boundary)--\r\n".utf8))
        return try send("/v1/caption", method: "POST", contentType: "multipart/form-data; boundary=\(boundary)", body: body)
    }
}

/// Results written from several threads (each index by one).
final class Slots<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [T?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    subscript(i: Int) -> T? {
        get { lock.withLock { values[i] } }
        set { lock.withLock { values[i] = newValue } }
    }
    var all: [T?] { lock.withLock { values } }
}

/// `glimpse serve` end to end: the built binary on a loopback port, driven over HTTP.
final class ServeTests: XCTestCase {
    static let samples = ["samples/one-shape.png", "samples/two-shapes-left-of.png", "samples/three-shapes.png",
                          "samples/two-shapes-jpeg-left-of.jpg", "samples/three-shapes-noise.jpg", "samples/two-shapes-above.png"]

    /// A record without what differs between runs (timing) and between front ends (the file's name).
    static func comparable(_ record: Any?) -> NSDictionary {
        var r = record as? [String: Any] ?? [:]
        r["timing_ms"] = nil
        r["file"] = nil
        return r as NSDictionary
    }

    /// The CLI's record for one image (`glimpse caption --json`, one process per image).
    static func cliRecord(_ file: String, _ flags: [String], model: String? = nil) throws -> Any? {
        let model = model ?? DefaultModelTests.root.appendingPathComponent("models/default").path
        let out = try GlimpseCLI.run(["caption", "--json", "--model", model, DefaultModelTests.root.appendingPathComponent(file).path] + flags)
        XCTAssertEqual(out.status, 0, out.stderr)
        return try JSONSerialization.jsonObject(with: Data(out.stdout.utf8))
    }

    func testRecordsEqualTheCLIsOneAndSeveralImages() throws {
        // One worker runs its products on every core, as the CLI does: the CLI's record bit for bit.
        let single = try ServeProcess(["--workers", "1"])
        for file in Self.samples.prefix(3) {
            let reply = try single.caption(file, query: "beams=3&n_best=2&detect=true")
            XCTAssertEqual(reply.status, 200, reply.text)
            XCTAssertEqual(reply.object["file"] as? String, file)
            XCTAssertEqual(Self.comparable(reply.json), Self.comparable(try Self.cliRecord(file, ["--beams", "3", "--n-best", "2", "--detect"])), file)
        }
        XCTAssertEqual(single.stop(), 0)
        // The default (a worker per core, each on one core): the same captions and tokens.
        let server = try ServeProcess([])
        defer { XCTAssertEqual(server.stop(), 0) }
        for file in Self.samples.prefix(3) {
            let reply = try server.caption(file, query: "beams=3&n_best=2")
            XCTAssertEqual(reply.status, 200, reply.text)
            assertSameCaptions(Self.comparable(reply.json), Self.comparable(try Self.cliRecord(file, ["--beams", "3", "--n-best", "2"])), file)
        }
        // Several images in one form: an array in upload order, each the CLI's record (default options).
        let files = Array(Self.samples.prefix(4))
        let form = try server.captionForm(files, fields: [("max_tokens", "12")])
        XCTAssertEqual(form.status, 200, form.text)
        let records = try XCTUnwrap(form.json as? [Any])
        XCTAssertEqual(records.count, files.count)
        for (file, record) in zip(files, records) {
            XCTAssertEqual((record as? [String: Any])?["file"] as? String, file)
            let reference = Self.comparable(try Self.cliRecord(file, ["--max-tokens", "12"]))
            // Encoded and decoded together: tokens and texts exact, scores to the batch tolerance (DecodeBatchTests).
            assertSameCaptions(Self.comparable(record), reference, file)
        }
    }

    func assertSameCaptions(_ a: NSDictionary, _ b: NSDictionary, _ label: String) {
        let ca = a["captions"] as? [[String: Any]] ?? [], cb = b["captions"] as? [[String: Any]] ?? []
        XCTAssertEqual(ca.count, cb.count, label)
        XCTAssertFalse(ca.isEmpty, label)
        for (x, y) in zip(ca, cb) {
            XCTAssertEqual(x["text"] as? String, y["text"] as? String, label)
            XCTAssertEqual(x["tokens"] as? [Int], y["tokens"] as? [Int], label)
            XCTAssertEqual(x["score"] as? Double ?? 0, y["score"] as? Double ?? 1, accuracy: 1e-4, label)
        }
        XCTAssertEqual(a["width"] as? Int, b["width"] as? Int, label)
        XCTAssertEqual(a["height"] as? Int, b["height"] as? Int, label)
    }

    /// An idle worker holds a batch open for --max-wait-ms only while other requests are on their way:
    /// a lone request is not held back for companions that are not coming.
    func testALoneRequestIsNotHeldForMaxWait() throws {
        let server = try ServeProcess(["--max-wait-ms", "4000", "--workers", "1"])
        defer { XCTAssertEqual(server.stop(), 0) }
        _ = try server.caption(Self.samples[0])   // warm
        let start = Date()
        let reply = try server.caption(Self.samples[1])
        XCTAssertEqual(reply.status, 200, reply.text)
        XCTAssertLessThan(Date().timeIntervalSince(start), 2.0, "held for the 4 s batch wait with nothing else arriving")
    }

    func testConcurrentRequestsAnswerAsSequentialOnes() throws {
        let server = try ServeProcess(["--max-batch", "4"])
        defer { XCTAssertEqual(server.stop(), 0) }
        let sequential = try Self.samples.map { try server.caption($0, query: "beams=2") }
        let concurrent = Slots<ServeProcess.Reply>(count: Self.samples.count)
        DispatchQueue.concurrentPerform(iterations: Self.samples.count) { i in
            concurrent[i] = try? server.caption(Self.samples[i], query: "beams=2")
        }
        for (i, file) in Self.samples.enumerated() {
            let a = try XCTUnwrap(concurrent[i], file)
            XCTAssertEqual(a.status, 200, a.text)
            assertSameCaptions(Self.comparable(a.json), Self.comparable(sequential[i].json), file)
        }
        // The decode batch held several images at once at least once.
        let metrics = try server.send("/metrics").text
        XCTAssertTrue(metrics.contains("glimpse_decode_batch_images"), metrics)
    }

    /// Florence-2 served: concurrent requests with different tasks (their encoder prompts differ, so
    /// they are encoded apart and cannot share a decode batch) each get the CLI's record, answer included.
    func testFlorence2TasksServedAsTheCLIAnswersThem() throws {
        let model = try GlimpseCLI.fixtureModel("florence2_tiny").path
        let server = try ServeProcess(["--max-batch", "4"], model: model)
        defer { XCTAssertEqual(server.stop(), 0) }
        let requests: [(file: String, task: String, text: String?)] = [
            (Self.samples[0], "<OD>", nil), (Self.samples[1], "<CAPTION>", nil),
            (Self.samples[2], "<CAPTION_TO_PHRASE_GROUNDING>", "a red circle"), (Self.samples[3], "<OD>", nil)]
        let replies = Slots<ServeProcess.Reply>(count: requests.count)
        DispatchQueue.concurrentPerform(iterations: requests.count) { i in
            let r = requests[i]
            var query = "task=" + (r.task.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
            if let text = r.text { query += "&text=" + (text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") }
            replies[i] = try? server.caption(r.file, query: query)
        }
        for (i, r) in requests.enumerated() {
            let reply = try XCTUnwrap(replies[i], r.file)
            XCTAssertEqual(reply.status, 200, reply.text)
            XCTAssertEqual(reply.object["task"] as? String, r.task)
            XCTAssertNotNil(reply.object["answer"], r.file)
            let cli = try Self.cliRecord(r.file, ["--task", r.task] + (r.text.map { ["--text", $0] } ?? []), model: model)
            XCTAssertEqual(Self.comparable(reply.json)["answer"] as? NSObject, Self.comparable(cli)["answer"] as? NSObject, "\(r.file) \(r.task)")
            assertSameCaptions(Self.comparable(reply.json), Self.comparable(cli), "\(r.file) \(r.task)")
        }
        // A task that takes no text is a 400 naming the option.
        let bad = try server.caption(Self.samples[0], query: "task=%3COD%3E&text=dog")
        XCTAssertEqual(bad.status, 400, bad.text)
        XCTAssertTrue(bad.text.contains("text"), bad.text)
    }

    func testEveryErrorStatusHasAJSONBody() throws {
        let server = try ServeProcess(["--max-body-bytes", "4000", "--max-beams", "4"])
        defer { XCTAssertEqual(server.stop(), 0) }
        func expect(_ reply: ServeProcess.Reply, _ status: Int, _ code: String, _ words: [String], file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(reply.status, status, reply.text, file: file, line: line)
            XCTAssertEqual(reply.object["code"] as? String, code, reply.text, file: file, line: line)
            let message = reply.object["error"] as? String ?? ""
            for word in words { XCTAssertTrue(message.contains(word), "\(message) lacks \(word)", file: file, line: line) }
        }
        let png = "samples/one-shape.png"
        expect(try server.caption(png, query: "bogus=1"), 400, "bad_option", ["bogus"])
        expect(try server.caption(png, query: "beams=many"), 400, "bad_option", ["beams"])
        expect(try server.caption(png, query: "beams=9"), 400, "bad_option", ["beams", "4"])
        expect(try server.caption(png, query: "beams=2&n_best=3"), 400, "bad_option", ["n_best", "num_return_sequences"])
        expect(try server.caption(png, query: "length_penalty=nan"), 400, "bad_option", ["length_penalty"])
        expect(try server.caption(png, query: "task=%3COCR%3E"), 400, "bad_option", ["task"])
        expect(try server.caption(png, query: "grounding=magic"), 400, "bad_option", ["grounding"])
        expect(try server.caption("samples/two-shapes-above.png"), 413, "payload_too_large", ["4000"])
        expect(try server.send("/v1/caption", method: "POST", contentType: "text/plain", body: Data("hi".utf8)), 415,
               "unsupported_media_type", ["text/plain"])
        expect(try server.send("/v1/caption", method: "POST", contentType: "image/png", body: Data("not a png".utf8)), 422,
               "undecodable_image", ["upload", "not an image"])
        var truncated = try Data(contentsOf: DefaultModelTests.root.appendingPathComponent(png))
        truncated = truncated.prefix(truncated.count / 2)
        expect(try server.send("/v1/caption", method: "POST", contentType: "image/png", body: truncated), 422, "undecodable_image", ["upload"])
        expect(try server.captionForm([], fields: [("beams", "2")]), 400, "bad_option", ["image"])
        expect(try server.send("/nowhere"), 404, "not_found", ["/nowhere"])
        // A known path asked with a method it does not answer: 405 naming the methods, and `Allow`.
        let wrongMethod = try server.send("/healthz", method: "DELETE")
        expect(wrongMethod, 405, "method_not_allowed", ["/healthz", "GET"])
        XCTAssertEqual(wrongMethod.headers["allow"], "GET")
        let getCaption = try server.send("/v1/caption")
        expect(getCaption, 405, "method_not_allowed", ["/v1/caption", "POST"])
        XCTAssertEqual(getCaption.headers["allow"], "POST")

        // Queue full and timeout, on a server whose queue holds one image and whose requests get a millisecond.
        let tight = try ServeProcess(["--queue-depth", "1", "--timeout", "0.001"])
        defer { XCTAssertEqual(tight.stop(), 0) }
        let full = try tight.captionForm(["samples/one-shape.png", "samples/three-shapes.png"])
        expect(full, 503, "overloaded", ["queue"])
        XCTAssertEqual(full.headers["retry-after"], "1")
        expect(try tight.caption(png), 504, "timeout", ["limit"])
    }

    func testInfoRoutesAndMetrics() throws {
        let server = try ServeProcess([])
        defer { XCTAssertEqual(server.stop(), 0) }
        XCTAssertEqual(try server.send("/healthz").object["status"] as? String, "ok")
        XCTAssertEqual(try server.send("/readyz").object["status"] as? String, "ready")
        let models = try XCTUnwrap(try server.send("/v1/models").object["models"] as? [[String: Any]])
        XCTAssertEqual(models.first?["family"] as? String, "vision-encoder-decoder")
        XCTAssertEqual(try server.caption("samples/one-shape.png").status, 200)
        let metrics = try server.send("/metrics")
        XCTAssertEqual(metrics.status, 200)
        for name in ["glimpse_http_requests_total", "glimpse_http_request_duration_seconds_bucket", "glimpse_queue_depth",
                     "glimpse_decode_batch_images", "glimpse_images_total", "process_resident_memory_bytes"] {
            XCTAssertTrue(metrics.text.contains(name), "metrics lack \(name)")
        }
        XCTAssertTrue(metrics.text.contains("route=\"/v1/caption\""), metrics.text)
        let spec = try server.send("/openapi.json")
        XCTAssertEqual(spec.object["openapi"] as? String, "3.1.0")
        // The access log: one line per request on stderr, no body bytes.
        let log = try String(contentsOf: server.stderrFile, encoding: .utf8)
        XCTAssertTrue(log.contains("route=/v1/caption status=200"), log)
    }

    func testSIGTERMLetsInFlightRequestsFinish() throws {
        let server = try ServeProcess(["--max-batch", "2"])
        let replies = Slots<ServeProcess.Reply>(count: Self.samples.count)
        let started = DispatchGroup()
        for (i, file) in Self.samples.enumerated() {
            started.enter()
            DispatchQueue.global().async {
                replies[i] = try? server.caption(file, query: "beams=3")
                started.leave()
            }
        }
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertEqual(server.stop(), 0)
        started.wait()
        for (i, file) in Self.samples.enumerated() {
            // A request that reached the server before the signal completes; one that did not is refused at connect.
            if let reply = replies[i] { XCTAssertEqual(reply.status, 200, "\(file): \(reply.text)") }
        }
        XCTAssertGreaterThan(replies.all.compactMap { $0 }.count, 0, "no request was in flight")
    }
}

/// The OpenAPI document against the router, in process.
final class ServeOpenAPITests: XCTestCase {
    func testDocumentParsesAndNamesEveryRegisteredRoute() throws {
        let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any])
        XCTAssertEqual(document["openapi"] as? String, "3.1.0")
        let paths = try XCTUnwrap(document["paths"] as? [String: [String: Any]])
        let model = try CaptionModel(directory: GlimpseCLI.fixtureModel())
        let metrics = ServeMetrics()
        let worker = InferenceWorker(model: model, limits: .init(maxBatch: 1, maxWait: .zero, queueCapacity: 1), metrics: metrics)
        let limits = ServeLimits(maxBodyBytes: 1, maxImagesPerRequest: 1, maxBeams: 1, maxTokens: 1, maxPixels: 1, requestTimeout: .seconds(1))
        let service = try CaptionService(model: model, limits: limits, worker: worker, metrics: metrics)
        let routes = service.router(logger: .init(label: "test")).routes
        XCTAssertEqual(routes.count, 6)
        for route in routes {
            let operations = paths[route.path.description]
            XCTAssertNotNil(operations?[route.method.rawValue.lowercased()], "\(route.method) \(route.path) is not in openapi.json")
        }
        XCTAssertEqual(Set(paths.keys), Set(routes.map { $0.path.description }))
    }

    /// The server fuzzed against its own OpenAPI document by schemathesis from the tools venv (skipped
    /// without it; `make venv` installs it), bounded at 40 cases per operation: no 5xx, statuses,
    /// content types, headers and bodies as the document says, schema-invalid input refused, 405 with
    /// `Allow` for methods a path does not answer. Schema-valid bytes that are not an image are 422,
    /// as they must be, so `positive_data_acceptance` is the one check left out.
    func testSchemathesisFindsNothingAgainstTheDocument() throws {
        let st = DefaultModelTests.root.appendingPathComponent(".venv/bin/st")
        guard FileManager.default.isExecutableFile(atPath: st.path) else {
            throw XCTSkip("schemathesis is not installed in the tools venv (make venv)")
        }
        let server = try ServeProcess([])
        defer { XCTAssertEqual(server.stop(), 0) }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-st-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let run = Process()
        run.executableURL = st
        run.arguments = ["run", "http://127.0.0.1:\(server.port)/openapi.json", "--checks", "all",
                         "--exclude-checks", "positive_data_acceptance", "--max-examples", "40",
                         "--request-timeout", "30", "--generation-deterministic", "--no-color"]
        run.standardOutput = try FileHandle(forWritingTo: log)
        run.standardError = run.standardOutput
        try run.run()
        run.waitUntilExit()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        XCTAssertEqual(run.terminationStatus, 0, String(output.suffix(4000)))
        XCTAssertTrue(output.contains("Tested: 5"), String(output.suffix(2000)))
    }

    /// The document through `openapi-spec-validator` when Python has it (skipped otherwise).
    func testDocumentPassesOpenAPISpecValidator() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("glimpse-openapi-\(UUID().uuidString).json")
        try Data(OpenAPIDocument.json.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", "import json,sys\ntry:\n from openapi_spec_validator import validate\nexcept ImportError:\n sys.exit(77)\nvalidate(json.load(open(sys.argv[1])))", file.path]
        let err = Pipe()
        python.standardError = err
        do { try python.run() } catch { throw XCTSkip("python3 not found") }
        python.waitUntilExit()
        if python.terminationStatus == 77 { throw XCTSkip("openapi-spec-validator is not installed") }
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(python.terminationStatus, 0, message)
    }
}
