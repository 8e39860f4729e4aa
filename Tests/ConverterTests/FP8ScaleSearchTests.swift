import XCTest
import Checkpoint
import Kernels

/// The FP8 scale search (each block's scale chosen among amax/448 × 2^(k/8), k = 0…7, to minimise
/// its squared error) against the plain amax/448 scale, on the real weights of the tiny model:
/// every attention and expert matrix, all blocks.
final class FP8ScaleSearchTests: XCTestCase {
    func testSearchCutsTheSquaredErrorOfRealWeights() throws {
        let ckpt = try openCheckpoint(TestPaths.fixture.path)
        let c = ckpt.config
        var roles: [TensorRole] = []
        for l in 0..<c.nLayers {
            roles += [.attnQ(l), .attnK(l), .attnV(l), .attnOutput(l)]
            for e in 0..<c.nExperts { roles += [.expertGate(l, e), .expertUp(l, e), .expertDown(l, e)] }
        }
        var plain = 0.0, searched = 0.0, sumSquares = 0.0
        var x = [Float](repeating: 0, count: 32)
        var block = [UInt8](repeating: 0, count: FP8Block.byteCount)
        var back = [Float](repeating: 0, count: 32)
        func squaredError(search: Bool) -> Double {
            block.withUnsafeMutableBytes { FP8Block.quantize(x, into: $0.baseAddress!, search: search) }
            block.withUnsafeBytes { FP8Block.dequantize($0.baseAddress!, into: &back) }
            var e = 0.0
            for i in 0..<32 { let d = Double(x[i]) - Double(back[i]); e += d * d }
            return e
        }
        var row = [Float](repeating: 0, count: c.nEmbd * 8)
        for role in roles {
            let t = try ckpt.tensor(role)
            let m = t.matrix
            if row.count < m.cols { row = [Float](repeating: 0, count: m.cols) }
            for r in 0..<m.rows {
                RowCodec.dequantize(m.row(r), count: m.cols, as: m.type, into: &row)
                for b in stride(from: 0, to: m.cols, by: 32) {
                    for i in 0..<32 { x[i] = row[b + i]; sumSquares += Double(x[i]) * Double(x[i]) }
                    plain += squaredError(search: false)
                    searched += squaredError(search: true)
                }
            }
        }
        let gain = 1 - searched / plain
        print(String(format: "FP8 scale search on tiny-mixtral's %d matrices: squared error %.4g → %.4g (−%.1f%%), relative RMSE %.4f → %.4f",
                     roles.count, plain, searched, gain * 100, (plain / sumSquares).squareRoot(), (searched / sumSquares).squareRoot()))
        XCTAssertLessThanOrEqual(searched, plain)
        XCTAssertGreaterThan(gain, 0.05, "the search should cut the squared error of trained weights by well over 5%")
    }
}
