import XCTest
@testable import Kernels

final class HalfPrecisionTests: XCTestCase {
    /// Independent bf16 rounding: pick the nearer of the two bf16 neighbours (exact in Double),
    /// ties to the even bit pattern.
    func referenceBF16(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        let lo = UInt16(u >> 16)
        if u & 0xFFFF == 0 { return lo }
        let hi = lo &+ 1
        let vlo = Double(Float(bitPattern: UInt32(lo) << 16))
        let vhiF = Float(bitPattern: UInt32(hi) << 16)
        // Crossing into the infinity exponent: the "next" value is ±2^128 for rounding purposes.
        let vhi = vhiF.isInfinite ? (x.sign == .minus ? -0x1p128 : 0x1p128) : Double(vhiF)
        let dlo = abs(Double(x) - vlo), dhi = abs(vhi - Double(x))
        if dlo < dhi { return lo }
        if dhi < dlo { return hi }
        return lo & 1 == 0 ? lo : hi
    }

    func testBF16Exhaustive16BitLowHalves() {
        // Every low-half pattern around a few upper halves (including odd/even, the max finite, subnormals).
        for upper: UInt32 in [0x3F80, 0x3F81, 0x0000, 0x0001, 0x8001, 0x7F7E, 0x7F7F, 0xFF7F, 0x4049, 0xC049] {
            for low: UInt32 in stride(from: 0, through: 0xFFFF, by: 1) where low % 97 == 0 || (0x7FFE...0x8002).contains(low) || low == 0xFFFF {
                let x = Float(bitPattern: upper << 16 | low)
                XCTAssertEqual(HalfPrecision.bf16(from: x), referenceBF16(x), "bf16(\(x)) bits \(String(upper << 16 | low, radix: 16))")
            }
        }
    }

    func testBF16RandomAndSpecials() {
        var rng = SplitMix64(seed: 3)
        for _ in 0..<100_000 {
            let x = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
            if x.isNaN {
                XCTAssertTrue(HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: x)).isNaN, "NaN must stay NaN")
                continue
            }
            XCTAssertEqual(HalfPrecision.bf16(from: x), referenceBF16(x), "bf16(\(x))")
        }
        XCTAssertEqual(HalfPrecision.bf16(from: 1.0), 0x3F80)
        XCTAssertEqual(HalfPrecision.bf16(from: Float(bitPattern: 0x3F80_8000)), 0x3F80)  // tie → even (down)
        XCTAssertEqual(HalfPrecision.bf16(from: Float(bitPattern: 0x3F81_8000)), 0x3F82)  // tie → even (up)
        XCTAssertEqual(HalfPrecision.bf16(from: .infinity), 0x7F80)
        XCTAssertEqual(HalfPrecision.bf16(from: -.infinity), 0xFF80)
        XCTAssertEqual(HalfPrecision.bf16(from: .greatestFiniteMagnitude), 0x7F80)  // rounds up to inf
        for nan in [Float.nan, -Float.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFF80_0001)] {
            XCTAssertTrue(HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: nan)).isNaN)
        }
        // Decoding is exact for every pattern.
        for b in stride(from: 0, to: 65536, by: 1) {
            let f = HalfPrecision.float(fromBF16: UInt16(b))
            XCTAssertEqual(f.bitPattern, UInt32(b) << 16)
        }
    }

    /// Sorted non-negative finite f16 values with their bit patterns (0x0000…0x7BFF).
    let f16Ladder: [(bits: UInt16, value: Double)] = (0...0x7BFF).map { (UInt16($0), f16Value(UInt16($0))) }

    func referenceF16(_ x: Float) -> UInt16 {
        let a = Double(abs(x))
        let sign: UInt16 = x.sign == .minus ? 0x8000 : 0
        if x.isInfinite { return sign | 0x7C00 }
        // Beyond the largest finite value: halfway to 2^16 rounds to infinity (ties to even: 0x7C00).
        if a >= 65520 { return sign | 0x7C00 }
        // Binary search the ladder.
        var lo = 0, hi = f16Ladder.count - 1
        if a >= f16Ladder[hi].value { return sign | f16Ladder[hi].bits }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if f16Ladder[mid].value <= a { lo = mid } else { hi = mid }
        }
        let dl = a - f16Ladder[lo].value, dh = f16Ladder[hi].value - a
        if dl < dh { return sign | f16Ladder[lo].bits }
        if dh < dl { return sign | f16Ladder[hi].bits }
        return sign | (f16Ladder[lo].bits & 1 == 0 ? f16Ladder[lo].bits : f16Ladder[hi].bits)
    }

    func testF16DecodeExact() {
        for b in 0..<65536 {
            let v = HalfPrecision.float(fromF16: UInt16(b))
            let r = f16Value(UInt16(b))
            if r.isNaN { XCTAssertTrue(v.isNaN); continue }
            XCTAssertEqual(Double(v), r, "f16 0x\(String(b, radix: 16))")
        }
    }

    func testF16RoundToNearestEven() {
        // Every midpoint between adjacent f16 values, and its neighbours.
        for i in 0..<(f16Ladder.count - 1) where i % 3 == 0 || i < 1100 {
            let a = f16Ladder[i], b = f16Ladder[i + 1]
            let mid = Float((a.value + b.value) / 2)
            XCTAssertEqual(Double(mid), (a.value + b.value) / 2)
            let even = a.bits & 1 == 0 ? a.bits : b.bits
            XCTAssertEqual(HalfPrecision.f16(from: mid), even, "midpoint \(mid)")
            XCTAssertEqual(HalfPrecision.f16(from: -mid), even | 0x8000, "midpoint \(-mid)")
            XCTAssertEqual(HalfPrecision.f16(from: mid.nextDown), a.bits)
            XCTAssertEqual(HalfPrecision.f16(from: mid.nextUp), b.bits)
        }
        var rng = SplitMix64(seed: 5)
        for _ in 0..<50_000 {
            let x = Float(sign: Bool.random(using: &rng) ? .minus : .plus, exponent: Int.random(in: -27...16, using: &rng),
                          significand: Float.random(in: 1..<2, using: &rng))
            XCTAssertEqual(HalfPrecision.f16(from: x), referenceF16(x), "f16(\(x))")
        }
        XCTAssertEqual(HalfPrecision.f16(from: 65504), 0x7BFF)
        XCTAssertEqual(HalfPrecision.f16(from: Float(65520).nextDown), 0x7BFF)
        XCTAssertEqual(HalfPrecision.f16(from: 65520), 0x7C00)
        XCTAssertEqual(HalfPrecision.f16(from: -1e9), 0xFC00)
        XCTAssertEqual(HalfPrecision.f16(from: 0x1p-25), 0x0000)       // half the smallest subnormal → 0 (even)
        XCTAssertEqual(HalfPrecision.f16(from: 3 * 0x1p-25), 0x0002)   // 1.5 × 2^-24 → 2 × 2^-24
        XCTAssertTrue(HalfPrecision.float(fromF16: HalfPrecision.f16(from: .nan)).isNaN)
    }
}
