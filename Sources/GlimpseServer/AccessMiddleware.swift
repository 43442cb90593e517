import Foundation
import Glimpse
import Hummingbird
import Logging

/// Around every request: errors become JSON bodies `{"error", "code"}` (Hummingbird's own, such as
/// 404, included), one access log line goes to the logger (method, route, status, time, sizes;
/// never the body), and the request is counted in the metrics by route and status.
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    let metrics: ServeMetrics
    let routes: RouteMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do { response = try await next(request, context) } catch let error as ServeError {
            response = error.response
        } catch let error as HTTPResponseError {
            response = Self.serveError(for: error.status, path: request.uri.path, routes: routes).response
        } catch {
            response = ServeError(.captioningFailed, "internal error: \(RecordPipeline.describe(error))").response
        }
        // The route's pattern, not the raw path: a scan of random URLs must not grow the metrics.
        let route = context.endpointPath ?? "unmatched"
        let elapsed = ContinuousClock.now - start
        metrics.request(route: route, method: request.method.rawValue, status: response.status.code, duration: elapsed)
        logger.info("request", metadata: [
            "method": .string(request.method.rawValue), "route": .string(route), "status": .stringConvertible(response.status.code),
            "ms": .string(String(format: "%.1f", InferenceWorker.seconds(elapsed) * 1000)),
            "bytes_in": .string(request.headers[.contentLength] ?? "-"),
        ])
        return response
    }

    static func serveError(for status: HTTPResponse.Status, path: String, routes: RouteMethods) -> ServeError {
        // The router answers 404 for a path it knows asked with a method it does not: that is 405.
        if status == .notFound, let methods = routes.methods[path] {
            return ServeError(.methodNotAllowed, "method not allowed on \(path) (allowed: \(methods.joined(separator: ", ")))", allow: methods)
        }
        switch status {
        case .notFound: return ServeError(.notFound, "no route \(path.prefix(200)) (see /openapi.json)")
        case .methodNotAllowed: return ServeError(.methodNotAllowed, "method not allowed on \(path.prefix(200))")
        case .contentTooLarge: return ServeError(.payloadTooLarge, "the body is larger than the server's limit")
        case .badRequest: return ServeError(.badOption, "bad request")
        default: return ServeError(.captioningFailed, "HTTP \(status.code)")
        }
    }
}

/// The methods each route path answers, read from the router once its routes are added (before the
/// server starts; read-only afterwards).
final class RouteMethods: @unchecked Sendable {
    private(set) var methods: [String: [String]] = [:]

    func record<Context>(_ router: Router<Context>) {
        var byPath: [String: [String]] = [:]
        for route in router.routes { byPath[route.path.description, default: []].append(route.method.rawValue) }
        methods = byPath.mapValues { $0.sorted() }
    }
}
