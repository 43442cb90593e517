import XCTest
@testable import Glimpse
final class VersionTests: XCTestCase {
    func testVersion() { XCTAssertFalse(Glimpse.version.isEmpty) }
}
