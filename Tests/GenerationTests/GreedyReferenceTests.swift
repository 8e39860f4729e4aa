import Foundation
import XCTest
import Engine
import Generation
import Kernels
import Tokenizer

/// Greedy generation reproduces transformers' greedy continuation (`p{i}.generated_ids`) token for
/// token, from the 16-bit checkpoint read directly and from a BF16 GGUF, with an F32 KV cache.
final class GreedyReferenceTests: XCTestCase {
    func testReferenceDataIsWhatTheREADMESays() throws {
        let prompts = try Reference.prompts()
        XCTAssertEqual(prompts.map(\.name), ["en", "fr", "code", "chat"])
        XCTAssertEqual(prompts.map(\.inputIDs.count), [18, 21, 18, 16])
        for p in prompts {
            XCTAssertEqual(p.inputIDs.first, 1, "p\(p.index) starts with BOS")
            XCTAssertEqual(p.generatedIDs.count, 32)
            XCTAssertFalse(p.generatedIDs.contains(2), "p\(p.index): EOS never appears in the reference continuation")
        }
    }

    private func checkGreedy(_ model: Model, label: String) throws {
        for p in try Reference.prompts() {
            let session = try greedySession(model)
            var streamed = ""
            let r = try session.generate(prompt: p.inputIDs, maxTokens: 32, onText: { streamed += $0 })
            XCTAssertEqual(r.tokens, p.generatedIDs, "\(label) p\(p.index) (\(p.name)): greedy continuation differs from transformers'")
            if let i = zip(r.tokens, p.generatedIDs).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
                XCTFail("\(label) p\(p.index): first difference at generated token \(i): \(r.tokens[i]) vs \(p.generatedIDs[i])")
            }
            XCTAssertEqual(r.finishReason, .length, "\(label) p\(p.index)")
            XCTAssertEqual(r.stats.promptTokens, p.inputIDs.count)
            XCTAssertEqual(r.stats.reusedTokens, 0)
            XCTAssertEqual(r.stats.generatedTokens, 32)
            // The streamed text is the decoded continuation, and what the reference decoded.
            XCTAssertEqual(streamed, r.text, "\(label) p\(p.index): streamed pieces != result text")
            XCTAssertEqual(r.text, session.tokenizer.decode(p.generatedIDs), "\(label) p\(p.index)")
            XCTAssertEqual(r.text, p.generatedText, "\(label) p\(p.index): text differs from reference.json's generated_text")
            // The cache holds the prompt and all generated tokens but the last (never fed back).
            XCTAssertEqual(session.cachedTokens, p.inputIDs + p.generatedIDs.dropLast())
            XCTAssertEqual(session.transformer.position, p.inputIDs.count + 31)
        }
    }

    func testGreedyContinuationFrom16BitCheckpoint() throws {
        try checkGreedy(try Shared.fixture(), label: "safetensors")
    }

    func testGreedyContinuationFromBF16GGUF() throws {
        let m = try Shared.bf16GGUF()
        XCTAssertTrue(m.formatDescription.contains("BF16"), m.formatDescription)
        try checkGreedy(m, label: "BF16 GGUF")
    }

    /// One session for every prompt, in two orders: the cached prefix (BOS) is reused and the rest
    /// rewound, and the results must not depend on what the cache held before.
    func testGreedyContinuationReusingOneSession() throws {
        let prompts = try Reference.prompts()
        let session = try greedySession(try Shared.fixture())
        for p in prompts + prompts.reversed() {
            let cached = session.cachedTokens
            var shared = 0
            while shared < min(cached.count, p.inputIDs.count - 1) && cached[shared] == p.inputIDs[shared] { shared += 1 }
            let r = try session.generate(prompt: p.inputIDs, maxTokens: p.generatedIDs.count)
            XCTAssertEqual(r.stats.reusedTokens, shared, "p\(p.index): the common prefix with the cache is reused")
            if !cached.isEmpty && cached.first == p.inputIDs.first { XCTAssertGreaterThanOrEqual(shared, 1) }
            XCTAssertEqual(r.tokens, p.generatedIDs, "p\(p.index) after other prompts in the same session")
        }
        // Same prompt again: everything but the last prompt token comes from the cache.
        let p = prompts[0]
        _ = try session.generate(prompt: p.inputIDs, maxTokens: 2)
        let r = try session.generate(prompt: p.inputIDs, maxTokens: 8)
        XCTAssertEqual(r.stats.reusedTokens, p.inputIDs.count - 1)
        XCTAssertEqual(r.stats.promptTokens, 1)
        XCTAssertEqual(r.tokens, Array(p.generatedIDs.prefix(8)))
    }

    /// Feeding prompt + continuation as the prompt: the continuation extends greedily the same way.
    func testGreedyIsConsistentWithALongerPrompt() throws {
        let p = try Reference.prompts()[1]
        let session = try greedySession(try Shared.fixture())
        let r = try session.generate(prompt: p.inputIDs + p.generatedIDs.prefix(16), maxTokens: 16)
        XCTAssertEqual(r.tokens, Array(p.generatedIDs.suffix(16)))
    }
}
