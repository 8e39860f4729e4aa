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

    /// The 256 decoded values, indexed by byte.
    public static let table: [Float] = (0..<256).map { decode(UInt8($0)) }
}
