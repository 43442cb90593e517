import Foundation
import XCTest
@testable import Glimpse

/// The scene-world recognizer behind the default model's note. captions.txt holds the captions of
/// `tools/scenes.py --seed 4242 --count 300` (the generator that made the training data).
final class SceneGrammarTests: XCTestCase {
    func testEveryGeneratedCaptionMatches() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/scenes/captions", withExtension: "txt"))
        let captions = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(captions.count, 300)
        for caption in captions { XCTAssertTrue(SceneGrammar.matches(caption), caption) }
        // All four forms occur.
        XCTAssertEqual(Set(captions.map { $0.split(separator: " ").count }), [4, 9, 12, 13])
    }

    func testNearMissesAndPhotoCaptionsDoNotMatch() {
        for caption in [
            "", ",,,,,,,,,,,,,,", "a large,,,,,,,,", "a man riding a horse on a beach",
            "A large red circle", "a large red circle.", "a large  red circle", " a large red circle",
            "a big red circle", "a large pink circle", "a large red oval", "an large red circle",
            "a large red circle to the right of a small blue star", "a large red circle below a small blue star",
            "a large red circle and a small blue star", "a large red circle, a small blue star, a large green square",
            "a large red circle, a small blue star and a large green square and a small black star",
            "a large red circle a small blue star and a large green square",
        ] {
            XCTAssertFalse(SceneGrammar.matches(caption), caption)
        }
    }
}
