import XCTest
@testable import Kernels
import Q8_0Kernels

/// The AVX-VNNI route of the Q8_0 products gives the AVX2 route's bits: the same integers per
/// lane and the same float order, for one vector and for four-vector tiles, so a model's output
/// does not depend on which CPU ran it.
final class Q8_0VNNITests: XCTestCase {
    override func setUpWithError() throws {
        guard CPUFeatures.hasAVXVNNI else {
            throw XCTSkip("this CPU has no AVX-VNNI (no avx_vnni in /proc/cpuinfo), so the VNNI route cannot run here")
        }
    }

    /// A row with every weight byte, −128 included, and rows of several scales.
    private func rows(_ rng: inout SplitMix64, cols: Int, count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for r in 0..<count {
            var row = encodeRow(rng.floats(cols, sigma: [0.02, 1, 40, 0.3][r % 4]), as: .q8_0)
            if r % 4 == 3 { for i in 0..<cols { row[(i / 32) * 34 + 2 + i % 32] = UInt8(truncatingIfNeeded: i * 37 + r) } }
            bytes += row
        }
        return bytes
    }

    func testOneVectorIsBitIdenticalToAVX2() {
        var rng = SplitMix64(seed: 91)
        for cols in [32, 64, 96, 4096, 14336] {
            let w = rows(&rng, cols: cols, count: 4)
            let rowBytes = TensorType.q8_0.rowBytes(cols)!
            for trial in 0..<2 {
                let x = rng.floats(cols, sigma: trial == 0 ? 1 : 300)
                let xq = QuantizedActivations(capacity: cols)
                x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: cols, count: 1, rowLength: cols) }
                let (q, d) = xq.vector(0)
                w.withUnsafeBytes { wb in
                    for r in 0..<4 {
                        let row = wb.baseAddress! + r * rowBytes
                        let avx2 = Dot.q8_0(row, q, d, blocks: cols / 32)
                        let vnni = Q8_0VNNI.dot(row, q, d, blocks: cols / 32)
                        XCTAssertEqual(vnni.bitPattern, avx2.bitPattern, "cols \(cols) row \(r) trial \(trial): \(vnni) vs \(avx2)")
                    }
                }
            }
        }
    }

    /// Whole products through the pool, both routes, every tile shape: vector counts around the
    /// tile of four, odd and even block counts, scratch for all rows of a group, for one, and
    /// for none (every vector then goes one by one).
    func testPoolProductIsBitIdenticalToAVX2Route() {
        let saved = CPUFeatures.q8_0UsesVNNI
        defer { CPUFeatures.q8_0UsesVNNI = saved }
        var rng = SplitMix64(seed: 92)
        for cols in [96, 352] {
            let rowCount = 45
            let w = rows(&rng, cols: cols, count: rowCount)
            let oneRow = Q8_0Product<AVX2BlockProducts>.scratchBytes(rows: 1, blocks: cols / 32)
            for (threads, scratch) in [(1, 256 << 10), (2, 256 << 10), (2, oneRow), (1, 64)] {
                let pool = WorkerPool(threads: threads, scratchBytes: scratch)
                for count in [1, 3, 4, 5, 8, 9] {
                    let x = rng.floats(cols * count)
                    let xq = QuantizedActivations(capacity: cols * count)
                    x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: cols, count: count, rowLength: cols) }
                    let yStride = rowCount + 1
                    var results: [[Float]] = []
                    for vnni in [false, true] {
                        CPUFeatures.q8_0UsesVNNI = vnni
                        var y = [Float](repeating: .nan, count: yStride * count)
                        w.withUnsafeBytes { b in
                            let m = WeightMatrix(base: b.baseAddress!, type: .q8_0, cols: cols, rows: rowCount)
                            y.withUnsafeMutableBufferPointer { pool.matMul(m, xq, $0.baseAddress!, yStride: yStride) }
                        }
                        results.append(y)
                    }
                    for t in 0..<count {
                        for r in 0..<rowCount {
                            let a = results[0][t * yStride + r], v = results[1][t * yStride + r]
                            XCTAssertFalse(v.isNaN, "cols \(cols) threads \(threads) scratch \(scratch) count \(count): y[\(t)][\(r)] not written")
                            XCTAssertEqual(v.bitPattern, a.bitPattern,
                                           "cols \(cols) threads \(threads) scratch \(scratch) count \(count) t \(t) row \(r): \(v) vs \(a)")
                        }
                        XCTAssertTrue(results[1][t * yStride + rowCount].isNaN, "wrote past the rows")
                    }
                }
            }
        }
    }
}
