import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Blocking HTTP for the Hub client, on Foundation's URLSession (FoundationNetworking, backed by
/// libcurl, on Linux). Chosen over async-http-client because it does everything the Hub protocol
/// needs without a package to build in CI: bodies stream chunk by chunk to a delegate (so a download
/// goes straight to its temporary file and digest), `Range` is a plain request header, gzip is decoded
/// by libcurl, and `willPerformHTTPRedirection` answering nil hands back the 3xx response itself, so
/// the HEAD of an LFS file yields its `X-Linked-Etag`/`X-Linked-Size`/`Location` and redirects are
/// followed (or not) by `HubClient`, which decides where the token may go.
struct HubHTTP {
    struct Response {
        let status: Int
        /// Header names lower-cased.
        let headers: [String: String]
        let url: URL
        var body = Data()

        func header(_ name: String) -> String? { headers[name.lowercased()] }
        var isRedirect: Bool { [301, 302, 303, 307, 308].contains(status) && header("location") != nil }
    }

    /// A transport failure (no answer, or the connection dropped mid-body), as opposed to an HTTP status.
    struct TransportError: Error {
        let reason: String
        /// Whether retrying may help (a dropped connection or timeout rather than a refused one).
        let transient: Bool
    }

    /// Seconds without any data before a request fails.
    var timeout: TimeInterval = 30

    /// One request, redirects not followed; the body is collected (metadata calls: small bodies).
    /// `maxBody` bounds what a hostile server can make us hold.
    func send(_ request: URLRequest, maxBody: Int = 64 << 20) throws -> Response {
        var body = Data()
        var response = try stream(request, onResponse: { _ in }, onData: { chunk in
            guard body.count + chunk.count <= maxBody else {
                throw TransportError(reason: "response body over \(ByteCount.format(maxBody))", transient: false)
            }
            body.append(chunk)
        })
        response.body = body
        return response
    }

    /// One request, redirects not followed; `onResponse` sees the status and headers before any body,
    /// `onData` each chunk. Either may throw to abort the transfer (the error is rethrown here).
    func stream(_ request: URLRequest, onResponse: @escaping (Response) throws -> Void,
                onData: @escaping (Data) throws -> Void) throws -> Response {
        var request = request
        request.timeoutInterval = timeout
        let delegate = TransferDelegate(onResponse: onResponse, onData: onData)
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let configuration = URLSessionConfiguration.ephemeral
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: queue)
        defer { session.finishTasksAndInvalidate() }
        session.dataTask(with: request).resume()
        delegate.done.wait()
        if let error = delegate.failure { throw error }
        guard let response = delegate.response else {
            throw TransportError(reason: "no response", transient: true)
        }
        return response
    }
}

/// Routes one task's callbacks to the closures and records the outcome.
private final class TransferDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let onResponse: (HubHTTP.Response) throws -> Void
    let onData: (Data) throws -> Void
    let done = DispatchSemaphore(value: 0)
    // Written on the session's serial delegate queue, read after `done` is signalled.
    var response: HubHTTP.Response?
    var failure: Error?

    init(onResponse: @escaping (HubHTTP.Response) throws -> Void, onData: @escaping (Data) throws -> Void) {
        self.onResponse = onResponse
        self.onData = onData
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)  // HubClient follows redirects itself
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        guard let http = response as? HTTPURLResponse, let url = http.url ?? dataTask.originalRequest?.url else {
            failure = HubHTTP.TransportError(reason: "not an HTTP response", transient: false)
            completionHandler(.cancel)
            return
        }
        var headers: [String: String] = [:]
        for (key, value) in http.allHeaderFields {
            if let key = key as? String, let value = value as? String { headers[key.lowercased()] = value }
        }
        let parsed = HubHTTP.Response(status: http.statusCode, headers: headers, url: url)
        self.response = parsed
        do {
            try onResponse(parsed)
            completionHandler(.allow)
        } catch {
            failure = error
            completionHandler(.cancel)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard failure == nil else { return }
        do { try onData(data) } catch {
            failure = error
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if failure == nil, let error {
            let code = (error as? URLError)?.code
            let refused: Set<URLError.Code> = [.cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .notConnectedToInternet,
                                              .unsupportedURL, .badURL, .secureConnectionFailed, .serverCertificateUntrusted]
            failure = HubHTTP.TransportError(reason: (error as NSError).localizedDescription,
                                             transient: code.map { !refused.contains($0) } ?? true)
        }
        done.signal()
    }
}
