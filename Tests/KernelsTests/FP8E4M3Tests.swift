import XCTest
@testable import Kernels

/// Independent definition of OCP E4M3: 1 sign, 4 exponent bits (bias 7), 3 mantissa bits,
/// subnormals at exponent 0, S.1111.111 the only NaNs, no infinities.
func e4m3Value(_ b: UInt8) -> Double {
    let sign: Double = b & 0x80 != 0 ? -1 : 1
    let e = Int((b >> 3) & 0xF), m = Double(b & 7)
    if e == 15 && m == 7 { return .nan }
    if e == 0 { return sign * (m / 8) * pow(2, -6) }
    return sign * (1 + m / 8) * pow(2, Double(e - 7))
}

final class FP8E4M3Tests: XCTestCase {
    /// The 254 codes that are not NaN (0x7F, 0xFF).
    let finiteCodes: [UInt8] = (0...255).map { UInt8($0) }.filter { $0 & 0x7F != 0x7F }

    func testFiniteCodeCount() {
        XCTAssertEqual(finiteCodes.count, 254)
    }

    func testDecodeMatchesDefinition() {
        for b in finiteCodes {
            let v = FP8E4M3.decode(b)
            XCTAssertEqual(Double(v), e4m3Value(b), "decode(0x\(String(b, radix: 16)))")
            XCTAssertEqual(v.sign == .minus, b & 0x80 != 0, "sign of 0x\(String(b, radix: 16))")
            XCTAssertEqual(FP8E4M3.table[Int(b)].bitPattern, v.bitPattern)
        }
        XCTAssertTrue(FP8E4M3.decode(0x7F).isNaN)
        XCTAssertTrue(FP8E4M3.decode(0xFF).isNaN)
        XCTAssertEqual(FP8E4M3.decode(0x7E), 448)
        XCTAssertEqual(FP8E4M3.decode(0xFE), -448)
        XCTAssertEqual(FP8E4M3.decode(0x01), 0x1p-9)
        XCTAssertEqual(FP8E4M3.decode(0x08), 0x1p-6)
    }

    func testRoundTripAllFiniteCodes() {
        for b in finiteCodes {
            let v = FP8E4M3.decode(b)
            XCTAssertEqual(FP8E4M3.encode(v), b, "encode(decode(0x\(String(b, radix: 16)))) = encode(\(v))")
        }
    }

    /// Positive finite values in increasing order with their codes.
    var positiveLadder: [(code: UInt8, value: Float)] {
        (0...0x7E).map { (UInt8($0), Float(e4m3Value(UInt8($0)))) }
    }

    func testRoundToNearestEvenAtMidpoints() {
        let ladder = positiveLadder
        for i in 0..<(ladder.count - 1) {
            let (ca, va) = ladder[i], (cb, vb) = ladder[i + 1]
            XCTAssertLessThan(va, vb)
            let mid = (va + vb) / 2  // exact: both have ≤ 4 significant bits
            XCTAssertEqual(Double(mid), (Double(va) + Double(vb)) / 2)
            // The even code is the one whose mantissa LSB (bit 0 of the code) is 0.
            let even = ca & 1 == 0 ? ca : cb
            XCTAssertEqual(FP8E4M3.encode(mid), even, "midpoint \(mid) between \(va) and \(vb)")
            XCTAssertEqual(FP8E4M3.encode(-mid), even | 0x80, "midpoint \(-mid)")
            XCTAssertEqual(FP8E4M3.encode(mid.nextDown), ca, "just below the midpoint \(mid)")
            XCTAssertEqual(FP8E4M3.encode(mid.nextUp), cb, "just above the midpoint \(mid)")
            XCTAssertEqual(FP8E4M3.encode(-mid.nextUp), cb | 0x80)
        }
    }

    func testEncodeIsNearestForRandomValues() {
        var rng = SplitMix64(seed: 7)
        let ladder = positiveLadder
        for _ in 0..<20_000 {
            let x = Float(sign: .plus, exponent: Int.random(in: -12...9, using: &rng),
                          significand: Float.random(in: 1..<2, using: &rng))
            guard x < 448 else { continue }
            let code = FP8E4M3.encode(x)
            let got = Double(FP8E4M3.decode(code))
            let best = ladder.map { abs(Double($0.value) - Double(x)) }.min()!
            XCTAssertEqual(abs(got - Double(x)), best, "encode(\(x)) = \(got) is not a nearest value")
        }
    }

    func testSaturation() {
        for x: Float in [448, 448.5, 460, 464, 480, 500, 1e4, 65504, 1e30, .greatestFiniteMagnitude, .infinity] {
            XCTAssertEqual(FP8E4M3.encode(x), 0x7E, "encode(\(x))")
            XCTAssertEqual(FP8E4M3.encode(-x), 0xFE, "encode(\(-x))")
        }
        // Just below 448 rounds to 448 (the gap below is 32), 432 … 440 stays at 416/448.
        XCTAssertEqual(FP8E4M3.encode(447.9), 0x7E)
        XCTAssertEqual(FP8E4M3.encode(432), 0x7E)  // midpoint 416|448: 448 is even (m = 6)
        XCTAssertEqual(FP8E4M3.encode(431.9), 0x7D)
    }

    func testNeverProducesNaN() {
        for x: Float in [.nan, -.nan, .signalingNaN, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                         .leastNonzeroMagnitude, -.leastNonzeroMagnitude, 0, -0.0, 1e-30] {
            let c = FP8E4M3.encode(x)
            XCTAssertNotEqual(c & 0x7F, 0x7F, "encode(\(x)) gave a NaN code 0x\(String(c, radix: 16))")
            XCTAssertFalse(FP8E4M3.decode(c).isNaN)
        }
        var rng = SplitMix64(seed: 11)
        for _ in 0..<50_000 {
            let x = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
            let c = FP8E4M3.encode(x)
            XCTAssertNotEqual(c & 0x7F, 0x7F, "encode(\(x)) gave a NaN code")
        }
    }

    func testTinyValuesRoundToSubnormalsOrZero() {
        XCTAssertEqual(FP8E4M3.encode(0x1p-10), 0x00)          // midpoint 0|2^-9 → 0 (even)
        XCTAssertEqual(FP8E4M3.encode(Float(0x1p-10).nextUp), 0x01)
        XCTAssertEqual(FP8E4M3.encode(3 * 0x1p-10), 0x02)      // midpoint 1|2 → 2
        XCTAssertEqual(FP8E4M3.encode(-0x1p-12), 0x80)
        XCTAssertEqual(FP8E4M3.encode(0x1p-6 - 0x1p-11), 0x08) // 7.75 × 2^-9 → 8 × 2^-9 = smallest normal
    }
}

/// What the converter writes: no subnormal codes; below 2⁻⁶ the nearer of 0 and 2⁻⁶, and
/// ``FP8E4M3/encode(_:)`` from 2⁻⁶ up.
final class FP8EncodeNormalTests: XCTestCase {
    func testNoSubnormalCodesAndNearestOfZeroAndSmallestNormal() {
        var rng = SplitMix64(seed: 11)
        for _ in 0..<20_000 {
            let x = Float(sign: Bool.random(using: &rng) ? .minus : .plus, exponent: Int.random(in: -14...8, using: &rng),
                          significand: Float.random(in: 1..<2, using: &rng))
            let code = FP8E4M3.encodeNormal(x)
            XCTAssertFalse(code & 0x78 == 0 && code & 7 != 0, "encodeNormal(\(x)) = subnormal code 0x\(String(code, radix: 16))")
            XCTAssertEqual(code & 0x80 != 0, x < 0, "sign of encodeNormal(\(x))")
            if abs(x) >= 0x1p-6 {
                XCTAssertEqual(code, FP8E4M3.encode(x), "x = \(x)")
            } else {
                XCTAssertEqual(code & 0x7F, abs(x) > 0x1p-7 ? 0x08 : 0, "x = \(x)")
            }
        }
        XCTAssertEqual(FP8E4M3.encodeNormal(0x1p-7), 0)
        XCTAssertEqual(FP8E4M3.encodeNormal(-(0x1p-7 as Float).nextUp), 0x88)
        XCTAssertEqual(FP8E4M3.encodeNormal(0x1p-6), 0x08)
        XCTAssertEqual(FP8E4M3.encodeNormal(448), 0x7E)
    }
}

/// The scale search's table-free rounding equals decode(encodeNormal(a)) for every magnitude it sees.
final class FP8RoundedMagnitudeTests: XCTestCase {
    func testEqualsDecodeOfEncode() {
        var values: [Float] = [0, 0x1p-10, 0x1p-9, 1.5 * 0x1p-9, 0x1p-7, (0x1p-7 as Float).nextUp, 0x1p-6, 0x1p-6 * 0.999,
                               1, 1.0625, 1.1875, 447, 448]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20000 { values.append(Float.random(in: 0...448, using: &rng)) }
        for _ in 0..<20000 { values.append(Float(sign: .plus, exponent: Int.random(in: -12...8, using: &rng), significand: Float.random(in: 1..<2, using: &rng))) }
        // Halfway cases: exactly between two neighbouring codes.
        for code in 0..<0x7E { values.append((FP8E4M3.decode(UInt8(code)) + FP8E4M3.decode(UInt8(code + 1))) / 2) }
        values = values.filter { $0 <= 448 }
        while values.count % 8 != 0 { values.append(1) }
        for i in stride(from: 0, to: values.count, by: 8) {
            let v = SIMD8<Float>(values[i..<(i + 8)])
            let got = FP8Block.roundedE4M3Magnitude(v)
            for l in 0..<8 {
                XCTAssertEqual(got[l], FP8E4M3.decode(FP8E4M3.encodeNormal(v[l])), "a = \(v[l])")
            }
        }
    }
}

/// The converter's eight-lane encoder gives the scalar ``FP8E4M3/encodeNormal(_:)`` code for
/// every finite value: both signs, ties between neighbouring codes, the edges at 2⁻⁷, 2⁻⁶ and 448,
/// beyond 448 (saturation), and random bit patterns across the whole finite range.
final class FP8VectorEncodeTests: XCTestCase {
    func testEqualsScalarEncodeNormal() {
        var values: [Float] = [0, -0.0, 0x1p-7, (0x1p-7 as Float).nextUp, (0x1p-7 as Float).nextDown, 0x1p-6,
                               (0x1p-6 as Float).nextDown, 448, 448.5, 464, 464.5, 1e30, .greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, 1, 1.0625, 1.1875]
        for code in 0..<0x7E {
            let a = FP8E4M3.decode(UInt8(code)), b = FP8E4M3.decode(UInt8(code + 1))
            values += [a, (a + b) / 2, ((a + b) / 2).nextUp, ((a + b) / 2).nextDown]
        }
        var rng = SplitMix64(seed: 95)
        for _ in 0..<100_000 {
            let v = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            if v.isFinite { values.append(v) }
        }
        for _ in 0..<50_000 { values.append(Float(sign: .plus, exponent: Int.random(in: -12...9, using: &rng), significand: Float.random(in: 1..<2, using: &rng))) }
        values += values.map { -$0 }
        while values.count % 8 != 0 { values.append(1) }
        var mismatches = 0
        for i in stride(from: 0, to: values.count, by: 8) {
            let v = SIMD8<Float>(values[i..<(i + 8)])
            let got = FP8E4M3.encodeNormal(v)
            for l in 0..<8 where got[l] != FP8E4M3.encodeNormal(v[l]) {
                mismatches += 1
                if mismatches <= 5 { XCTFail("x = \(v[l]): 0x\(String(got[l], radix: 16)), scalar 0x\(String(FP8E4M3.encodeNormal(v[l]), radix: 16))") }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }
}
