import Foundation

/// A Hugging Face model repository and revision, written `OWNER/NAME` or `OWNER/NAME@REVISION`.
public struct HubModelID: Sendable, Hashable, CustomStringConvertible {
    public let owner: String
    public let name: String
    /// A branch, tag or commit; "main" when none is given, as on the Hub.
    public let revision: String

    public static let defaultRevision = "main"

    /// `owner/name`, the repo id as the Hub spells it.
    public var repo: String { "\(owner)/\(name)" }
    /// The cache folder name huggingface_hub uses: `models--owner--name`.
    public var cacheFolderName: String { "models--\(owner)--\(name)" }
    /// Whether `revision` is a full commit hash (then no ref is written or read).
    public var revisionIsCommit: Bool { Self.isCommitHash(revision) }

    public var description: String { revision == Self.defaultRevision ? repo : "\(repo)@\(revision)" }

    /// Parses `OWNER/NAME[@REVISION]`; `revision` (from --revision) wins over `@REVISION` only when
    /// they agree, so a contradiction is reported instead of silently picking one.
    /// Names follow the Hub's rules: letters, digits, `-`, `_`, `.`, at most 96 characters, not
    /// starting or ending with `-`/`.`, no `--` or `..` (which would also make the cache folder ambiguous).
    public init(parsing text: String, revision explicit: String? = nil) throws {
        var spec = Substring(text)
        var revision: String?
        if let at = spec.firstIndex(of: "@") {
            revision = String(spec[spec.index(after: at)...])
            spec = spec[..<at]
        }
        let parts = spec.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, Self.isValidName(parts[0]), Self.isValidName(parts[1]) else {
            throw HubError.invalidModelID(text, reason: "expected OWNER/NAME or OWNER/NAME@REVISION (letters, digits, '-', '_', '.')")
        }
        if let explicit, let revision, explicit != revision {
            throw HubError.invalidModelID(text, reason: "--revision \(explicit) contradicts @\(revision)")
        }
        let chosen = explicit ?? revision ?? Self.defaultRevision
        guard Self.isValidRevision(chosen) else {
            throw HubError.invalidModelID(text, reason: "revision '\(chosen)' is not a valid branch, tag or commit name")
        }
        owner = String(parts[0])
        name = String(parts[1])
        self.revision = chosen
    }

    /// Whether `text` reads as a Hub ID rather than a path: `OWNER/NAME[@REV]` with no leading `.`/`/`
    /// or `~`. The caller checks first whether such a path exists on disk (a directory wins).
    public static func looksLikeID(_ text: String) -> Bool {
        guard let first = text.first, first != "." && first != "/" && first != "~" else { return false }
        return (try? HubModelID(parsing: text)) != nil
    }

    static func isValidName<S: StringProtocol>(_ s: S) -> Bool {
        guard !s.isEmpty, s.count <= 96, !s.contains("--"), !s.contains("..") else { return false }
        guard let first = s.first, let last = s.last, first != "-", first != ".", last != "-", last != "." else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0)) }
    }

    /// Git ref names as the Hub accepts them (including `refs/pr/N`); no `..`, no leading `/`, no
    /// components that would leave `refs/` in the cache.
    static func isValidRevision(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 255, !s.hasPrefix("/"), !s.hasSuffix("/"), !s.contains("..") else { return false }
        for component in s.split(separator: "/", omittingEmptySubsequences: false) {
            guard !component.isEmpty, component != ".", !component.hasPrefix(".") else { return false }
        }
        return s.unicodeScalars.allSatisfy { $0.isASCII && $0.value > 0x20 && $0.value != 0x7F && !"~^:?*[\\ ".unicodeScalars.contains($0) }
    }

    static func isCommitHash(_ s: String) -> Bool {
        s.utf8.count == 40 && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
