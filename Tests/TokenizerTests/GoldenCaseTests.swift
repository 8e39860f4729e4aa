import Foundation
import XCTest
@testable import Tokenizer

/// Agreement with sentencepiece on the golden cases in Fixtures/tokenizer/cases.jsonl.
final class GoldenCaseTests: XCTestCase {
    func testFixtureIsComplete() throws {
        let cases = try TokenizerFixtures.cases()
        XCTAssertEqual(cases.count, 160)
    }

    func testEncodeMatchesIDs() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        for golden in try TokenizerFixtures.cases() {
            XCTAssertEqual(tokenizer.encode(golden.text), golden.ids,
                           "ids differ for text \(golden.text.debugDescription)")
        }
    }

    func testEncodeMatchesPieces() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        for golden in try TokenizerFixtures.cases() {
            let pieces = tokenizer.encode(golden.text).map { tokenizer.piece($0) }
            XCTAssertEqual(pieces.map { Array($0.utf8) }, golden.pieces.map { Array($0.utf8) },
                           "pieces differ for text \(golden.text.debugDescription): \(pieces) vs \(golden.pieces)")
        }
    }

    func testGoldenPiecesMapToGoldenIDs() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        for golden in try TokenizerFixtures.cases() {
            XCTAssertEqual(golden.pieces.map { tokenizer.id(ofPiece: $0) }, golden.ids.map { Optional($0) },
                           "id(ofPiece:) differs for text \(golden.text.debugDescription)")
        }
    }

    func testDecodeMatchesDecoded() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        for golden in try TokenizerFixtures.cases() {
            XCTAssertSameBytes(tokenizer.decode(golden.ids), golden.decoded,
                               "decode differs for text \(golden.text.debugDescription)")
        }
    }

    func testRoundTrip() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        var checked = 0
        for golden in try TokenizerFixtures.cases() where golden.roundtrip {
            XCTAssertSameBytes(tokenizer.decode(tokenizer.encode(golden.text)), golden.text,
                               "round trip fails for text \(golden.text.debugDescription)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 150)
    }

    func testEncodeWithBOS() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        XCTAssertEqual(tokenizer.encode("Hello world!", addBOS: true), [1, 22557, 1526, 28808])
        XCTAssertEqual(tokenizer.encode("", addBOS: true), [1])
        XCTAssertEqual(tokenizer.encode("Hello world!", addBOS: false), [22557, 1526, 28808])
    }

    /// A long text (30 KB of English) round-trips; encoding it is O(n log n), so this
    /// stays well under a second even in a debug build.
    func testLongTextRoundTrips() throws {
        // shared/ sits beside the repository checkout.
        let url = TokenizerFixtures.repositoryRoot.appendingPathComponent("../shared/reference/text/eval-en.txt")
        guard let data = try? Data(contentsOf: url) else {
            throw XCTSkip("reference text \(url.path) not present (the shared reference material is not beside this checkout)")
        }
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        let text = String(decoding: data, as: UTF8.self)
        let ids = tokenizer.encode(text)
        XCTAssertGreaterThan(ids.count, text.utf8.count / 8)
        XCTAssertSameBytes(tokenizer.decode(ids), text, "long text round trip")
    }
}
