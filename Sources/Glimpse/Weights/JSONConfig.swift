import Foundation

/// A parsed JSON object with typed, defaulted accessors whose errors name the file and the key.
/// Hugging Face configs omit keys that have defaults and use `null` freely; this reads them as transformers does.
public struct JSONConfig: @unchecked Sendable {
    public let file: String
    public let values: [String: Any]

    public init(values: [String: Any], file: String) {
        self.values = values
        self.file = file
    }

    /// Parses `url`; a missing file, bad JSON or a non-object top level is an error naming the file.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ModelError.missingFile(url) }
        try self.init(data: data, file: url.path)
    }

    public init(data: Data, file: String) throws {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw ModelError.invalidConfig(file: file, detail: "not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = object as? [String: Any] else {
            throw ModelError.invalidConfig(file: file, detail: "top level is not a JSON object")
        }
        self.init(values: dict, file: file)
    }

    /// A JSON number (true/false excluded: on Linux, JSONSerialization's 0 and 1 also cast to Bool).
    static func number(_ value: Any?) -> NSNumber? {
        guard let value, !(value is NSNull), String(describing: type(of: value)) != "__NSCFBoolean",
              !(type(of: value) == Bool.self) else { return nil }
        return value as? NSNumber
    }

    public func has(_ key: String) -> Bool {
        guard let v = values[key] else { return false }
        return !(v is NSNull)
    }

    private func fail(_ key: String, _ what: String) -> ModelError {
        .invalidConfig(file: file, detail: "key '\(key)' \(what)")
    }

    public func int(_ key: String) throws -> Int? {
        guard has(key) else { return nil }
        guard let v = Self.integer(values[key]) else { throw fail(key, "is not an integer") }
        return v
    }

    /// A JSON number with an integral value (within ±1e15, so it converts exactly), else nil:
    /// `0.7` is not read as 0. A Swift `Int` (options built in code, e.g. from CLI flags) is exact at any size.
    static func integer(_ value: Any?) -> Int? {
        if let value, type(of: value) == Int.self { return value as? Int }
        guard let n = number(value) else { return nil }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), abs(d) < 1e15 else { return nil }
        return Int(d)
    }

    public func int(_ key: String, default value: Int) throws -> Int { try int(key) ?? value }

    /// An integer that must lie in `range` (sizes, counts): bounds guard against hostile configs.
    public func int(_ key: String, default value: Int? = nil, in range: ClosedRange<Int>) throws -> Int {
        guard let v = try int(key) ?? value else { throw fail(key, "is missing") }
        guard range.contains(v) else { throw fail(key, "= \(v) is outside \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    public func double(_ key: String) throws -> Double? {
        guard has(key) else { return nil }
        guard let n = Self.number(values[key]) else { throw fail(key, "is not a number") }
        return n.doubleValue
    }

    public func double(_ key: String, default value: Double) throws -> Double { try double(key) ?? value }

    public func bool(_ key: String, default value: Bool) throws -> Bool {
        guard has(key) else { return value }
        guard Self.number(values[key]) == nil, let b = values[key] as? Bool else { throw fail(key, "is not a boolean") }
        return b
    }

    public func string(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        guard let s = values[key] as? String else { throw fail(key, "is not a string") }
        return s
    }

    public func object(_ key: String) throws -> JSONConfig? {
        guard has(key) else { return nil }
        guard let d = values[key] as? [String: Any] else { throw fail(key, "is not an object") }
        return JSONConfig(values: d, file: "\(file) [\(key)]")
    }

    public func doubles(_ key: String) throws -> [Double]? {
        guard has(key) else { return nil }
        if let n = Self.number(values[key]) { return [n.doubleValue] }
        guard let a = values[key] as? [Any] else { throw fail(key, "is not a list of numbers") }
        return try a.map { v in
            guard let n = Self.number(v) else { throw fail(key, "is not a list of numbers") }
            return n.doubleValue
        }
    }

    public func strings(_ key: String) throws -> [String]? {
        guard has(key) else { return nil }
        guard let a = values[key] as? [Any] else { throw fail(key, "is not a list of strings") }
        return try a.map { v in
            guard let s = v as? String else { throw fail(key, "is not a list of strings") }
            return s
        }
    }

    /// An int, or the first int of a list (e.g. `eos_token_id` may be a list in generation configs).
    public func intOrFirst(_ key: String) throws -> Int? {
        guard has(key) else { return nil }
        if let list = values[key] as? [Any] {
            return try list.first.map { v in
                guard let n = Self.integer(v) else { throw fail(key, "is not a list of integers") }
                return n
            }
        }
        return try int(key)
    }

    /// All ints of an int-or-list key.
    public func ints(_ key: String) throws -> [Int]? {
        guard has(key) else { return nil }
        if let list = values[key] as? [Any] {
            return try list.map { v in
                guard let n = Self.integer(v) else { throw fail(key, "is not a list of integers") }
                return n
            }
        }
        return try int(key).map { [$0] }
    }
}

extension DecodingError {
    /// The key path at fault ("size.height") and what is wrong with it, for a message that names the
    /// key: valid JSON whose values do not fit (a number too large for Int, a string for a number)
    /// is not "malformed JSON".
    public var keyAndDetail: (key: String, detail: String) {
        func path(_ context: Context, _ last: CodingKey? = nil) -> String {
            (context.codingPath + (last.map { [$0] } ?? [])).map { $0.intValue.map(String.init) ?? $0.stringValue }
                .joined(separator: ".")
        }
        switch self {
        case .keyNotFound(let key, let context): return (path(context, key), "is missing")
        case .typeMismatch(let type, let context): return (path(context), "is not \(Self.article(type))")
        case .valueNotFound(let type, let context): return (path(context), "is null, expected \(Self.article(type))")
        case .dataCorrupted(let context):
            let key = path(context)
            // An empty path means the document itself did not parse.
            return (key, key.isEmpty ? "not valid JSON (\(context.debugDescription))" : "is out of range or invalid (\(context.debugDescription))")
        @unknown default: return ("", "\(self)")
        }
    }

    private static func article(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int32.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        default: return "of type \(type)"
        }
    }
}
