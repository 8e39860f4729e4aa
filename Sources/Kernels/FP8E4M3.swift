/// OCP FP8 E4M3 (1 sign bit, 4 exponent bits with bias 7, 3 mantissa bits; no infinities; the only
/// NaN encodings are S.1111.111). Largest finite magnitude 448, smallest subnormal 2⁻⁹.
public enum FP8E4M3 {
    public static let maxFinite: Float = 448

    /// Decodes one byte (exact). 0x7F/0xFF decode as NaN; Octet never writes them.
    @inlinable
    public static func decode(_ b: UInt8) -> Float {
        let sign: Float = b & 0x80 != 0 ? -1 : 1
        let e = Int((b >> 3) & 0x0F), m = Float(b & 0x07)
        if e == 15 && b & 0x07 == 7 { return .nan }
        if e == 0 { return sign * m / 8 * 0x1p-6 }
        return sign * (1 + m / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
    }

    /// Encodes with round-to-nearest-even, saturating at ±448; NaN input encodes as 0.
    @inlinable
    public static func encode(_ x: Float) -> UInt8 {
        if x.isNaN { return 0 }
        let sign: UInt8 = x.sign == .minus ? 0x80 : 0
        let a = abs(x)
        if a >= maxFinite { return sign | 0x7E }
        if a < 0x1p-6 {
            // Subnormal range: multiples of 2^-9; 8 × 2^-9 = 2^-6 encodes as the smallest normal.
            let m = UInt8((a * 512).rounded(.toNearestOrEven))
            return sign | m
        }
        // Normal: round the 23-bit mantissa to 3 bits, nearest even; a carry bumps the exponent.
        var bits = a.bitPattern
        bits = bits &+ 0x7FFFF &+ ((bits >> 20) & 1)
        let e = Int(bits >> 23) - 127
        let m = UInt8((bits >> 20) & 7)
        let code = UInt8(e + 7) << 3 | m
        return sign | min(code, 0x7E)
    }

    /// ``encode(_:)`` without subnormals, as Octet's converter writes FP8: magnitudes below 2⁻⁶
    /// round to 0 or 2⁻⁶, whichever is nearer (0 at the midpoint 2⁻⁷). The decode kernel reads
    /// E4M3 bits as f32 bits, where E4M3's subnormals become f32 subnormals, which many CPUs
    /// multiply through a slow microcode assist; the values lost lie below 2⁻⁶ of the block
    /// scale, under 1/28672 of the block's largest magnitude.
    @inlinable
    public static func encodeNormal(_ x: Float) -> UInt8 {
        if abs(x) < 0x1p-6 {
            let sign: UInt8 = x.sign == .minus ? 0x80 : 0
            return abs(x) > 0x1p-7 ? sign | 0x08 : sign
        }
        return encode(x)
    }

    /// ``encodeNormal(_:)`` of eight finite values at once (the converter's path): the magnitude
    /// saturated at 448 and rounded as the scale search scores it
    /// (``FP8Block/roundedE4M3Magnitude(_:)``), whose f32 bits then hold the code: (127 − 7) × 8
    /// subtracted from the exponent-and-mantissa field (2⁻⁶ gives 0x08; 0 stays 0).
    @inlinable @inline(__always)
    public static func encodeNormal(_ x: SIMD8<Float>) -> SIMD8<UInt8> {
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        var magnitude = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD8<Float>.self)
        magnitude = magnitude.replacing(with: maxFinite, where: magnitude .> maxFinite)  // float compares: no integer loop
        let rounded = FP8Block.roundedE4M3Magnitude(magnitude)
        let code = ((unsafeBitCast(rounded, to: SIMD8<UInt32>.self) &>> 20) &- 960)
            .replacing(with: 0, where: rounded .== 0) | (bits &>> 24) & 0x80
        var r = SIMD8<UInt8>()
        for k in 0..<8 { r[k] = UInt8(truncatingIfNeeded: code[k]) }  // element-wise: the generic conversion is a call
        return r
    }

    /// The 256 decoded values, indexed by byte.
    public static let table: [Float] = (0..<256).map { decode(UInt8($0)) }
}
