import Foundation
import XCTest
import Engine
import Generation
import Kernels

/// The README's "As a library" example, compiled and run on the tiny model.
final class LibraryExampleTests: XCTestCase {
    func testReadmeLibraryExampleCompilesAndRuns() async throws {
        let path = GenPaths.fixture.path   // README: "mixtral-q8_0.gguf"
        var printed = ""
        // --- README (same code; maxTokens kept small) ---
        let model = try Model(path: path)
        let session = try Session(model: model, pool: WorkerPool(), contextLength: 4096)
        for try await piece in session.respond(to: "Name three rivers in France.", maxTokens: 16) {
            print(piece, terminator: "")
            printed += piece
        }
        // ---
        print()
        // The answer may be short (the tiny model can end it at once); the stream must have
        // delivered exactly the recorded answer, and tokens were generated.
        XCTAssertEqual(session.messages.map(\.role), [.user, .assistant])
        let prompt = try session.template.tokens([ChatMessage(role: .user, content: "Name three rivers in France.")], tokenizer: session.tokenizer)
        XCTAssertGreaterThan(session.history.count, prompt.count)
        XCTAssertEqual(session.messages.last?.content, printed)
    }

    /// The README's example text is what the test above runs.
    func testReadmeStillShowsThatExample() throws {
        let readme = try String(contentsOf: GenPaths.repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        for line in [
            "let model = try Model(path: \"mixtral-q8_0.gguf\")",
            "let session = try Session(model: model, pool: WorkerPool(), contextLength: 4096)",
            "for try await piece in session.respond(to: \"Name three rivers in France.\") {",
            "print(piece, terminator: \"\")",
        ] {
            XCTAssertTrue(readme.contains(line), "README no longer contains: \(line) — update LibraryExampleTests")
        }
    }

    /// `respond(to:)` as an AsyncSequence should stream: the first piece arrives while the answer
    /// is still being generated (the session's history is only updated once the answer is done).
    func testRespondStreamYieldsBeforeTheAnswerIsComplete() async throws {
        let session = try greedySession(try Shared.fixture())
        var historyWhenFirstPieceArrived: Int?
        let start = Date()
        let stream = session.respond(to: "Write a short poem about the sea.", maxTokens: 24)
        let returnedAfter = Date().timeIntervalSince(start)
        for try await _ in stream where historyWhenFirstPieceArrived == nil {
            historyWhenFirstPieceArrived = session.history.count
        }
        let total = Date().timeIntervalSince(start)
        XCTAssertNotNil(historyWhenFirstPieceArrived)
        XCTAssertEqual(historyWhenFirstPieceArrived, 0,
                       "respond(to:) generated the whole answer (\(String(format: "%.2f", returnedAfter)) s of \(String(format: "%.2f", total)) s) before returning the stream: nothing is streamed")
    }

    /// Abandoning a streamed answer and asking again at once: the second call waits for the first
    /// generation to stop instead of running beside it on the same model, and the conversation
    /// holds both turns in order.
    func testAbandonedStreamThenNextTurn() async throws {
        let session = try greedySession(try Shared.fixture())
        for try await _ in session.respond(to: "Write a long story about the sea.", maxTokens: 200) { break }
        let r = try session.respond(to: "Name three rivers in France.", system: nil, maxTokens: 8)
        XCTAssertFalse(r.tokens.isEmpty)
        XCTAssertEqual(session.messages.map(\.role), [.user, .assistant, .user, .assistant])
        XCTAssertEqual(session.messages.last(where: { $0.role == .user })?.content, "Name three rivers in France.")
        XCTAssertEqual(Array(session.history.prefix(session.cachedTokens.count)), session.cachedTokens)
    }

    /// Errors surface through the stream.
    func testRespondStreamThrowsErrors() async throws {
        let session = try greedySession(try Shared.fixture(), contextLength: 8)
        var threw = false
        do {
            for try await _ in session.respond(to: String(repeating: "A long message that cannot fit. ", count: 4), maxTokens: 4) {}
        } catch { threw = true }
        XCTAssertTrue(threw)
    }
}
