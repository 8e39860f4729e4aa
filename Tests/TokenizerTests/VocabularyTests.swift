import XCTest
@testable import Tokenizer

final class VocabularyTests: XCTestCase {
    func testMistralSpecialIDs() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        let vocabulary = tokenizer.vocabulary
        XCTAssertEqual(tokenizer.vocabularySize, 32000)
        XCTAssertEqual(vocabulary.unkID, 0)
        XCTAssertEqual(vocabulary.bosID, 1)
        XCTAssertEqual(vocabulary.eosID, 2)
        XCTAssertTrue(vocabulary.addBOS)
        XCTAssertTrue(vocabulary.addDummyPrefix)
        XCTAssertEqual(tokenizer.piece(0), "<unk>")
        XCTAssertEqual(tokenizer.piece(1), "<s>")
        XCTAssertEqual(tokenizer.piece(2), "</s>")
        XCTAssertEqual(vocabulary.types[0], .unknown)
        XCTAssertEqual(vocabulary.types[1], .control)
        XCTAssertEqual(vocabulary.types[2], .control)
        for id in 3...258 {
            XCTAssertEqual(vocabulary.types[id], .byte, "id \(id)")
            let expected = "<0x" + String(id - 3, radix: 16, uppercase: true).leftPadded(to: 2) + ">"
            XCTAssertEqual(tokenizer.piece(Int32(id)), expected)
        }
        XCTAssertEqual(vocabulary.types[259...].filter { $0 != .normal }.count, 0)
        XCTAssertEqual(tokenizer.id(ofPiece: "<s>"), 1)
        XCTAssertEqual(tokenizer.id(ofPiece: "<0x0A>"), 13)
        XCTAssertEqual(tokenizer.id(ofPiece: "▁"), 28705)
        XCTAssertNil(tokenizer.id(ofPiece: "definitely not a piece"))
        XCTAssertEqual(tokenizer.piece(-1), "")
        XCTAssertEqual(tokenizer.piece(32000), "")
    }

    func testControlAndUnknownDecoding() throws {
        let tokenizer = try TokenizerFixtures.sharedTokenizer()
        XCTAssertEqual(tokenizer.decode([1, 2]), "")
        XCTAssertEqual(tokenizer.decode([0]), " \u{2047} ")
        XCTAssertEqual(tokenizer.decode([1, 0, 22557]), " \u{2047}  Hello")
        XCTAssertEqual(tokenizer.decode([-5, 40000, 22557]), "Hello", "out-of-range ids are ignored")
        XCTAssertEqual(tokenizer.decode([]), "")
    }

    func testVocabularyFromArraysMatchesModel() throws {
        let model = try TokenizerFixtures.sharedTokenizer().vocabulary
        let rebuilt = Vocabulary(pieces: model.pieces, scores: model.scores, types: model.types)
        XCTAssertEqual(rebuilt, model)
        let tokenizer = try Tokenizer(vocabulary: rebuilt)
        XCTAssertEqual(tokenizer.encode("Hello world!"), [22557, 1526, 28808])
    }

    // MARK: - Toy vocabularies

    private func toy(
        _ entries: [(String, Float, TokenType)], addDummyPrefix: Bool = false
    ) throws -> Tokenizer {
        let all: [(String, Float, TokenType)] =
            [("<unk>", 0, .unknown), ("<s>", 0, .control), ("</s>", 0, .control)] + entries
        return try Tokenizer(vocabulary: Vocabulary(
            pieces: all.map { $0.0 }, scores: all.map { $0.1 }, types: all.map { $0.2 },
            addDummyPrefix: addDummyPrefix))
    }

    private func pieces(_ tokenizer: Tokenizer, _ text: String) -> [String] {
        tokenizer.encode(text).map { tokenizer.piece($0) }
    }

    func testEqualScoresMergeLeftmostFirst() throws {
        let tokenizer = try toy([("a", 0, .normal), ("b", 0, .normal), ("ab", 1, .normal), ("ba", 1, .normal)])
        XCTAssertEqual(pieces(tokenizer, "aba"), ["ab", "a"])
        XCTAssertEqual(pieces(tokenizer, "bab"), ["ba", "b"])
    }

    func testHighestScoreMergesFirst() throws {
        let tokenizer = try toy([("a", 0, .normal), ("b", 0, .normal), ("ab", 1, .normal), ("ba", 2, .normal)])
        XCTAssertEqual(pieces(tokenizer, "aba"), ["a", "ba"])
    }

    func testUnknownWithoutByteFallbackCollapses() throws {
        let tokenizer = try toy([("a", 0, .normal), ("b", 0, .normal)])
        XCTAssertEqual(tokenizer.encode("xyz"), [0])
        XCTAssertEqual(tokenizer.encode("axyb"), [3, 0, 4])
        XCTAssertEqual(tokenizer.encode("axbyb"), [3, 0, 4, 0, 4])
    }

    func testMissingBytePieceFallsBackToUnknown() throws {
        let tokenizer = try toy([("a", 0, .normal), ("<0x78>", 0, .byte)])
        // "x" = 0x78 has a byte piece, "é" = C3 A9 has none.
        XCTAssertEqual(tokenizer.encode("xé"), [4, 0, 0])
        XCTAssertEqual(tokenizer.decode([4, 3]), "xa")
    }

    func testUnusedPiecesAreSplitBack() throws {
        let tokenizer = try toy([
            ("a", 0, .normal), ("b", 0, .normal), ("c", 0, .normal),
            ("ab", 1, .normal), ("abc", 5, .unused),
        ])
        XCTAssertEqual(pieces(tokenizer, "abc"), ["ab", "c"])
    }

    func testUserDefinedPiecesAreAtomic() throws {
        let tokenizer = try toy([
            ("x", 0, .normal), ("y", 0, .normal), ("<", 0, .normal), ("t", 0, .normal), (">", 0, .normal),
            ("x<", 10, .normal), ("<tag>", 0, .userDefined),
        ])
        XCTAssertEqual(pieces(tokenizer, "x<tag>y"), ["x", "<tag>", "y"])
        XCTAssertEqual(pieces(tokenizer, "x<t"), ["x<", "t"])
    }

    func testControlPiecesAreNeverProducedFromText() throws {
        let tokenizer = try toy([("<", 0, .normal), ("s", 0, .normal), (">", 0, .normal), ("<s", 1, .normal)])
        XCTAssertEqual(pieces(tokenizer, "<s>"), ["<s", ">"])
    }

    func testDummyPrefixIsOnlyStrippedWhenEnabled() throws {
        let entries: [(String, Float, TokenType)] = [("▁", 0, .normal), ("a", 0, .normal), ("▁a", 1, .normal)]
        let with = try toy(entries, addDummyPrefix: true)
        XCTAssertEqual(pieces(with, "a"), ["▁a"])
        XCTAssertEqual(with.decode(with.encode("a a")), "a a")
        let without = try toy(entries, addDummyPrefix: false)
        XCTAssertEqual(pieces(without, "a"), ["a"])
        XCTAssertEqual(without.decode([5]), " a")
    }

    func testCanonicallyEquivalentPiecesStayDistinct() throws {
        let tokenizer = try toy([("e", 0, .normal), ("\u{301}", 0, .normal), ("\u{E9}", 0, .normal)])
        XCTAssertEqual(tokenizer.id(ofPiece: "\u{E9}"), 5)
        XCTAssertEqual(tokenizer.id(ofPiece: "e\u{301}"), nil)
        XCTAssertEqual(tokenizer.encode("e\u{301}"), [3, 4])
    }

    func testInvalidVocabulariesThrow() {
        let invalid: [(String, Vocabulary)] = [
            ("empty", Vocabulary(pieces: [], scores: [], types: [])),
            ("length mismatch", Vocabulary(pieces: ["<unk>", "a"], scores: [0], types: [.unknown, .normal])),
            ("unk out of range", Vocabulary(pieces: ["a"], scores: [0], types: [.normal], unkID: 5)),
            ("bos out of range", Vocabulary(pieces: ["<unk>"], scores: [0], types: [.unknown], bosID: 9)),
            ("empty piece", Vocabulary(pieces: ["<unk>", ""], scores: [0, 0], types: [.unknown, .normal],
                                       bosID: -1, eosID: -1)),
            ("bad byte piece", Vocabulary(pieces: ["<unk>", "<0xZZ>"], scores: [0, 0], types: [.unknown, .byte],
                                          bosID: -1, eosID: -1)),
        ]
        for (name, vocabulary) in invalid {
            XCTAssertThrowsError(try Tokenizer(vocabulary: vocabulary), name) { error in
                guard case TokenizerError.invalidVocabulary = error else {
                    return XCTFail("\(name): expected invalidVocabulary, got \(error)")
                }
            }
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
