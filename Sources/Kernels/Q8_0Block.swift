/// ggml's Q8_0 block: an f16 scale `d` then 32 signed bytes `q`; value i = d × q[i]. 34 bytes.
///
/// Quantization (as ggml describes it): d = max|x| / 127, q = round(x / d) half away from zero.
public enum Q8_0Block {
    public static let valueCount = 32
    public static let byteCount = 34

    /// Quantizes 32 finite floats into one block at `out` (the converter's path): on eight lanes,
    /// with the activation quantizer's maximum and rounding (``QuantizedActivations``), which
    /// give ggml's results bit for bit (`Q8_0Tests` checks them against a rewrite of its
    /// reference); the scalar form, whose `rounded` is a call per value, took 85 % of a conversion.
    @inlinable
    public static func quantize(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        let v = UnsafeRawPointer(x)
        let v0 = v.loadUnaligned(as: SIMD8<Float>.self), v1 = v.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
        let v2 = v.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self), v3 = v.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
        let m01 = QuantizedActivations.maxMagnitude(v0, v1), m23 = QuantizedActivations.maxMagnitude(v2, v3)
        let amax = QuantizedActivations.maxAcross(m01.replacing(with: m23, where: m23 .> m01))
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        out.storeBytes(of: HalfPrecision.f16(from: d).littleEndian, as: UInt16.self)
        out.storeBytes(of: QuantizedActivations.roundedBytes(v0 * id), toByteOffset: 2, as: SIMD8<Int8>.self)
        out.storeBytes(of: QuantizedActivations.roundedBytes(v1 * id), toByteOffset: 10, as: SIMD8<Int8>.self)
        out.storeBytes(of: QuantizedActivations.roundedBytes(v2 * id), toByteOffset: 18, as: SIMD8<Int8>.self)
        out.storeBytes(of: QuantizedActivations.roundedBytes(v3 * id), toByteOffset: 26, as: SIMD8<Int8>.self)
    }

    /// Writes the block's 32 values to `out`.
    @inlinable
    public static func dequantize(_ block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = HalfPrecision.float(fromF16: UInt16(littleEndian: block.loadUnaligned(as: UInt16.self)))
        let q = (block + 2).assumingMemoryBound(to: Int8.self)
        for i in 0..<32 { out[i] = d * Float(q[i]) }
    }
}

/// Octet's FP8 block (type id 1000): an f16 scale `d` then 32 FP8 E4M3 bytes; value i = d × e4m3(q[i]).
/// Readers accept every E4M3 code; ``quantize(_:into:search:)`` writes no subnormal codes
/// (see ``FP8E4M3/encodeNormal(_:)``).
///
/// The scale is chosen per block to minimise the block's squared error: candidates
/// d = amax/448 × 2^(k/8), k = 0…7 (never below amax/448, so nothing saturates), each rounded to f16
/// as stored, and the best kept.
public enum FP8Block {
    public static let valueCount = 32
    public static let byteCount = 34
    /// How many scale candidates the search tries (1 = plain amax/448).
    public static let scaleCandidates = 8
    /// 2^(k/8) for k = 0…7.
    @usableFromInline static let scaleSteps: [Float] = [1, 1.0905077, 1.1892071, 1.2968396, 1.4142135, 1.5422108, 1.6817929, 1.8340081]

    @inlinable
    public static func quantize(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer, search: Bool = true) {
        var amax: Float = 0
        for i in 0..<32 { amax = max(amax, abs(x[i])) }
        let q = (out + 2).assumingMemoryBound(to: UInt8.self)
        if amax == 0 {
            out.storeBytes(of: UInt16(0), as: UInt16.self)
            for i in 0..<32 { q[i] = 0 }
            return
        }
        var bestD: UInt16 = 0
        var bestErr = Float.infinity
        for k in 0..<(search ? scaleCandidates : 1) {
            var dBits = HalfPrecision.f16(from: amax / FP8E4M3.maxFinite * scaleSteps[k])
            var d = HalfPrecision.float(fromF16: dBits)
            // f16 rounding may land below amax/448; step up one ulp so nothing saturates.
            if d * FP8E4M3.maxFinite < amax { dBits += 1; d = HalfPrecision.float(fromF16: dBits) }
            if !d.isFinite || d == 0 { continue }
            let id = 1 / d
            var acc = SIMD8<Float>()
            for j in 0..<4 {
                let v = UnsafeRawPointer(x + 8 * j).loadUnaligned(as: SIMD8<Float>.self)
                let a = v.replacing(with: -v, where: v .< 0)
                let e = roundedE4M3Magnitude(a * id) * d - a
                acc.addProduct(e, e)
            }
            let err = acc.sum()
            if err < bestErr { bestErr = err; bestD = dBits }
        }
        let d = HalfPrecision.float(fromF16: bestD)
        let id: Float = d != 0 ? 1 / d : 0
        out.storeBytes(of: bestD.littleEndian, as: UInt16.self)
        for j in 0..<4 {
            let v = UnsafeRawPointer(x + 8 * j).loadUnaligned(as: SIMD8<Float>.self)
            (out + 2 + 8 * j).storeBytes(of: FP8E4M3.encodeNormal(v * id), as: SIMD8<UInt8>.self)
        }
    }

    /// decode(encodeNormal(a)) for magnitudes 0 ≤ a ≤ 448, eight at a time, without the table:
    /// the float's mantissa rounded to 3 bits (nearest even; a carry moves into the exponent), or
    /// 0 or 2⁻⁶ below 2⁻⁶. What the scale search scores candidates with.
    @inlinable @inline(__always)
    static func roundedE4M3Magnitude(_ a: SIMD8<Float>) -> SIMD8<Float> {
        let bits = unsafeBitCast(a, to: SIMD8<UInt32>.self)
        let rounded = (bits &+ 0x7FFFF &+ ((bits &>> 20) & 1)) & 0xFFF0_0000
        let normal = unsafeBitCast(rounded, to: SIMD8<Float>.self)
        let small = SIMD8<Float>(repeating: 0x1p-6).replacing(with: 0, where: a .<= 0x1p-7)
        return normal.replacing(with: small, where: a .< 0x1p-6)
    }
    @inlinable
    public static func dequantize(_ block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = HalfPrecision.float(fromF16: UInt16(littleEndian: block.loadUnaligned(as: UInt16.self)))
        let q = (block + 2).assumingMemoryBound(to: UInt8.self)
        for i in 0..<32 { out[i] = d * FP8E4M3.decode(q[i]) }
    }
}
