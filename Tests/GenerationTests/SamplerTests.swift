import Foundation
import XCTest
import Generation

final class SamplerTests: XCTestCase {
    /// Draws `count` ids from a fresh copy of `logits` each time (the sampler edits them in place).
    private func draw(_ sampler: Sampler, _ logits: [Float], count: Int, recent: [Int32] = []) -> [Int32] {
        (0..<count).map { _ in
            var l = logits
            return l.withUnsafeMutableBufferPointer { sampler.sample($0.baseAddress!, recent: recent[...]) }
        }
    }

    private func options(temperature: Float = 1, topK: Int = 0, topP: Float = 1, minP: Float = 0,
                         repeatPenalty: Float = 1, seed: UInt64 = 0) -> SamplingOptions {
        var o = SamplingOptions()
        o.temperature = temperature; o.topK = topK; o.topP = topP; o.minP = minP; o.repeatPenalty = repeatPenalty; o.seed = seed
        return o
    }

    /// A flat-ish distribution over 64 tokens (every token has a real chance).
    private let flat: [Float] = (0..<64).map { Float(($0 * 37) % 11) * 0.1 }

    func testSameSeedSameIds() {
        for seed: UInt64 in [0, 1, 42, .max] {
            let a = draw(Sampler(vocabularySize: 64, options: options(seed: seed)), flat, count: 50)
            let b = draw(Sampler(vocabularySize: 64, options: options(seed: seed)), flat, count: 50)
            XCTAssertEqual(a, b, "seed \(seed)")
            XCTAssertGreaterThan(Set(a).count, 5, "seed \(seed): samples should vary")
        }
        // reseed restarts the sequence.
        let s = Sampler(vocabularySize: 64, options: options(seed: 7))
        let first = draw(s, flat, count: 50)
        s.reseed(7)
        XCTAssertEqual(draw(s, flat, count: 50), first)
    }

    /// A bias of −100 bans a token; a large positive one makes it the only likely choice.
    func testLogitBias() {
        var banned = options(temperature: 2, seed: 9)
        banned.logitBias = [3: -100, 5: -100]
        let ids = draw(Sampler(vocabularySize: 64, options: banned), flat, count: 400)
        XCTAssertFalse(ids.contains(3) || ids.contains(5))
        XCTAssertGreaterThan(Set(ids).count, 20)
        var favoured = options(temperature: 0)
        favoured.logitBias = [60: 50]
        XCTAssertEqual(draw(Sampler(vocabularySize: 64, options: favoured), flat, count: 1), [60])
    }

    func testDifferentSeedsDiffer() {
        let a = draw(Sampler(vocabularySize: 64, options: options(seed: 1)), flat, count: 50)
        let b = draw(Sampler(vocabularySize: 64, options: options(seed: 2)), flat, count: 50)
        XCTAssertNotEqual(a, b)
        let c = draw(Sampler(vocabularySize: 64, options: options(topK: 10, topP: 0.9, minP: 0.05, seed: 3)), flat, count: 50)
        let d = draw(Sampler(vocabularySize: 64, options: options(topK: 10, topP: 0.9, minP: 0.05, seed: 4)), flat, count: 50)
        XCTAssertNotEqual(c, d)
    }

    func testTemperatureZeroIsArgmax() {
        var logits = flat
        logits[17] = 5
        for seed: UInt64 in 0..<20 {
            let s = Sampler(vocabularySize: 64, options: options(temperature: 0, topK: 40, topP: 0.5, minP: 0.5, seed: seed))
            XCTAssertEqual(draw(s, logits, count: 5), Array(repeating: 17, count: 5))
        }
        // Ties go to the lowest id; negative logits work.
        let neg: [Float] = [-3, -1, -2, -1]
        XCTAssertEqual(draw(Sampler(vocabularySize: 4, options: options(temperature: 0)), neg, count: 1), [1])
        XCTAssertEqual(draw(Sampler(vocabularySize: 4, options: .greedy), [-1, -5, -5, -5], count: 1), [0])
    }

    func testTopKOneIsArgmax() {
        var logits = flat
        logits[40] = 1.2  // barely above the rest: sampling at high temperature would often miss it
        for seed: UInt64 in 0..<50 {
            let s = Sampler(vocabularySize: 64, options: options(temperature: 2, topK: 1, seed: seed))
            XCTAssertEqual(draw(s, logits, count: 3), [40, 40, 40], "seed \(seed)")
        }
    }

    func testTopKOnlyReturnsTheKBest() {
        // Logits 0…63 increasing: the 5 best are 59…63.
        let logits = (0..<64).map { Float($0) * 0.05 }
        let ids = draw(Sampler(vocabularySize: 64, options: options(temperature: 1, topK: 5, seed: 3)), logits, count: 2000)
        XCTAssertTrue(Set(ids).isSubset(of: Set(59...63)), "\(Set(ids).sorted())")
        XCTAssertEqual(Set(ids), Set(59...63), "all of the top 5 should come up in 2000 draws")
    }

    /// min-p keeps tokens with p ≥ minP · p(best): at temperature 1 that is logit ≥ best + ln(minP).
    func testMinPOnlyReturnsAllowedTokens() {
        var logits = [Float](repeating: -4, count: 100)
        let allowed: [Int: Float] = [10: 0, 20: -0.5, 30: -1, 40: -2.2]   // ln(0.1) = -2.303
        for (i, l) in allowed { logits[i] = l }
        logits[50] = -2.4   // just outside
        let ids = draw(Sampler(vocabularySize: 100, options: options(temperature: 1, minP: 0.1, seed: 11)), logits, count: 3000)
        XCTAssertTrue(Set(ids).isSubset(of: Set(allowed.keys.map { Int32($0) })), "min-p returned \(Set(ids).subtracting(allowed.keys.map { Int32($0) }).sorted())")
        XCTAssertEqual(Set(ids), Set(allowed.keys.map { Int32($0) }), "every allowed token should come up in 3000 draws")
        // Without min-p the tail is reachable (sanity check of the construction).
        let open = draw(Sampler(vocabularySize: 100, options: options(temperature: 1, seed: 11)), logits, count: 3000)
        XCTAssertFalse(Set(open).isSubset(of: Set(allowed.keys.map { Int32($0) })))
    }

    /// top-p keeps the smallest set of most likely tokens whose probability reaches p.
    func testTopPOnlyReturnsTheNucleus() {
        // Probabilities 0.5, 0.3, 0.1 and 0.1 spread over 97 others: top-p 0.75 → {0, 1} (0.8 ≥ 0.75).
        var probs = [Float](repeating: 0.1 / 97, count: 100)
        probs[3] = 0.5; probs[7] = 0.3; probs[9] = 0.1
        let logits = probs.map { logf($0) }
        let ids = draw(Sampler(vocabularySize: 100, options: options(temperature: 1, topP: 0.75, seed: 5)), logits, count: 3000)
        XCTAssertEqual(Set(ids), [3, 7])
        // The ratio inside the nucleus is kept: 0.5 : 0.3.
        let share = Double(ids.filter { $0 == 3 }.count) / Double(ids.count)
        XCTAssertEqual(share, 0.625, accuracy: 0.04)
        // top-p 0.85 → {3, 7, 9}.
        let wider = draw(Sampler(vocabularySize: 100, options: options(temperature: 1, topP: 0.85, seed: 6)), logits, count: 3000)
        XCTAssertEqual(Set(wider), [3, 7, 9])
        // Combined with top-k 1: only the best.
        let both = draw(Sampler(vocabularySize: 100, options: options(temperature: 1, topK: 1, topP: 0.85, seed: 6)), logits, count: 200)
        XCTAssertEqual(Set(both), [3])
    }

    /// Checks the logits after the penalty: positive ones divided, negative ones multiplied, only
    /// for the last `repeatLastN` tokens.
    func testRepetitionPenaltyEditsTheRepeatedLogits() {
        var o = options(temperature: 0, repeatPenalty: 2)
        o.repeatLastN = 3
        let s = Sampler(vocabularySize: 8, options: o)
        var logits: [Float] = [4, 3, -1, 1, 0.5, 2, -2, 0]
        let before = logits
        // Recent: token 1 is outside the last 3 and must not be penalised.
        let id = logits.withUnsafeMutableBufferPointer { s.sample($0.baseAddress!, recent: [1, 0, 2, 5][...]) }
        XCTAssertEqual(logits[0], 2)       // 4 / 2
        XCTAssertEqual(logits[2], -2)      // -1 · 2
        XCTAssertEqual(logits[5], 1)       // 2 / 2
        XCTAssertEqual(logits[1], before[1], "token 1 is older than repeatLastN")
        for i in [3, 4, 6, 7] { XCTAssertEqual(logits[i], before[i], "token \(i) was not seen") }
        // The repeated best token (0) lost to the next best (1).
        XCTAssertEqual(id, 1)
        // Penalty 1 changes nothing.
        let off = Sampler(vocabularySize: 8, options: options(temperature: 0, repeatPenalty: 1))
        var same = before
        XCTAssertEqual(same.withUnsafeMutableBufferPointer { off.sample($0.baseAddress!, recent: [0, 0, 0][...]) }, 0)
        XCTAssertEqual(same, before)
    }

    /// The penalty lowers a repeated token's chance when sampling too.
    func testRepetitionPenaltyLowersTheChance() {
        let logits: [Float] = [1, 1, 1, 1]
        let plain = draw(Sampler(vocabularySize: 4, options: options(seed: 9)), logits, count: 4000, recent: [2])
        let penal = draw(Sampler(vocabularySize: 4, options: options(repeatPenalty: 3, seed: 9)), logits, count: 4000, recent: [2])
        let a = plain.filter { $0 == 2 }.count, b = penal.filter { $0 == 2 }.count
        XCTAssertEqual(Double(a) / 4000, 0.25, accuracy: 0.03)
        // logit 1 → 1/3: p = e^(1/3) / (3e + e^(1/3)) ≈ 0.149
        XCTAssertEqual(Double(b) / 4000, 0.149, accuracy: 0.03)
    }

    /// A token seen several times in the window is penalised once, as in llama.cpp and transformers
    /// (the penalty is per distinct token; frequency penalties are a separate option).
    func testRepetitionPenaltyAppliesOncePerDistinctToken() {
        let s = Sampler(vocabularySize: 4, options: options(temperature: 0, repeatPenalty: 2))
        var logits: [Float] = [4, 3, 0, 0]
        _ = logits.withUnsafeMutableBufferPointer { s.sample($0.baseAddress!, recent: [0, 0, 0][...]) }
        XCTAssertEqual(logits[0], 2, "a token repeated 3 times in the window was divided by penalty^3 = 8, not by the penalty once")
    }

    func testSamplingNeverReturnsAnOutOfRangeIdAndIgnoresBadRecentIds() {
        let s = Sampler(vocabularySize: 16, options: options(temperature: 1.5, topK: 8, topP: 0.9, minP: 0.02, repeatPenalty: 1.3, seed: 1))
        let logits = (0..<16).map { Float($0 % 5) }
        let ids = draw(s, logits, count: 500, recent: [-1, 99, 3, 4, 15])
        XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < 16 })
    }
}
