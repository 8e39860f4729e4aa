import XCTest
@testable import Engine
import Kernels

#if os(Linux)
/// Giving experts back to the kernel changes where their pages are, never the results.
final class ExpertEvictionTests: XCTestCase {
    override class func tearDown() { ConvertedFixture.cleanUp(); super.tearDown() }

    func testEvictionKeepsLogitsAndGivesBackTheRest() throws {
        let model = try Model(path: try ConvertedFixture.path(.bf16))
        let w = model.weights
        let vocab = w.config.nVocab
        let tokens: [Int32] = [1, 415, 2936, 9060, 285, 1142, 28705, 13, 330, 6312]

        func run(budget: Int?) throws -> ([[Float]], Transformer) {
            let t = try Transformer(weights: w, pool: WorkerPool(threads: 2), kvType: .f32, contextLength: 32, maxBatch: 4, adviseExperts: true)
            if let budget { t.expertCache.setBudget(budget) { t.evictExpert($0, $1) } }
            var logits: [[Float]] = []
            // A 4-token prompt pass, then one token per pass.
            try Array(tokens[0..<4]).withUnsafeBufferPointer { try t.forward($0, logits: .last) }
            logits.append(Array(UnsafeBufferPointer(start: t.logits, count: vocab)))
            for token in tokens[4...] {
                try [token].withUnsafeBufferPointer { try t.forward($0, logits: .last) }
                logits.append(Array(UnsafeBufferPointer(start: t.logits, count: vocab)))
            }
            return (logits, t)
        }

        let (kept, _) = try run(budget: nil)
        // Read back from disk in the engine's own requests (the converter's writes may have left
        // the file in the page cache in large folios, which go only whole).
        w.expertFiles[0].dropFromPageCache()
        // Three experts for 4 layers × 2 chosen per token: most are given back every token.
        let (evicting, t) = try run(budget: 3)
        XCTAssertEqual(evicting.count, kept.count)
        for (i, (a, b)) in zip(kept, evicting).enumerated() {
            XCTAssertEqual(a, b, "pass \(i): logits differ when experts are evicted")
        }
        XCTAssertTrue(t.expertCache.isLimited)
        XCTAssertLessThanOrEqual(t.expertCache.held, 3)

        // The page cache may hold these small slices (24 pages each) in large folios that span
        // neighbouring experts, and a folio goes only whole: most pages, not all, are given back.
        let file = w.expertFiles[0]
        var heldResident = 0, otherResident = 0, otherPages = 0
        for l in 0..<w.config.nLayers {
            for e in 0..<w.config.nExperts {
                let pages = w.expertRanges[l][e].flatMap { file.residentPages($0) }
                let n = pages.filter { $0 }.count
                if t.expertCache.isHeld(layer: l, expert: e) { heldResident += n } else { otherResident += n; otherPages += pages.count }
            }
        }
        XCTAssertGreaterThan(heldResident, 0, "the held experts were just read")
        if otherResident == otherPages {
            file.dropFromPageCache()
            let left = w.expertRanges.joined().joined().reduce(0) { $0 + file.residentPages($1).filter { $0 }.count }
            if left > 0 { throw XCTSkip("this file system keeps dropped pages: \(left) expert pages resident after dropping the file") }
        }
        XCTAssertLessThan(otherResident, otherPages / 2, "pages of experts given back still in memory")
    }
}
#endif
