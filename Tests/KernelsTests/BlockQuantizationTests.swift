import Foundation
import XCTest
@testable import Kernels

/// ggml's quantize_row_q8_0_ref, rewritten here: d = amax/127, id = 1/d, q = roundf(x·id) (half away
/// from zero), the scale stored as IEEE f16.
func referenceQ8_0(_ x: ArraySlice<Float>) -> [UInt8] {
    precondition(x.count == 32)
    var amax: Float = 0
    for v in x { amax = Swift.max(amax, Swift.abs(v)) }
    let d = amax / 127
    let id: Float = d != 0 ? 1 / d : 0
    var out: [UInt8] = []
    let dBits = Float16(d).bitPattern
    out.append(UInt8(dBits & 0xFF)); out.append(UInt8(dBits >> 8))
    for v in x { out.append(UInt8(bitPattern: Int8(roundf(v * id)))) }
    return out
}

func referenceQ8_0Row(_ x: [Float]) -> [UInt8] {
    stride(from: 0, to: x.count, by: 32).flatMap { referenceQ8_0(x[$0..<($0 + 32)]) }
}

/// Test blocks: Gaussian at several scales, single outliers, all zero, constant, all negative, sparse.
func testBlocks(seed: UInt64, count: Int = 600) -> [[Float]] {
    var rng = SplitMix64(seed: seed)
    var blocks: [[Float]] = []
    for i in 0..<count {
        let scale = [Float(1e-3), 0.02, 0.3, 1, 7, 100, 3000][i % 7]
        var b = rng.floats(32, sigma: scale)
        switch i % 10 {
        case 1: b[Int.random(in: 0..<32, using: &rng)] = scale * 40          // outlier
        case 2: b = b.map { -abs($0) }                                        // all negative
        case 3: b = [Float](repeating: scale, count: 32)                      // constant
        case 4: b = b.enumerated().map { $0.offset % 5 == 0 ? $0.element : 0 } // sparse
        case 5: b[3] = -b.map(abs).max()! * 1.5                                // negative max
        default: break
        }
        blocks.append(b)
    }
    blocks.append([Float](repeating: 0, count: 32))
    blocks.append((0..<32).map { Float($0) - 15.5 })  // exact multiples of d/2 probe rounding
    blocks.append((0..<32).map { Float($0 % 2 == 0 ? 127 : -63.5) })
    return blocks
}

final class Q8_0Tests: XCTestCase {
    func testQuantizeMatchesIndependentReference() {
        for (i, b) in testBlocks(seed: 21).enumerated() {
            var out = [UInt8](repeating: 0xAA, count: 34)
            b.withUnsafeBufferPointer { p in out.withUnsafeMutableBytes { Q8_0Block.quantize(p.baseAddress!, into: $0.baseAddress!) } }
            XCTAssertEqual(out, referenceQ8_0(b[...]), "block \(i)")
        }
    }

    func testRowCodecQ8_0MatchesReference() {
        var rng = SplitMix64(seed: 22)
        let x = rng.floats(32 * 40, sigma: 0.05)
        XCTAssertEqual(encodeRow(x, as: .q8_0), referenceQ8_0Row(x))
    }

    func testRoundingHalfAwayFromZero() {
        // amax = 127 → d = 1 exactly: q = round(x), halves away from zero.
        var b = [Float](repeating: 0, count: 32)
        b[0] = 127; b[1] = 0.5; b[2] = -0.5; b[3] = 1.5; b[4] = -2.5; b[5] = 2.5; b[6] = 0.49999997
        var out = [UInt8](repeating: 0, count: 34)
        b.withUnsafeBufferPointer { p in out.withUnsafeMutableBytes { Q8_0Block.quantize(p.baseAddress!, into: $0.baseAddress!) } }
        let q = out[2...].map { Int8(bitPattern: $0) }
        XCTAssertEqual(Array(q[0..<7]), [127, 1, -1, 2, -3, 3, 0])
        XCTAssertEqual(UInt16(out[0]) | UInt16(out[1]) << 8, 0x3C00)  // d = 1.0 in f16
    }

    /// |x − d₁₆·q| ≤ d/2 + |q|·|d − d₁₆|: rounding to the nearest multiple of d costs at most d/2,
    /// storing d as f16 moves every value by |q| times the scale's rounding error. (A relative 1e-5
    /// of d covers x·(1/d) being computed in float.)
    func testErrorBound() {
        for (i, b) in testBlocks(seed: 23).enumerated() {
            var out = [UInt8](repeating: 0, count: 34)
            var back = [Float](repeating: 0, count: 32)
            b.withUnsafeBufferPointer { p in out.withUnsafeMutableBytes { Q8_0Block.quantize(p.baseAddress!, into: $0.baseAddress!) } }
            out.withUnsafeBytes { o in back.withUnsafeMutableBufferPointer { Q8_0Block.dequantize(o.baseAddress!, into: $0.baseAddress!) } }
            let amax = b.map(abs).max()!
            let d = Double(amax / 127)
            let d16 = f16Value(UInt16(out[0]) | UInt16(out[1]) << 8)
            for j in 0..<32 {
                let q = Double(Int8(bitPattern: out[2 + j]))
                XCTAssertLessThanOrEqual(abs(q), 127)
                XCTAssertEqual(Double(back[j]), Double(Float(d16) * Float(q)), "dequantize = d·q")
                let err = abs(Double(b[j]) - d16 * q)
                let bound = d / 2 * (1 + 1e-5) + abs(q) * abs(d - d16) + 1e-30
                XCTAssertLessThanOrEqual(err, bound, "block \(i) value \(j): x=\(b[j]) q=\(q) d=\(d) d16=\(d16)")
            }
        }
    }
}

final class FP8BlockTests: XCTestCase {
    func quantize(_ b: [Float], search: Bool = true) -> [UInt8] {
        var out = [UInt8](repeating: 0xAA, count: 34)
        b.withUnsafeBufferPointer { p in out.withUnsafeMutableBytes { FP8Block.quantize(p.baseAddress!, into: $0.baseAddress!, search: search) } }
        return out
    }

    func dequantize(_ out: [UInt8]) -> [Float] {
        var back = [Float](repeating: 0, count: 32)
        out.withUnsafeBytes { o in back.withUnsafeMutableBufferPointer { FP8Block.dequantize(o.baseAddress!, into: $0.baseAddress!) } }
        return back
    }

    /// Spacing of E4M3 values around |y|: 2^(e−3) in the binade [2^e, 2^(e+1)) (3 mantissa bits),
    /// 2^−6 below 2^−6 (the quantizer writes no subnormals: 0 or 2^−6 there).
    func e4m3Spacing(_ y: Double) -> Double {
        let a = abs(y)
        if a < 0x1p-6 { return 0x1p-6 }
        return pow(2, floor(log2(a)) - 3)
    }

    /// Each value is d·e4m3(x/d) with round to nearest, so |x − d·e4m3| ≤ d·spacing(x/d)/2;
    /// the scale is never below amax/448, so nothing saturates. The 2⁻²⁰·|x| slack covers x·(1/d)
    /// being rounded in float before encoding.
    func testErrorWithinHalfSpacing() {
        for (i, b) in testBlocks(seed: 31).enumerated() {
            let out = quantize(b)
            XCTAssertFalse(out[2...].contains { $0 & 0x7F == 0x7F }, "NaN code written in block \(i)")
            XCTAssertFalse(out[2...].contains { $0 & 0x78 == 0 && $0 & 7 != 0 }, "subnormal code written in block \(i)")
            let back = dequantize(out)
            let d = f16Value(UInt16(out[0]) | UInt16(out[1]) << 8)
            let amax = Double(b.map(abs).max()!)
            if amax == 0 {
                XCTAssertEqual(back, [Float](repeating: 0, count: 32)); continue
            }
            XCTAssertTrue(d.isFinite && d > 0, "block \(i): scale \(d)")
            XCTAssertGreaterThanOrEqual(d * 448, amax, "block \(i): scale \(d) saturates amax \(amax)")
            for j in 0..<32 {
                let x = Double(b[j])
                XCTAssertEqual(Double(back[j]), Double(Float(d) * FP8E4M3.decode(out[2 + j])))
                let err = abs(x - Double(back[j]))
                let bound = d * e4m3Spacing(x / d) / 2 + abs(x) * 0x1p-20 + 1e-30
                XCTAssertLessThanOrEqual(err, bound, "block \(i) value \(j): x=\(x) d=\(d) got \(back[j])")
            }
        }
    }

    func squaredError(_ b: [Float], _ out: [UInt8]) -> Double {
        zip(b, dequantize(out)).reduce(0) { let e = Double($1.0) - Double($1.1); return $0 + e * e }
    }

    func testScaleSearchNeverWorseThanPlainAmaxScale() {
        var improved = 0
        var totalSearch = 0.0, totalPlain = 0.0
        for (i, b) in testBlocks(seed: 32, count: 1500).enumerated() {
            let plainOut = quantize(b, search: false)
            let searchOut = quantize(b, search: true)
            // The plain scale is the smallest f16 ≥ amax/448 (nearest f16 of amax/448, bumped up one ulp if below).
            let amax = b.map(abs).max()!
            if amax > 0 {
                let dPlain = f16Value(UInt16(plainOut[0]) | UInt16(plainOut[1]) << 8)
                let nearest = f16Value(Float16(amax / 448).bitPattern)
                XCTAssertTrue(dPlain == nearest || (nearest * 448 < Double(amax) && dPlain == f16Value(Float16(amax / 448).bitPattern + 1)),
                              "block \(i): plain scale \(dPlain), amax/448 = \(amax / 448)")
            }
            let ePlain = squaredError(b, plainOut), eSearch = squaredError(b, searchOut)
            XCTAssertLessThanOrEqual(eSearch, ePlain * (1 + 1e-5) + 1e-30, "block \(i): search made the error worse")
            if eSearch < ePlain * (1 - 1e-6) { improved += 1 }
            totalSearch += eSearch / max(Double(amax) * Double(amax), 1e-30)
            totalPlain += ePlain / max(Double(amax) * Double(amax), 1e-30)
        }
        XCTAssertGreaterThan(improved, 0, "the scale search never found a better scale")
        XCTAssertLessThan(totalSearch, totalPlain)
    }

    func testAllZeroBlock() {
        let out = quantize([Float](repeating: 0, count: 32))
        XCTAssertEqual(out, [UInt8](repeating: 0, count: 34))
    }
}
