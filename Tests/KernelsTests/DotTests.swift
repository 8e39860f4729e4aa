import XCTest
@testable import Kernels

final class DotTests: XCTestCase {
    /// Lengths per type: block types need whole blocks; float types also get odd lengths (scalar fallback).
    func lengths(_ t: TensorType) -> [Int] { t.blockSize == 1 ? [32, 128, 4096, 40, 100] : [32, 128, 4096] }

    /// The SIMD kernel computes the same products as the scalar twin, summed in a different order
    /// (8 lanes × 4 accumulators, per-block partial sums, FMA). Any ordering of a sum of n terms
    /// with float rounding (unit roundoff u = 2⁻²⁴) differs from the exact sum by at most
    /// (n−1)·u·Σ|tᵢ| (+ u per product), so two orderings differ by at most ≈ 2n·u·Σ|tᵢ| = n·2⁻²³·Σ|wᵢxᵢ|.
    /// For Q8_0/FP8 the kernel multiplies by the block scale after summing; moving one rounding of
    /// d·q into the sum is covered by the same bound. The 1e-6 absorbs sums that cancel to ~0.
    func testSIMDMatchesScalarTwin() {
        var rng = SplitMix64(seed: 41)
        for type in TensorType.allCases {
            for n in lengths(type) {
                for trial in 0..<4 {
                    let sigma: Float = [0.02, 1, 30, 0.5][trial]
                    let w = rng.floats(n, sigma: sigma)
                    let x = rng.floats(n, sigma: 1)
                    let bytes = encodeRow(w, as: type)
                    let wq = decodeRow(bytes, count: n, as: type)
                    let magnitude = zip(wq, x).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                    let exact = zip(wq, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                    // Unaligned row start (offset 1) too: the kernels must use unaligned loads.
                    for misalign in [0, 1] {
                        var buffer = [UInt8](repeating: 0, count: bytes.count + misalign)
                        buffer.replaceSubrange(misalign..<(misalign + bytes.count), with: bytes)
                        let (fast, ref) = buffer.withUnsafeBytes { b in
                            x.withUnsafeBufferPointer { xp in
                                (Dot.dot(b.baseAddress! + misalign, xp.baseAddress!, count: n, type: type),
                                 Dot.reference(b.baseAddress! + misalign, xp.baseAddress!, count: n, type: type))
                            }
                        }
                        let bound = Double(n) * 0x1p-23 * magnitude + 1e-6
                        XCTAssertLessThanOrEqual(abs(Double(fast) - Double(ref)), bound,
                                                 "\(type) n=\(n) trial \(trial) misalign \(misalign): fast \(fast) ref \(ref)")
                        // The twin itself is a plain in-order float sum of the dequantized products.
                        XCTAssertLessThanOrEqual(abs(Double(ref) - exact), Double(n) * 0x1p-24 * magnitude + 1e-6,
                                                 "\(type) n=\(n): reference \(ref) vs exact \(exact)")
                        if n % 32 != 0 { XCTAssertEqual(fast, ref, "odd lengths take the scalar path") }
                    }
                }
            }
        }
    }

    /// A kernel that reads the wrong lanes or blocks would still pass a loose random test only by
    /// accident; one-hot rows pin every position.
    func testOneHotPositions() {
        for type in TensorType.allCases {
            let n = 128
            var x = [Float](repeating: 0, count: n)
            for i in 0..<n { x[i] = Float(i + 1) }
            for pos in stride(from: 0, to: n, by: 7) {
                var w = [Float](repeating: 0, count: n)
                // Values the block formats store exactly: Q8_0 127/64 (d = 2⁻⁶, q = 127), FP8 7 (d = 2⁻⁶, e4m3 448).
                let value: Float = type == .q8_0 ? 127.0 / 64 : type == .fp8_e4m3 ? 7 : 2
                w[pos] = value
                let bytes = encodeRow(w, as: type)
                XCTAssertEqual(decodeRow(bytes, count: n, as: type), w, "\(type) stores the one-hot row exactly")
                let got = bytes.withUnsafeBytes { b in x.withUnsafeBufferPointer { Dot.dot(b.baseAddress!, $0.baseAddress!, count: n, type: type) } }
                XCTAssertEqual(got, value * Float(pos + 1), "\(type): one-hot at \(pos)")
            }
        }
    }
}

/// The FP8 kernel reads E4M3 bits as f32 bits (× 2⁻¹²⁰) against activations × 2⁹⁶: every code,
/// subnormals included (older files hold them), and activations over a wide range of magnitudes
/// must give the scalar twin's result within the summation-order bound.
final class FP8KernelTests: XCTestCase {
    func testEveryCodeAndWideActivationRange() {
        var rng = SplitMix64(seed: 43)
        let codes = (0...255).map { UInt8($0) }.filter { $0 & 0x7F != 0x7F }
        let n = 32 * 64
        for exponent in [-40, -12, 0, 12, 28] {
            var bytes = [UInt8](repeating: 0, count: n / 32 * 34)
            for b in 0..<(n / 32) {
                let d = Float16(Float(sign: .plus, exponent: -10 + Int(rng.next() % 8), significand: 1 + Float(rng.next() % 1024) / 1024))
                bytes[b * 34] = UInt8(d.bitPattern & 0xFF); bytes[b * 34 + 1] = UInt8(d.bitPattern >> 8)
                for i in 0..<32 { bytes[b * 34 + 2 + i] = codes[(b * 32 + i) % codes.count] }
            }
            let x = rng.floats(n, sigma: 1).map { $0 * Float(sign: .plus, exponent: exponent, significand: 1) }
            let wq = decodeRow(bytes, count: n, as: .fp8_e4m3)
            let magnitude = zip(wq, x).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
            let exact = zip(wq, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let scaled = x.map { $0 * Dot.fp8ActivationScale }
            let (fast, pre) = bytes.withUnsafeBytes { b in
                (x.withUnsafeBufferPointer { Dot.dot(b.baseAddress!, $0.baseAddress!, count: n, type: .fp8_e4m3) },
                 scaled.withUnsafeBufferPointer { Dot.fp8(b.baseAddress!, scaledX: $0.baseAddress!, n) })
            }
            XCTAssertLessThanOrEqual(abs(Double(fast) - exact), Double(n) * 0x1p-23 * magnitude + 1e-30,
                                     "activations ~2^\(exponent): kernel \(fast), exact \(exact)")
            XCTAssertEqual(fast.bitPattern, pre.bitPattern, "activations ~2^\(exponent): pre-scaled activations")
            // The prompt tile (exact weights, unscaled activations) on four vectors, this one third.
            let four = [Float](repeating: 1, count: n) + rng.floats(n) + x + rng.floats(n)
            let tile = bytes.withUnsafeBytes { b in four.withUnsafeBufferPointer { Dot.fp8x4(b.baseAddress!, $0.baseAddress!, xStride: n, count: n) } }
            XCTAssertEqual(tile[2].bitPattern, fast.bitPattern, "activations ~2^\(exponent): four-vector tile")
        }
    }
}

final class MatMulTests: XCTestCase {
    /// Every (row, vector) value is Dot.dot's, bit for bit, whether it came from a tile (two
    /// rows × four vectors, one row × four), four rows at once (leftover vectors) or Dot.dot
    /// itself (leftover rows, block types).
    func testPoolMatMulEqualsDotPerRow() {
        var rng = SplitMix64(seed: 51)
        for type in TensorType.allCases {
            let cols = 96, rows = 37
            let w = rng.floats(cols * rows, sigma: 0.1)
            var bytes: [UInt8] = []
            for r in 0..<rows { bytes += encodeRow(Array(w[(r * cols)..<((r + 1) * cols)]), as: type) }
            for threads in 1...3 {
                let pool = WorkerPool(threads: threads)
                for count in [1, 2, 4, 5, 9] {
                    let xStride = cols + 3, yStride = rows + 2
                    let x = rng.floats(xStride * count)
                    var y = [Float](repeating: .nan, count: yStride * count)
                    var expected = [Float](repeating: .nan, count: yStride * count)
                    bytes.withUnsafeBytes { b in
                        let m = WeightMatrix(base: b.baseAddress!, type: type, cols: cols, rows: rows)
                        XCTAssertEqual(m.rowBytes, type.rowBytes(cols))
                        x.withUnsafeBufferPointer { xp in
                            y.withUnsafeMutableBufferPointer { yp in
                                pool.matMul(m, xp.baseAddress!, xStride: xStride, count: count, yp.baseAddress!, yStride: yStride)
                            }
                            for t in 0..<count {
                                for r in 0..<rows {
                                    expected[t * yStride + r] = Dot.dot(m.row(r), xp.baseAddress! + t * xStride, count: cols, type: type)
                                }
                            }
                        }
                    }
                    for t in 0..<count {
                        for r in 0..<rows {
                            // Bit for bit, tiled (four tokens at once) or not: a token's result
                            // must not depend on its batch.
                            let got = y[t * yStride + r], want = expected[t * yStride + r]
                            XCTAssertEqual(got.bitPattern, want.bitPattern, "\(type) threads \(threads) count \(count) t \(t) row \(r): \(got) vs \(want)")
                        }
                        // Padding between rows of y is left alone.
                        for r in rows..<yStride { XCTAssertTrue(y[t * yStride + r].isNaN, "wrote past the rows") }
                    }
                }
            }
        }
    }

    func testWeightMatrixRowsSlice() {
        var rng = SplitMix64(seed: 52)
        let cols = 64, rows = 10
        let w = rng.floats(cols * rows)
        let bytes = (0..<rows).flatMap { encodeRow(Array(w[($0 * cols)..<(($0 + 1) * cols)]), as: .q8_0) }
        bytes.withUnsafeBytes { b in
            let m = WeightMatrix(base: b.baseAddress!, type: .q8_0, cols: cols, rows: rows)
            let s = m.rows(3..<7)
            XCTAssertEqual(s.rows, 4)
            XCTAssertEqual(s.byteCount, 4 * 68)
            XCTAssertEqual(s.row(0), m.row(3))
            var out = [Float](repeating: 0, count: cols)
            out.withUnsafeMutableBufferPointer { s.dequantizeRow(1, into: $0.baseAddress!) }
            XCTAssertEqual(out, decodeRow(Array(bytes[(4 * 68)..<(5 * 68)]), count: cols, as: .q8_0))
        }
    }
}
