import Foundation
import XCTest
@testable import Glimpse

/// Fixtures written by tools/make_image_fixtures.py (PIL is the reference).
enum ImageFixtures {
    static var directory: URL {
        guard let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("test bundle has no Fixtures directory")
        }
        return fixtures.appendingPathComponent("images")
    }

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static func data(_ name: String) throws -> Data { try Data(contentsOf: url(name)) }

    /// Parses a JSON file in the fixtures directory.
    static func json(_ name: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: data(name))
        guard let dictionary = object as? [String: Any] else { throw FixtureError("\(name) is not a JSON object") }
        return dictionary
    }

    static func floats(_ name: String) throws -> [Float] {
        let bytes = try data(name)
        return bytes.withUnsafeBytes { raw in
            (0..<bytes.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

/// SHA-256 of fixture bytes stored as a hash: the library's `Digest` (the Hub client's verifier).
enum SHA256 {
    static func hex(_ bytes: [UInt8]) -> String {
        var digest = Digest(.sha256)
        digest.update(bytes)
        return digest.finalize()
    }
}
