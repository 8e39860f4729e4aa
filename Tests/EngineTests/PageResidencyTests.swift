import Foundation
import XCTest
import Engine
import GGUF
import Kernels

#if os(Linux)
/// With expert advice on, running a token reads the chosen experts' pages and no others'.
final class PageResidencyTests: XCTestCase {
    override class func tearDown() { ConvertedFixture.cleanUp(); super.tearDown() }

    func testOnlyChosenExpertsAreRead() throws {
        let path = try ConvertedFixture.path(.bf16)
        let page = MappedFile.pageSize

        // The layout makes per-expert residency observable: every expert slice of a BF16
        // ffn_*_exps tensor is 384 × 128 × 2 = 98304 bytes = 24 pages of 4 KiB, page-aligned.
        let g = try GGUFFile(path: path)
        for l in 0..<4 {
            for kind in ["gate", "up", "down"] {
                let t = try XCTUnwrap(g.tensorInfo("blk.\(l).ffn_\(kind)_exps.weight"))
                XCTAssertEqual(t.type, .bf16)
                XCTAssertEqual(g.byteRange(of: t).lowerBound % page, 0, "\(t.name) not page-aligned")
                XCTAssertEqual(t.byteCount! / 8, 98304)
            }
        }

        let model = try Model(path: path)
        let w = model.weights
        XCTAssertEqual(w.expertFiles.count, 4)
        XCTAssertEqual(w.expertRanges.count, 4)
        let file = w.expertFiles[0]
        for l in 0..<4 {
            XCTAssertTrue(w.expertFiles[l] === file, "all experts live in the one GGUF file")
            XCTAssertEqual(w.expertRanges[l].count, 8)
            for ranges in w.expertRanges[l] {
                XCTAssertEqual(ranges.count, 3)
                for r in ranges {
                    XCTAssertEqual(r.lowerBound % page, 0, "expert slice \(r) not page-aligned")
                    XCTAssertEqual(r.count, 24 * 4096, "expert slice \(r) is not 24 pages")
                }
            }
        }
        guard page == 4096 else { throw XCTSkip("page size is \(page), the layout assertions assume 4096") }

        let t = try Transformer(weights: w, pool: WorkerPool(threads: 2), kvType: .f32, contextLength: 16, maxBatch: 1, adviseExperts: true)
        t.traceExperts = true

        file.dropFromPageCache()
        let stillResident = w.expertRanges.flatMap { $0.flatMap { $0 } }.reduce(0) { $0 + file.residentPages($1).filter { $0 }.count }
        if stillResident > 0 {
            throw XCTSkip("dropping the file from the page cache does not work here: \(stillResident) expert pages still resident right after MappedFile.dropFromPageCache(), before running")
        }

        try [Int32(1)].withUnsafeBufferPointer { try t.forward($0, logits: .last) }
        XCTAssertEqual(t.expertTrace.count, 1)
        let trace = try XCTUnwrap(t.expertTrace.first)
        XCTAssertEqual(trace.count, 4)

        for l in 0..<4 {
            let chosen = Set(trace[l].experts)
            XCTAssertEqual(chosen.count, 2, "layer \(l): \(trace[l].experts)")
            var chosenMissing: [String] = [], unchosenResident: [String] = []
            for e in 0..<8 {
                for (m, r) in w.expertRanges[l][e].enumerated() {
                    let resident = file.residentPages(r)
                    XCTAssertEqual(resident.count, 24)
                    let n = resident.filter { $0 }.count
                    let matrix = ["gate", "up", "down"][m]
                    if chosen.contains(e) && n != 24 { chosenMissing.append("expert \(e) \(matrix): \(n)/24") }
                    if !chosen.contains(e) && n != 0 { unchosenResident.append("expert \(e) \(matrix): \(n)/24") }
                }
            }
            XCTAssertTrue(chosenMissing.isEmpty, "layer \(l), chosen \(trace[l].experts): pages not resident: \(chosenMissing)")
            XCTAssertTrue(unchosenResident.isEmpty, "layer \(l), chosen \(trace[l].experts): unchosen experts' pages resident: \(unchosenResident)")
        }
    }
}
#endif
