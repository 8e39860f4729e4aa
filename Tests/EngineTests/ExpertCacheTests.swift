import XCTest
@testable import Engine

/// The expert cache's bookkeeping: which expert it gives back, and when eviction starts.
final class ExpertCacheTests: XCTestCase {
    /// 2 layers × 4 experts; `evicted` collects (layer, expert) in the order given back.
    private var evicted: [String] = []
    private func evict(_ l: Int, _ e: Int) { evicted.append("\(l).\(e)") }

    func testUnlimitedHoldsEverythingAndEvictsNothing() {
        var c = ExpertCache(layers: 2, experts: 4)
        for l in 0..<2 { for e in 0..<4 { c.choose(layer: l, expert: e, chosenNow: { _ in false }, evict: evict) } }
        c.choose(layer: 0, expert: 1, chosenNow: { _ in false }, evict: evict)
        XCTAssertFalse(c.isLimited)
        XCTAssertEqual(c.held, 8)
        XCTAssertEqual(evicted, [])
    }

    func testLowerBudgetGivesBackLeastRecentlyChosen() {
        var c = ExpertCache(layers: 2, experts: 4)
        for (l, e) in [(0, 0), (0, 1), (1, 2), (1, 3), (0, 2)] { c.choose(layer: l, expert: e, chosenNow: { _ in false }, evict: evict) }
        c.choose(layer: 0, expert: 0, chosenNow: { _ in false }, evict: evict)   // 0.0 is now the most recent
        c.setBudget(3, evict: evict)
        XCTAssertTrue(c.isLimited)
        XCTAssertEqual(evicted, ["0.1", "1.2"])
        XCTAssertEqual(c.held, 3)
        XCTAssertFalse(c.isHeld(layer: 0, expert: 1))
        XCTAssertTrue(c.isHeld(layer: 0, expert: 0))

        // Admitting one more at the budget gives back the oldest held (1.3) first.
        c.choose(layer: 1, expert: 0, chosenNow: { _ in false }, evict: evict)
        XCTAssertEqual(evicted, ["0.1", "1.2", "1.3"])
        XCTAssertEqual(c.held, 3)
        // Choosing a held expert evicts nothing.
        c.choose(layer: 0, expert: 2, chosenNow: { _ in false }, evict: evict)
        XCTAssertEqual(evicted.count, 3)
    }

    func testNeverEvictsWhatTheLayerChoseNow() {
        var c = ExpertCache(layers: 2, experts: 4)
        for (l, e) in [(1, 0), (1, 1), (0, 3)] { c.choose(layer: l, expert: e, chosenNow: { _ in false }, evict: evict) }
        c.setBudget(3, evict: evict)
        // Layer 1 now chooses experts 1 and 2: 1.0 is the oldest, but 1.1 must stay.
        let chosen: Set<Int> = [1, 2]
        c.choose(layer: 1, expert: 1, chosenNow: { chosen.contains($0) }, evict: evict)
        c.choose(layer: 1, expert: 2, chosenNow: { chosen.contains($0) }, evict: evict)
        XCTAssertEqual(evicted, ["1.0"])
        c.setBudget(1, chosenLayer: 1, chosenNow: { chosen.contains($0) }, evict: evict)
        XCTAssertEqual(evicted, ["1.0", "0.3"], "with only the chosen experts left, none of them goes")
        XCTAssertEqual(c.held, 2)
    }

    /// A prompt's pass needs every expert; what it leaves held is, layer by layer, what its last
    /// token chose, not all of the last layer's experts.
    func testAPromptLeavesItsLastTokensExpertsInEveryLayer() {
        var c = ExpertCache(layers: 2, experts: 4)
        c.setBudget(6, evict: evict)
        let lastToken: [Set<Int>] = [[1, 3], [0, 2]]
        for l in 0..<2 {
            for e in 0..<4 {
                c.choose(layer: l, expert: e, byLastToken: lastToken[l].contains(e), chosenNow: { _ in true }, evict: evict)
            }
        }
        XCTAssertEqual(c.held, 6)
        for l in 0..<2 { for e in lastToken[l] { XCTAssertTrue(c.isHeld(layer: l, expert: e), "\(l).\(e)") } }
        XCTAssertEqual(evicted, ["0.0", "0.2"], "layer 0's experts the last token did not choose go first")
        // The next token's first new expert gives back one of layer 1's that only earlier tokens chose.
        c.choose(layer: 0, expert: 0, chosenNow: { $0 == 0 || $0 == 1 }, evict: evict)
        XCTAssertEqual(evicted, ["0.0", "0.2", "1.1"])
    }

    func testEvictionStartsAfterRepeatedReclaimsWhileDecoding() {
        var c = ExpertCache(layers: 2, experts: 4)
        for l in 0..<2 { for e in 0..<4 { c.choose(layer: l, expert: e, chosenNow: { _ in false }, evict: evict) } }
        // Reclaims seen in a prompt's pass do not count.
        c.beginPass(evict: evict)
        for _ in 0..<20 { c.reclaimed(singleToken: false, chosenLayer: 0, chosenNow: { _ in false }, evict: evict) }
        XCTAssertFalse(c.isLimited)
        // One fewer than needed within the window: still nothing.
        for _ in 0..<(c.reclaimsToStart - 1) {
            c.beginPass(evict: evict)
            c.reclaimed(singleToken: true, chosenLayer: 0, chosenNow: { _ in false }, evict: evict)
        }
        XCTAssertFalse(c.isLimited)
        XCTAssertEqual(evicted, [])
        c.beginPass(evict: evict)
        c.reclaimed(singleToken: true, chosenLayer: 0, chosenNow: { _ in false }, evict: evict)
        XCTAssertTrue(c.isLimited)
        XCTAssertEqual(c.budget, 7)
        XCTAssertEqual(evicted, ["0.0"])
        // At most one step down per pass.
        c.reclaimed(singleToken: true, chosenLayer: 0, chosenNow: { _ in false }, evict: evict)
        XCTAssertEqual(c.budget, 7)
        c.beginPass(evict: evict)
        c.reclaimed(singleToken: true, chosenLayer: 0, chosenNow: { _ in false }, evict: evict)
        XCTAssertEqual(c.budget, 6)
        XCTAssertEqual(evicted, ["0.0", "0.1"])
    }

    func testSparseReclaimsNeverStartEviction() {
        // 8 layers (the bench model's): 8 reclaims within a window start eviction.
        var c = ExpertCache(layers: 8, experts: 8)
        XCTAssertEqual(c.reclaimsToStart, 8)
        for l in 0..<8 { for e in 0..<8 { c.choose(layer: l, expert: e, chosenNow: { _ in false }, evict: evict) } }
        for pass in 0..<200 {
            c.beginPass(evict: evict)
            if pass % 2 == 0 { c.reclaimed(singleToken: true, chosenLayer: 0, chosenNow: { _ in false }, evict: evict) }
        }
        XCTAssertFalse(c.isLimited, "one reclaim every other token stays below \(c.reclaimsToStart) in \(ExpertCache.window) passes")
        // One per pass does start it.
        for _ in 0..<ExpertCache.window {
            c.beginPass(evict: evict)
            c.reclaimed(singleToken: true, chosenLayer: 0, chosenNow: { _ in false }, evict: evict)
        }
        XCTAssertTrue(c.isLimited)
    }

    func testBudgetRecoversOneExpertAtATime() {
        var c = ExpertCache(layers: 2, experts: 4)
        c.setBudget(6, evict: evict)
        for _ in 0..<ExpertCache.relaxEvery { c.beginPass(evict: evict) }
        XCTAssertEqual(c.budget, 7)
        for _ in 0..<ExpertCache.relaxEvery { c.beginPass(evict: evict) }
        XCTAssertFalse(c.isLimited, "back to holding all 8: eviction off")
        XCTAssertEqual(c.budget, ExpertCache.unlimited)
    }
}
