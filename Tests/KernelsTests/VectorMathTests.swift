import Foundation
import XCTest
@testable import Kernels

final class VectorMathTests: XCTestCase {
    /// eˣ within 2 ulp of the double-precision value over the whole clamped range, and clamped
    /// (finite, normal) outside it.
    func testExpAgainstDouble() {
        var rng = SplitMix64(seed: 3)
        var xs: [Float] = [0, 1, -1, 0.5, -0.5, 0.34657359, -0.34657359, 87, -87, 20.5, -20.5]
        for _ in 0..<4000 { xs.append(Float(Double(rng.next() >> 11) * 0x1p-53 * 174 - 87)) }
        while xs.count % 8 != 0 { xs.append(0.25) }
        var worst = 0.0
        for b in stride(from: 0, to: xs.count, by: 8) {
            var v = SIMD8<Float>()
            for i in 0..<8 { v[i] = xs[b + i] }
            let e = VectorMath.exp(v)
            for i in 0..<8 {
                let want = Foundation.exp(Double(v[i]))
                let ulp = Double(Float(want).ulp)
                worst = max(worst, abs(Double(e[i]) - want) / ulp)
            }
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error \(worst) ulp")
        let out = VectorMath.exp(SIMD8(200, -200, 88.7, -104, .infinity, -.infinity, 1e30, -1e30))
        for i in 0..<8 { XCTAssertTrue(out[i].isFinite && out[i].isNormal, "lane \(i): \(out[i])") }
        XCTAssertEqual(Double(out[0]), Foundation.exp(87), accuracy: Foundation.exp(87) * 1e-6)
        XCTAssertEqual(Double(out[1]), Foundation.exp(-87), accuracy: Foundation.exp(-87) * 1e-6)
    }

    /// The gated SiLU against its formula in double precision, for lengths with and without a
    /// tail of fewer than 8.
    func testGatedSiLU() {
        var rng = SplitMix64(seed: 4)
        for n in [1, 7, 8, 13, 64, 100] {
            let g = rng.floats(n, sigma: 6), u = rng.floats(n)
            var out = g
            out.withUnsafeMutableBufferPointer { o in u.withUnsafeBufferPointer { VectorMath.gatedSiLU(o.baseAddress!, $0.baseAddress!, 0..<n) } }
            for i in 0..<n {
                let x = Double(g[i])
                let want = x / (1 + Foundation.exp(-x)) * Double(u[i])
                XCTAssertEqual(Double(out[i]), want, accuracy: 1e-6 * (abs(want) + 1e-6), "n \(n) i \(i)")
            }
        }
    }
}
