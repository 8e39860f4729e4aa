import XCTest
@testable import Tokenizer

final class StreamingDecoderTests: XCTestCase {
    private let replacement: Character = "\u{FFFD}"

    /// Streams `ids` and returns every chunk, the final flush included.
    private func stream(_ ids: [Int32], _ tokenizer: Tokenizer, isFirst: Bool = true) -> [String] {
        var decoder = StreamingDecoder(tokenizer: tokenizer, isFirst: isFirst)
        var chunks = ids.map { decoder.append($0) }
        chunks.append(decoder.flush())
        return chunks
    }

    func testGoldenCasesStreamLikeDecode() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        for golden in try TokenizerFixtures.cases() {
            let chunks = stream(golden.ids, tokenizer)
            let whole = tokenizer.decode(golden.ids)
            XCTAssertSameBytes(chunks.joined(), whole, "streamed text differs for \(golden.text.debugDescription)")
            if !whole.contains(replacement) {
                for chunk in chunks {
                    XCTAssertFalse(chunk.contains(replacement),
                                   "chunk \(chunk.debugDescription) has U+FFFD for \(golden.text.debugDescription)")
                }
            }
        }
    }

    func testMultiByteCharacterSplitOverByteTokens() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        // "🦙" has no piece: ▁ then <0xF0> <0x9F> <0xA6> <0x99>.
        let ids = tokenizer.encode("🦙")
        XCTAssertEqual(ids, [28705, 243, 162, 169, 156])
        XCTAssertEqual(stream(ids, tokenizer), ["", "", "", "", "🦙", ""])
    }

    func testIncompleteSequenceBecomesReplacementOnlyWhenItCannotComplete() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        // <0xF0> <0x9F> then the text piece "▁a": the two bytes can no longer be completed.
        let ids: [Int32] = [243, 162, 264]
        XCTAssertSameBytes(tokenizer.decode(ids), "\u{FFFD}\u{FFFD} a", "decode")
        XCTAssertEqual(stream(ids, tokenizer), ["", "", "\u{FFFD}\u{FFFD} a", ""])
        // Left pending at the end: flush emits them.
        XCTAssertEqual(stream([264, 243, 162], tokenizer), ["a", "", "", "\u{FFFD}\u{FFFD}"])
        XCTAssertSameBytes(tokenizer.decode([264, 243, 162]), "a\u{FFFD}\u{FFFD}", "decode")
    }

    func testInvalidBytesAreReplacedImmediately() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        // A lone continuation byte (0x80 = id 131) cannot start a character.
        XCTAssertEqual(stream([131, 68], tokenizer), ["\u{FFFD}", "A", ""])
        // <0xE2> followed by <0x41>: E2 is known to be invalid once a non-continuation arrives.
        XCTAssertEqual(stream([229, 68], tokenizer), ["", "\u{FFFD}A", ""])
        XCTAssertSameBytes(tokenizer.decode([229, 68]), "\u{FFFD}A", "decode")
        // Overlong encoding C0 AF: two replacements, like sentencepiece.
        XCTAssertSameBytes(tokenizer.decode([195, 178]), "\u{FFFD}\u{FFFD}", "decode overlong")
    }

    func testLeadingSpaceHandling() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        // BOS first: still strips the dummy prefix of the first text piece.
        XCTAssertEqual(stream([1, 22557, 1526], tokenizer), ["", "Hello", " world", ""])
        XCTAssertSameBytes(tokenizer.decode([1, 22557, 1526, 2]), "Hello world", "decode")
        // Continuing a text: nothing is stripped.
        XCTAssertEqual(stream([22557, 1526], tokenizer, isFirst: false), [" Hello", " world", ""])
        // A lone "▁" is the dummy prefix; the next piece keeps its space.
        XCTAssertEqual(stream([28705, 264], tokenizer), ["", " a", ""])
    }

    func testRandomIDSequencesStreamLikeDecode() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        var generator = SplitMix64(seed: 7)
        for _ in 0..<300 {
            let count = Int(generator.next() % 12)
            let ids: [Int32] = (0..<count).map { _ in
                // Bias towards byte pieces so multi-byte sequences are exercised.
                generator.next() % 2 == 0
                    ? Int32(3 + generator.next() % 256)
                    : Int32(generator.next() % UInt64(tokenizer.vocabularySize))
            }
            let chunks = stream(ids, tokenizer)
            let whole = tokenizer.decode(ids)
            XCTAssertSameBytes(chunks.joined(), whole, "streamed text differs for ids \(ids)")
            let expectedReplacements = whole.unicodeScalars.filter { $0 == "\u{FFFD}" }.count
            let streamedReplacements = chunks.joined().unicodeScalars.filter { $0 == "\u{FFFD}" }.count
            XCTAssertEqual(streamedReplacements, expectedReplacements, "ids \(ids)")
        }
    }
}
