import Foundation
import Tokenizer
import XCTest
@testable import Evaluation

/// The formulas on examples small enough to work out by hand.
final class ComparisonMathTests: XCTestCase {
    /// Logits for the probabilities `p`, shifted by `offset` (log-softmax must not care).
    func logits(_ p: [Double], offset: Double = 1.75) -> [Float] { p.map { Float(log($0) + offset) } }

    func testExactPositionOnAThreeTokenVocabulary() throws {
        // base p = (0.5, 0.3, 0.2), quantized q = (0.4, 0.4, 0.2); the true next token is 1.
        let base = logits([0.5, 0.3, 0.2]), quant = logits([0.4, 0.4, 0.2], offset: -3)
        let r = try base.withUnsafeBufferPointer { b in
            try quant.withUnsafeBufferPointer { q in try PositionComparison.exact(base: b, quant: q, target: 1) }
        }
        // KL = 0.5 ln(0.5/0.4) + 0.3 ln(0.3/0.4) + 0.2 ln(0.2/0.2)
        //    = 0.5 × 0.2231436 − 0.3 × 0.2876821 = 0.0252672
        XCTAssertEqual(r.kl, 0.5 * 0.22314355131 - 0.3 * 0.28768207245, accuracy: 1e-6)
        XCTAssertEqual(r.kl, 0.0252671, accuracy: 1e-6)
        XCTAssertEqual(r.nllBase, -log(0.3), accuracy: 1e-6)      // 1.2039728
        XCTAssertEqual(r.nllQuant, -log(0.4), accuracy: 1e-6)     // 0.9162907
        // The base's top token is 0; the quantized model ties 0 and 1 and takes the lower id.
        XCTAssertTrue(r.top1Match)
        XCTAssertEqual(r.deltaP, 0.4 - 0.5, accuracy: 1e-6)
        XCTAssertEqual(r.klBound, 0)
    }

    func testReportOfTwoPositions() throws {
        var acc = ComparisonAccumulator(layers: 2, expertsUsed: 2)
        acc.add(PositionComparison(nllBase: 1.0, nllQuant: 1.5, kl: 0.1, klBound: 0, top1Match: true, deltaP: 0.3))
        acc.add(PositionComparison(nllBase: 2.0, nllQuant: 2.1, kl: 0.3, klBound: 0, top1Match: false, deltaP: -0.4))
        // Layer 0 agrees on both positions ({1,3} = {1,3}); layer 1 only on the first.
        acc.addRouting(base: [1, 3, 0, 5][...], quant: [1, 3, 0, 5][...])
        acc.addRouting(base: [2, 6, 4, 7][...], quant: [2, 6, 4, 6][...])
        acc.endChunk()
        let plan = try ScoringPlan(tokens: [5, 6, 7, 8], ctx: 4, bos: 1)
        let r = acc.report(text: EvaluationText(string: "x", name: "t"), plan: plan, kvType: "f32",
                           base: ("b", "bf16"), quant: ("q", "Q8_0"), klMethod: "exact")
        XCTAssertEqual(r.base.perplexity, exp(1.5), accuracy: 1e-12)          // exp((1 + 2) / 2)
        XCTAssertEqual(r.quant.perplexity, exp(1.8), accuracy: 1e-12)         // exp((1.5 + 2.1) / 2)
        XCTAssertEqual(r.delta_ppl_percent, (exp(0.3) - 1) * 100, accuracy: 1e-9)
        XCTAssertEqual(r.kl.mean, 0.2, accuracy: 1e-15)
        XCTAssertEqual(r.kl.mean_stderr, 0.1, accuracy: 1e-15)               // sd 0.141421 / √2
        XCTAssertEqual(r.kl.median, 0.2, accuracy: 1e-15)
        XCTAssertEqual(r.kl.p99, 0.1 + 0.99 * 0.2, accuracy: 1e-15)
        XCTAssertEqual(r.kl.max, 0.3)
        XCTAssertEqual(r.top1_agreement, 0.5)
        XCTAssertEqual(r.rms_delta_p, ((0.09 + 0.16) / 2).squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(r.routing_agreement?.per_layer, [1.0, 0.5])
        XCTAssertEqual(r.routing_agreement?.overall, 0.75)
        XCTAssertEqual(r.tokens_scored, 2)
    }

    func testKLStatsMatchNumPyConventions() {
        let s = KLStats([4, 1, 3, 2])
        XCTAssertEqual(s.mean, 2.5)
        XCTAssertEqual(s.meanStderr, (5.0 / 3).squareRoot() / 2, accuracy: 1e-15)   // np.std(x, ddof=1)/√n
        XCTAssertEqual(s.median, 2.5)
        XCTAssertEqual(s.p99, 3.97, accuracy: 1e-12)                               // np.percentile(x, 99)
        XCTAssertEqual(s.max, 4)
        XCTAssertEqual(KLStats([7]).meanStderr, 0)
    }

    /// The top-k + rest estimate on the three-token example with k = 1, against its hand-worked bound.
    func testTopKEstimateIsALowerBoundWithinItsBound() throws {
        let base = logits([0.5, 0.3, 0.2]), quant = logits([0.4, 0.4, 0.2], offset: 0.5)
        var scratch = [Bool](repeating: false, count: 3)
        let row = try base.withUnsafeBufferPointer { try TopKBaseRow(row: $0, target: 1, k: 1, scratch: &scratch) }
        XCTAssertEqual(row.ids, [0])
        XCTAssertEqual(exp(row.logRestMass), 0.5, accuracy: 1e-7)
        let est = try quant.withUnsafeBufferPointer { try PositionComparison.topK(base: row, quant: $0, target: 1, scratch: &scratch) }
        XCTAssertEqual(scratch, [false, false, false])
        // KL̂ = 0.5 ln(0.5/0.4) + P_R ln(P_R/Q_R) with P_R = 0.5, Q_R = 0.6.
        XCTAssertEqual(est.kl, 0.5 * log(0.5 / 0.4) + 0.5 * log(0.5 / 0.6), accuracy: 1e-6)
        let exact = 0.5 * log(0.5 / 0.4) + 0.3 * log(0.3 / 0.4)
        XCTAssertLessThanOrEqual(est.kl, exact + 1e-9)
        // Worst case: the whole rest mass 0.5 (= p_k) on the least likely rest token, q = 0.2:
        // B = 0.5 ln(0.5/0.2) − 0.5 ln(0.5/0.6) = 0.5 ln 3.
        XCTAssertEqual(est.klBound, 0.5 * log(3.0), accuracy: 1e-6)
        XCTAssertGreaterThanOrEqual(est.kl + est.klBound, exact)
        // Everything but KL is exact.
        let full = try base.withUnsafeBufferPointer { b in try quant.withUnsafeBufferPointer { try PositionComparison.exact(base: b, quant: $0, target: 1) } }
        XCTAssertEqual(est.nllBase, full.nllBase)
        XCTAssertEqual(est.nllQuant, full.nllQuant)
        XCTAssertEqual(est.deltaP, full.deltaP)
        XCTAssertEqual(est.top1Match, full.top1Match)
        // With k covering the vocabulary the estimate is exact and the bound 0.
        let all = try base.withUnsafeBufferPointer { try TopKBaseRow(row: $0, target: 1, k: 3, scratch: &scratch) }
        let e3 = try quant.withUnsafeBufferPointer { try PositionComparison.topK(base: all, quant: $0, target: 1, scratch: &scratch) }
        XCTAssertEqual(e3.kl, full.kl, accuracy: 1e-15)
        XCTAssertEqual(e3.klBound, 0)
    }

    /// Random rows: KL̂ ≤ KL ≤ KL̂ + B every time, on a bigger vocabulary with a long tail.
    func testTopKBoundHoldsOnRandomRows() throws {
        var rng = SystemRandomNumberGenerator()
        let V = 500
        var scratch = [Bool](repeating: false, count: V)
        for trial in 0..<50 {
            let base = (0..<V).map { _ in Float.random(in: -4...4, using: &rng) * (trial % 2 == 0 ? 1 : 3) }
            let quant = base.map { $0 + Float.random(in: -0.5...0.5, using: &rng) }
            for k in [1, 8, 64] {
                let row = try base.withUnsafeBufferPointer { try TopKBaseRow(row: $0, target: 3, k: k, scratch: &scratch) }
                let est = try quant.withUnsafeBufferPointer { try PositionComparison.topK(base: row, quant: $0, target: 3, scratch: &scratch) }
                let full = try base.withUnsafeBufferPointer { b in try quant.withUnsafeBufferPointer { try PositionComparison.exact(base: b, quant: $0, target: 3) } }
                XCTAssertLessThanOrEqual(est.kl, full.kl + 1e-12)
                XCTAssertGreaterThanOrEqual(est.kl + est.klBound, full.kl - 1e-12)
            }
        }
    }

    func testTopKOrderingAndTies() {
        let row: [Float] = [1, 5, 3, 5, -2, 3]
        let (ids, vals) = row.withUnsafeBufferPointer { LogSoftmax.topK($0, k: 4) }
        XCTAssertEqual(ids, [1, 3, 2, 5])
        XCTAssertEqual(vals, [5, 5, 3, 3])
        XCTAssertEqual(row.withUnsafeBufferPointer { LogSoftmax.argmax($0) }, 1)
    }

    func testScoringPlanCutsLikeLlamaPerplexity() throws {
        let tokens: [Int32] = Array(100..<111)   // 11 tokens
        let plan = try ScoringPlan(tokens: tokens, ctx: 4, bos: 1)
        XCTAssertEqual(plan.chunkCount, 2)                 // the remainder of 3 is dropped
        XCTAssertEqual(plan.chunk(0), [1, 101, 102, 103])
        XCTAssertEqual(plan.chunk(1), [1, 105, 106, 107])
        XCTAssertEqual(plan.scoredPositions, 2..<3)
        XCTAssertEqual(plan.target(chunk: 1, position: 2), 107)
        XCTAssertEqual(plan.tokensScored, 2)
        XCTAssertEqual(try ScoringPlan(tokens: tokens, ctx: 9, bos: 1).scoredPositions, 4..<8)
    }

    func testEmptyAndShortTextsAreRefused() throws {
        XCTAssertThrowsError(try ScoringPlan(tokens: [], ctx: 64, bos: 1)) { e in
            XCTAssertTrue("\(e)".contains("empty"), "\(e)")
        }
        XCTAssertThrowsError(try ScoringPlan(tokens: [5, 6, 7], ctx: 64, bos: 1, textName: "short.txt")) { e in
            XCTAssertEqual("\(e)", "short.txt has only 3 tokens, fewer than one window of --ctx 64; use a longer text or --ctx ≤ 3")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("octet-eval-empty-\(UUID().uuidString).txt")
        try Data().write(to: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try EvaluationText(path: dir.path)) { e in XCTAssertTrue("\(e)".contains("the text is empty"), "\(e)") }
    }

    func testDifferentVocabulariesAreRefused() {
        func vocab(_ pieces: [String]) -> Vocabulary {
            Vocabulary(pieces: pieces, scores: pieces.map { _ in 0 }, types: pieces.map { _ in .normal })
        }
        let a = vocab(["<unk>", "<s>", "</s>", "a", "b"])
        XCTAssertNoThrow(try TokenizerFingerprint.checkSame(base: a, quant: a))
        XCTAssertThrowsError(try TokenizerFingerprint.checkSame(base: a, quant: vocab(["<unk>", "<s>", "</s>", "a"]))) { e in
            XCTAssertEqual("\(e)", "the models have different vocabularies: BASE has 5 tokens, QUANT 4; KL divergence needs the same vocabulary")
        }
        XCTAssertThrowsError(try TokenizerFingerprint.checkSame(base: a, quant: vocab(["<unk>", "<s>", "</s>", "a", "c"]))) { e in
            XCTAssertTrue("\(e)".contains("token 4 is 'b' in BASE but 'c' in QUANT"), "\(e)")
        }
        XCTAssertNotEqual(TokenizerFingerprint.hash(a), TokenizerFingerprint.hash(vocab(["<unk>", "<s>", "</s>", "ab", ""])))
    }

    func testFNV1a64() {
        XCTAssertEqual(FNV1a64.hash([UInt8]()), 0xcbf29ce484222325)
        XCTAssertEqual(FNV1a64.hash(Array("a".utf8)), 0xaf63dc4c8601ec8c)
        XCTAssertEqual(FNV1a64.hex(0xaf63dc4c8601ec8c), "af63dc4c8601ec8c")
        XCTAssertEqual(FNV1a64.hex(0x1f), "000000000000001f")
    }

    func testLogHistogram() {
        let h = LogHistogram([0, 1e-12, 0.002, 0.005, 0.03, 0.5], binsPerDecade: 1)
        XCTAssertEqual(h.below, 2)                         // 0 and 1e-12 (below 1e-9)
        XCTAssertEqual(h.log10_edges, [-9, -8, -7, -6, -5, -4, -3, -2, -1, 0])
        XCTAssertEqual(h.counts, [0, 0, 0, 0, 0, 0, 2, 1, 1])
        let g = LogHistogram([0.002, 0.5], binsPerDecade: 2)
        XCTAssertEqual(g.log10_edges, [-3, -2.5, -2, -1.5, -1, -0.5, 0])
        XCTAssertEqual(g.counts, [1, 0, 0, 0, 0, 1])
        XCTAssertEqual(g.below, 0)
    }
}
