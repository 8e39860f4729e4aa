import Foundation
import XCTest
import Engine
import Generation
import Kernels
import Tokenizer

final class SessionTests: XCTestCase {
    private var model: Model!
    private var tmp: URL!

    override func setUpWithError() throws {
        model = try Shared.fixture()
        tmp = try GenPaths.temporaryDirectory("session")
    }

    override func tearDownWithError() throws {
        if let tmp { try? FileManager.default.removeItem(at: tmp) }
    }

    // MARK: - Stop strings and lengths

    /// "\n\t\t-- Larry Wall in <1999999999999999999.C.) Filó" is p0's greedy continuation.
    func testStopStringCutsTheTextBeforeIt() throws {
        let p = try Reference.prompts()[0]
        for stop in ["Wall", "99.C", "\t-", "Fil"] {
            let session = try greedySession(model)
            var streamed = ""
            let r = try session.generate(prompt: p.inputIDs, maxTokens: 32, stop: [stop], onText: { streamed += $0 })
            let expected = String(p.generatedText[..<p.generatedText.range(of: stop)!.lowerBound])
            XCTAssertEqual(r.text, expected, "stop \(stop.debugDescription)")
            XCTAssertEqual(r.finishReason, .stop, "stop \(stop.debugDescription)")
            // Nothing of the stop string (nor anything after it) was ever streamed.
            XCTAssertEqual(streamed, expected, "stop \(stop.debugDescription): streamed text")
            XCTAssertLessThan(r.tokens.count, 32)
            XCTAssertEqual(r.tokens, Array(p.generatedIDs.prefix(r.tokens.count)))
        }
    }

    func testTheEarliestOfSeveralStopStringsWins() throws {
        let p = try Reference.prompts()[0]
        let session = try greedySession(model)
        let r = try session.generate(prompt: p.inputIDs, maxTokens: 32, stop: ["Filó", "Larry", "999"])
        XCTAssertEqual(r.text, "\n\t\t-- ")
        XCTAssertEqual(r.finishReason, .stop)
    }

    func testAStopStringThatNeverAppearsChangesNothing() throws {
        let p = try Reference.prompts()[0]
        let session = try greedySession(model)
        var streamed = ""
        // "<19x" shares a prefix with the text ("<19") that is held back, then released.
        let r = try session.generate(prompt: p.inputIDs, maxTokens: 32, stop: ["<19x", "zzz"], onText: { streamed += $0 })
        XCTAssertEqual(r.text, p.generatedText)
        XCTAssertEqual(streamed, p.generatedText)
        XCTAssertEqual(r.finishReason, .length)
        XCTAssertEqual(r.tokens, p.generatedIDs)
    }

    func testMaxTokensGivesLength() throws {
        let p = try Reference.prompts()[1]
        let session = try greedySession(model)
        for n in [1, 5, 13] {
            let r = try session.generate(prompt: p.inputIDs, maxTokens: n)
            XCTAssertEqual(r.finishReason, .length)
            XCTAssertEqual(r.tokens, Array(p.generatedIDs.prefix(n)))
            XCTAssertEqual(r.stats.generatedTokens, n)
        }
    }

    func testShouldContinueCancels() throws {
        let p = try Reference.prompts()[1]
        let session = try greedySession(model)
        var polls = 0
        let r = try session.generate(prompt: p.inputIDs, maxTokens: 32, shouldContinue: { polls += 1; return polls <= 4 })
        XCTAssertEqual(r.finishReason, .cancelled)
        XCTAssertEqual(r.tokens, Array(p.generatedIDs.prefix(4)))
    }

    func testContextFullStopsWithLength() throws {
        let p = try Reference.prompts()[0]   // 18 tokens
        let session = try greedySession(model, contextLength: 24)
        let r = try session.generate(prompt: p.inputIDs, maxTokens: 32)
        XCTAssertEqual(r.finishReason, .length)
        XCTAssertEqual(r.tokens, Array(p.generatedIDs.prefix(r.tokens.count)))
        XCTAssertGreaterThanOrEqual(r.tokens.count, 6)
        XCTAssertLessThanOrEqual(session.transformer.position, 24)
        // A prompt that does not fit is an error, not a crash.
        XCTAssertThrowsError(try session.generate(prompt: Array(repeating: 1, count: 30), maxTokens: 1))
    }

    // MARK: - Chat turns

    /// The second turn evaluates only what is new: the cached conversation is reused whole.
    func testSecondTurnEvaluatesOnlyTheNewTokens() throws {
        let session = try greedySession(model)
        let first = try session.respond(to: "Hello", system: nil, maxTokens: 12)
        XCTAssertEqual(first.stats.reusedTokens, 0)
        let firstPrompt = try session.template.tokens([ChatMessage(role: .user, content: "Hello")], tokenizer: session.tokenizer)
        XCTAssertEqual(first.stats.promptTokens, firstPrompt.count)
        let history = session.history
        XCTAssertEqual(history, firstPrompt + first.tokens + (first.tokens.last == 2 ? [] : [2]))
        let cachedBefore = session.cachedTokens
        XCTAssertEqual(Array(history.prefix(cachedBefore.count)), cachedBefore, "the cache holds a prefix of the history")

        let second = try session.respond(to: "Again", system: nil, maxTokens: 12)
        let newTurn = session.tokenizer.encode("[INST] Again [/INST]")
        // Everything cached is reused …
        XCTAssertEqual(second.stats.reusedTokens, cachedBefore.count)
        // … and what is evaluated is the new turn plus the end of the last answer that was never
        // fed back (its last sampled token and the EOS closing it).
        let pending = history.count - cachedBefore.count
        XCTAssertEqual(second.stats.promptTokens, newTurn.count + pending)
        XCTAssertLessThanOrEqual(pending, 2)
        XCTAssertEqual(session.history, history + newTurn + second.tokens + (second.tokens.last == 2 ? [] : [2]))
        XCTAssertEqual(session.messages.map(\.role), [.user, .assistant, .user, .assistant])
        XCTAssertEqual(session.messages.map(\.content), ["Hello", first.text, "Again", second.text])
    }

    /// The brief's stricter reading: every token of the previous history comes from the cache and
    /// only "[INST] Again [/INST]" is evaluated.
    func testSecondTurnReusesTheWholePreviousHistory() throws {
        let session = try greedySession(model)
        _ = try session.respond(to: "Hello", system: nil, maxTokens: 12)
        let history = session.history
        let second = try session.respond(to: "Again", system: nil, maxTokens: 12)
        XCTAssertEqual(second.stats.reusedTokens, history.count,
                       "the previous answer's last token and EOS were not in the cache after the first turn")
        XCTAssertEqual(second.stats.promptTokens, session.tokenizer.encode("[INST] Again [/INST]").count)
    }

    /// A multi-turn conversation through the cache gives the same answer as evaluating the whole
    /// conversation from scratch (greedy).
    func testMultiTurnMatchesAFreshEvaluation() throws {
        let a = try greedySession(model)
        _ = try a.respond(to: "Hello", system: nil, maxTokens: 10)
        let second = try a.respond(to: "Tell me about Debian.", system: nil, maxTokens: 10)
        let b = try greedySession(model)
        let fresh = try b.generate(prompt: a.history.dropLast(second.tokens.count + (second.tokens.last == 2 ? 0 : 1)).map { $0 }, maxTokens: 10)
        XCTAssertEqual(fresh.tokens, second.tokens)
    }

    func testSystemPromptGoesIntoTheFirstTurnOnly() throws {
        let session = try greedySession(model)
        let r = try session.respond(to: "Hi", system: "Be brief.", maxTokens: 4)
        let expected = try session.template.tokens([ChatMessage(role: .user, content: "Be brief.\n\nHi")], tokenizer: session.tokenizer)
        XCTAssertEqual(r.stats.promptTokens, expected.count)
        XCTAssertEqual(Array(session.history.prefix(expected.count)), expected)
        XCTAssertEqual(session.messages.first, ChatMessage(role: .system, content: "Be brief."))
    }

    func testResetForgetsTheConversation() throws {
        let session = try greedySession(model)
        let a = try session.respond(to: "Hello", system: nil, maxTokens: 8)
        session.reset()
        XCTAssertTrue(session.history.isEmpty); XCTAssertTrue(session.messages.isEmpty); XCTAssertTrue(session.cachedTokens.isEmpty)
        XCTAssertEqual(session.transformer.position, 0)
        let b = try session.respond(to: "Hello", system: nil, maxTokens: 8)
        XCTAssertEqual(b.stats.reusedTokens, 0)
        XCTAssertEqual(a.tokens, b.tokens)
    }

    func testContextOverflowDropsOldTurnsWithANotice() throws {
        // Each turn is about 20 prompt tokens + 8 answer tokens + EOS: the third turn overflows 64.
        let session = try greedySession(model, contextLength: 64)
        var notices: [String] = []
        session.onNotice = { notices.append($0) }
        for i in 0..<4 {
            let r = try session.respond(to: "Message number \(i) about the sea and the lighthouse.", system: nil, maxTokens: 8)
            XCTAssertLessThanOrEqual(session.transformer.position, 64)
            XCTAssertFalse(r.tokens.isEmpty)
        }
        XCTAssertFalse(notices.isEmpty, "the context filled: a notice is expected")
        XCTAssertTrue(notices.allSatisfy { $0.contains("dropped") }, "\(notices)")
        XCTAssertLessThan(session.messages.count, 8)
        XCTAssertEqual(session.messages.last?.role, .assistant)
        XCTAssertEqual(session.messages.last(where: { $0.role == .user })?.content, "Message number 3 about the sea and the lighthouse.")
        XCTAssertLessThanOrEqual(session.history.count, 64)
    }

    // MARK: - Save and load

    func testSaveThenLoadInANewSessionContinuesIdentically() throws {
        let path = tmp.appendingPathComponent("chat.octs").path
        let original = try greedySession(model)
        _ = try original.respond(to: "Hello", system: nil, maxTokens: 10)
        _ = try original.respond(to: "Write a short poem about the sea.", system: nil, maxTokens: 10)
        try original.save(to: path)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".partial"))
        let savedHistory = original.history, savedMessages = original.messages, savedCached = original.cachedTokens
        let continued = try original.respond(to: "Again", system: nil, maxTokens: 16)

        let restored = try greedySession(model)
        try restored.load(from: path)
        XCTAssertEqual(restored.history, savedHistory)
        XCTAssertEqual(restored.messages, savedMessages)
        XCTAssertEqual(restored.cachedTokens, savedCached)
        XCTAssertEqual(restored.transformer.position, savedCached.count)
        let resumed = try restored.respond(to: "Again", system: nil, maxTokens: 16)
        XCTAssertEqual(resumed.text, continued.text)
        XCTAssertEqual(resumed.tokens, continued.tokens)
        // Resuming did not re-evaluate the conversation.
        XCTAssertEqual(resumed.stats.reusedTokens, continued.stats.reusedTokens)
        XCTAssertEqual(resumed.stats.promptTokens, continued.stats.promptTokens)
    }

    func testSaveAndLoadWithF16Cache() throws {
        let path = tmp.appendingPathComponent("f16.octs").path
        let a = try Session(model: model, pool: Shared.pool, kvType: .f16, contextLength: 512, sampling: .greedy)
        _ = try a.respond(to: "Hello", system: nil, maxTokens: 8)
        try a.save(to: path)
        let next = try a.respond(to: "More", system: nil, maxTokens: 8)
        let b = try Session(model: model, pool: Shared.pool, kvType: .f16, contextLength: 512, sampling: .greedy)
        try b.load(from: path)
        XCTAssertEqual(try b.respond(to: "More", system: nil, maxTokens: 8).tokens, next.tokens)
        // An F32 session refuses an F16 archive.
        let c = try greedySession(model)
        XCTAssertThrowsError(try c.load(from: path)) { XCTAssertTrue("\($0)".contains("kv-type"), "\($0)") }
    }

    func testLoadIntoAShorterContextIsRefused() throws {
        let path = tmp.appendingPathComponent("long.octs").path
        let a = try greedySession(model)
        _ = try a.respond(to: "Hello there, this is a message of a few tokens.", system: nil, maxTokens: 20)
        try a.save(to: path)
        let small = try greedySession(model, contextLength: 16)
        XCTAssertThrowsError(try small.load(from: path))
        XCTAssertEqual(small.transformer.position, 0)
    }

    /// Files that are not sessions give an error, never a crash, and leave the session as it was.
    func testLoadingGarbageFails() throws {
        let session = try greedySession(model)
        _ = try session.respond(to: "Hello", system: nil, maxTokens: 6)
        let history = session.history, position = session.transformer.position

        let missing = tmp.appendingPathComponent("missing.octs").path
        XCTAssertThrowsError(try session.load(from: missing))

        var rng = SystemRandomNumberGenerator()
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("random", (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }),
            ("text", Array("hello, this is not a session\n".utf8)),
            ("zstd magic only", [0x28, 0xB5, 0x2F, 0xFD]),
            ("zstd of junk", try Zstd.compress(Array(repeating: 7, count: 1000))),
            ("zstd of the magic only", try Zstd.compress(Array("OCTETSES".utf8))),
            ("zstd, header length past the end", try Zstd.compress(Array("OCTETSES".utf8) + [1, 0, 0, 0, 0xFF, 0xFF, 0, 0] + Array("{}".utf8))),
            ("zstd, header not JSON", try Zstd.compress(Array("OCTETSES".utf8) + [1, 0, 0, 0, 4, 0, 0, 0] + Array("abcd".utf8))),
        ]
        for (name, bytes) in cases {
            let path = tmp.appendingPathComponent("\(name).octs").path
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            XCTAssertThrowsError(try session.load(from: path), name)
        }
        XCTAssertEqual(session.history, history)
        XCTAssertEqual(session.transformer.position, position)
        // Still usable.
        XCTAssertEqual(try session.respond(to: "Again", system: nil, maxTokens: 4).stats.reusedTokens, position)
    }

    /// Decompressed archive: magic, version, JSON length, JSON, KV rows.
    private func archiveParts(_ path: String) throws -> (json: [String: Any], kv: [UInt8]) {
        let raw = try Zstd.decompress(Array(Data(contentsOf: URL(fileURLWithPath: path))))
        XCTAssertEqual(Array(raw[0..<8]), Array("OCTETSES".utf8))
        let n = Int(raw[12]) | Int(raw[13]) << 8 | Int(raw[14]) << 16 | Int(raw[15]) << 24
        let json = try JSONSerialization.jsonObject(with: Data(raw[16..<(16 + n)])) as! [String: Any]
        return (json, Array(raw[(16 + n)...]))
    }

    private func writeArchive(_ path: String, json: [String: Any], kv: [UInt8]) throws {
        let j = try JSONSerialization.data(withJSONObject: json)
        var raw = Array("OCTETSES".utf8) + [1, 0, 0, 0]
        withUnsafeBytes(of: UInt32(j.count).littleEndian) { raw += $0 }
        raw += j
        raw += kv
        _ = FileManager.default.createFile(atPath: path, contents: Data(try Zstd.compress(raw)))
    }

    func testLoadingATruncatedArchiveFails() throws {
        let path = tmp.appendingPathComponent("good.octs").path
        let a = try greedySession(model)
        _ = try a.respond(to: "Hello", system: nil, maxTokens: 6)
        try a.save(to: path)
        let (json, kv) = try archiveParts(path)
        XCTAssertEqual(json["position"] as? Int, a.transformer.position)
        let cut = tmp.appendingPathComponent("cut.octs").path
        try writeArchive(cut, json: json, kv: Array(kv.dropLast(100)))
        let b = try greedySession(model)
        XCTAssertThrowsError(try b.load(from: cut)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        // Cut compressed bytes too.
        let packed = try Data(contentsOf: URL(fileURLWithPath: path))
        let cutPacked = tmp.appendingPathComponent("cut-packed.octs").path
        _ = FileManager.default.createFile(atPath: cutPacked, contents: packed.prefix(packed.count / 2))
        XCTAssertThrowsError(try b.load(from: cutPacked))
        // A different model shape is refused.
        var other = json
        other["nLayers"] = 5
        let otherPath = tmp.appendingPathComponent("other.octs").path
        try writeArchive(otherPath, json: other, kv: kv)
        XCTAssertThrowsError(try b.load(from: otherPath)) { XCTAssertTrue("\($0)".contains("different model"), "\($0)") }
        // The untouched archive loads.
        XCTAssertNoThrow(try b.load(from: path))
    }

    /// A well-formed archive whose token list disagrees with its KV position must be refused at
    /// load time: otherwise the next turn reuses "cached" tokens that have no keys and values
    /// (cachedTokens longer than position → Transformer.rewind's precondition traps).
    func testLoadingAnInconsistentArchiveFails() throws {
        let path = tmp.appendingPathComponent("good.octs").path
        let a = try greedySession(model)
        _ = try a.respond(to: "Hello", system: nil, maxTokens: 6)
        try a.save(to: path)
        let (json, _) = try archiveParts(path)
        let b = try greedySession(model)

        var mismatch = json
        mismatch["position"] = 0      // no KV rows, but the token list claims a cached conversation
        let p1 = tmp.appendingPathComponent("mismatch.octs").path
        try writeArchive(p1, json: mismatch, kv: [])
        var loaded = (try? b.load(from: p1)) != nil
        XCTAssertFalse(loaded, "an archive with \((json["cachedTokens"] as! [Any]).count) cached tokens and position 0 was accepted")
        // (Not continuing with a turn on purpose: with the archive accepted it would trap.)

        var negative = json
        negative["position"] = -1
        let p2 = tmp.appendingPathComponent("negative.octs").path
        try writeArchive(p2, json: negative, kv: [])
        loaded = (try? b.load(from: p2)) != nil
        XCTAssertFalse(loaded, "a negative position was accepted")

        var badToken = json
        var ids = json["cachedTokens"] as! [Int]
        ids[1] = 1_000_000
        badToken["cachedTokens"] = ids
        badToken["history"] = ids
        let p3 = tmp.appendingPathComponent("badtoken.octs").path
        try writeArchive(p3, json: badToken, kv: try archiveParts(path).kv)
        let c = try greedySession(model)
        if (try? c.load(from: p3)) != nil {
            // Accepted: the next turn must at least fail cleanly (the cache is reused as is, so the
            // bad id is never evaluated, but its history is what the next prompt is built from).
            _ = try? c.respond(to: "Again", system: nil, maxTokens: 2)
        }
    }
}
