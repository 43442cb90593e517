import Foundation
import Glimpse
import Hummingbird

/// Every refusal the service answers, with its status and the `code` of its JSON body
/// `{"error": message, "code": code}`.
struct ServeError: Error, CustomStringConvertible {
    enum Code: String, CaseIterable {
        case badOption = "bad_option"                       // 400
        case notFound = "not_found"                         // 404
        case methodNotAllowed = "method_not_allowed"        // 405
        case payloadTooLarge = "payload_too_large"          // 413
        case unsupportedMediaType = "unsupported_media_type" // 415
        case undecodableImage = "undecodable_image"         // 422
        case captioningFailed = "captioning_failed"         // 500
        case overloaded = "overloaded"                      // 503 (queue full, too many requests, stopping)
        case timeout = "timeout"                            // 504

        var status: HTTPResponse.Status {
            switch self {
            case .badOption: return .badRequest
            case .notFound: return .notFound
            case .methodNotAllowed: return .methodNotAllowed
            case .payloadTooLarge: return .contentTooLarge
            case .unsupportedMediaType: return .unsupportedMediaType
            case .undecodableImage: return .unprocessableContent
            case .captioningFailed: return .internalServerError
            case .overloaded: return .serviceUnavailable
            case .timeout: return .gatewayTimeout
            }
        }
    }

    var code: Code
    var message: String
    /// Seconds a client should wait before retrying (503).
    var retryAfter: Int?
    /// The methods the path answers (405's `Allow`).
    var allow: [String]?

    init(_ code: Code, _ message: String, retryAfter: Int? = nil, allow: [String]? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.allow = allow
    }

    var description: String { message }

    /// The JSON error response.
    var response: Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if let allow { headers[.allow] = allow.joined(separator: ", ") }
        let body = "{\"error\":\(JSONText.quoted(message)),\"code\":\(JSONText.quoted(code.rawValue))}\n"
        return Response(status: code.status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// A JSON response from already-encoded text.
func jsonResponse(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
}
