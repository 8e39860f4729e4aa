import Foundation
import XCTest
@testable import Tokenizer

/// One line of Fixtures/tokenizer/cases.jsonl: sentencepiece's output for `text`.
struct GoldenCase: Decodable {
    let text: String
    let ids: [Int32]
    let pieces: [String]
    let decoded: String
    let roundtrip: Bool
}

/// Test fixtures, located relative to this file (Tests/TokenizerTests/ → repository root).
enum TokenizerFixtures {
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TokenizerTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // repository root

    static let directory = repositoryRoot.appendingPathComponent("Fixtures/tokenizer")

    static func modelBytes() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent("tokenizer.model")))
    }

    static func cases() throws -> [GoldenCase] {
        let data = try Data(contentsOf: directory.appendingPathComponent("cases.jsonl"))
        let text = String(decoding: data, as: UTF8.self)
        let decoder = JSONDecoder()
        return try text.split(separator: "\n", omittingEmptySubsequences: true).map {
            try decoder.decode(GoldenCase.self, from: Data($0.utf8))
        }
    }

    /// The Mistral tokenizer, built once and shared by all tests.
    static let tokenizer: Result<Tokenizer, Error> = Result {
        try Tokenizer(vocabulary: Vocabulary.fromSentencePieceModel(modelBytes()))
    }

    static func sharedTokenizer() throws -> Tokenizer {
        try tokenizer.get()
    }
}

/// Byte-exact string comparison (Swift's `==` treats canonically equivalent strings as
/// equal, e.g. precomposed "é" and "e" + U+0301, which a tokenizer must keep apart).
func XCTAssertSameBytes(
    _ actual: String, _ expected: String, _ message: @autoclosure () -> String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(Array(actual.utf8), Array(expected.utf8),
                   "\(message()): got \(actual.debugDescription), expected \(expected.debugDescription)",
                   file: file, line: line)
}
