import Foundation

/// Everything that can go wrong resolving or downloading a Hub model. Every case names the repo, and
/// the file where one is involved. Tokens never appear in any message (URLs are built without them).
public enum HubError: Error, CustomStringConvertible, LocalizedError {
    case invalidModelID(String, reason: String)
    /// The Hub answered RepoNotFound (401 anonymous, 404 authenticated) for the repo.
    case repositoryNotFound(repo: String, status: Int, authenticated: Bool)
    case revisionNotFound(repo: String, revision: String)
    case entryNotFound(repo: String, file: String, revision: String)
    /// A gated repo, or a token that does not grant access (401/403).
    case accessDenied(repo: String, file: String?, status: Int, gated: Bool, message: String?)
    /// Any other HTTP failure.
    case httpStatus(repo: String, file: String?, status: Int, url: String, message: String?)
    /// The endpoint could not be reached (DNS, refused connection, timeout, TLS).
    case network(repo: String, file: String?, endpoint: String, reason: String)
    /// HF_HUB_OFFLINE is set and the model (or a file of it) is not in the cache.
    case offlineNotCached(model: String, cache: String)
    /// An answer that is not what the Hub sends (missing X-Repo-Commit, malformed JSON...).
    case badResponse(repo: String, file: String?, reason: String)
    /// The downloaded bytes do not hash to what the Hub advertises; nothing was kept.
    case integrity(repo: String, file: String, algorithm: String, expected: String, actual: String)
    case sizeMismatch(repo: String, file: String, expected: Int, actual: Int)
    case diskFull(repo: String, file: String, directory: String, needed: Int64, available: Int64?)
    case io(repo: String, file: String?, path: String, reason: String)
    /// The repo has nothing Glimpse can load.
    case noUsableWeights(repo: String, revision: String, files: [String])

    public var description: String {
        switch self {
        case let .invalidModelID(text, reason):
            return "'\(text)' is not a Hub model ID: \(reason)"
        case let .repositoryNotFound(repo, status, authenticated):
            let hint = authenticated
                ? "check the name; the token given does not grant access to it if it is private or gated"
                : "check the name; if it is private or gated, set HF_TOKEN or pass --token"
            return "\(repo): repository not found on the Hub (HTTP \(status)); \(hint)"
        case let .revisionNotFound(repo, revision):
            return "\(repo): revision '\(revision)' not found (no such branch, tag or commit)"
        case let .entryNotFound(repo, file, revision):
            return "\(repo): file '\(file)' not found at revision \(revision)"
        case let .accessDenied(repo, file, status, gated, message):
            let what = file.map { "\(repo)/\($0)" } ?? repo
            let why = gated ? "the repository is gated: accept its conditions on the Hub, then set HF_TOKEN or pass --token"
                            : "not authorized: set HF_TOKEN or pass --token with a token that can read it"
            return "\(what): access denied (HTTP \(status)): \(why)" + (message.map { " (\($0))" } ?? "")
        case let .httpStatus(repo, file, status, url, message):
            let what = file.map { "\(repo)/\($0)" } ?? repo
            return "\(what): HTTP \(status) from \(url)" + (message.map { ": \($0)" } ?? "")
        case let .network(repo, file, endpoint, reason):
            let what = file.map { "\(repo)/\($0)" } ?? repo
            return "\(what): cannot reach \(endpoint) (\(reason)); check the connection or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache"
        case let .offlineNotCached(model, cache):
            return "\(model) is not in the Hugging Face cache (\(cache)) and HF_HUB_OFFLINE is set; run `glimpse pull \(model)` with the network on (or unset HF_HUB_OFFLINE)"
        case let .badResponse(repo, file, reason):
            let what = file.map { "\(repo)/\($0)" } ?? repo
            return "\(what): unexpected answer from the Hub: \(reason)"
        case let .integrity(repo, file, algorithm, expected, actual):
            return "\(repo)/\(file): download corrupt: \(algorithm) \(actual), the Hub advertises \(expected); nothing was kept, run the command again"
        case let .sizeMismatch(repo, file, expected, actual):
            return "\(repo)/\(file): download has \(actual) bytes, the Hub advertises \(expected); nothing was kept, run the command again"
        case let .diskFull(repo, file, directory, needed, available):
            let free = available.map { ", \(ByteCount.format($0)) free" } ?? ""
            return "\(repo)/\(file): not enough disk space in \(directory): needs \(ByteCount.format(needed))\(free)"
        case let .io(repo, file, path, reason):
            let what = file.map { "\(repo)/\($0)" } ?? repo
            return "\(what): \(path): \(reason)"
        case let .noUsableWeights(repo, revision, files):
            let listed = files.prefix(8).joined(separator: ", ") + (files.count > 8 ? ", ..." : "")
            return "\(repo)@\(revision): no model.safetensors or pytorch_model.bin at the top of the repo (files: \(listed))"
        }
    }

    public var errorDescription: String? { description }
}

/// Human byte counts for messages and progress ("1.2 GB", decimal units as the Hub shows them).
public enum ByteCount {
    public static func format<I: BinaryInteger>(_ n: I) -> String {
        let value = Double(n)
        let units = ["B", "kB", "MB", "GB", "TB", "PB"]
        var scaled = value, unit = 0
        while scaled >= 1000 && unit < units.count - 1 { scaled /= 1000; unit += 1 }
        return unit == 0 ? "\(Int64(n)) B" : String(format: "%.1f", scaled) + " " + units[unit]
    }
}
