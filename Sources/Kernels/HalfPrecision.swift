/// Scalar conversions between Float and the 16-bit float formats. These are the reference twins of
/// the SIMD conversions inside the kernels.
public enum HalfPrecision {
    /// bfloat16 bits → Float (exact).
    @inlinable @inline(__always)
    public static func float(fromBF16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Float → bfloat16 bits, round to nearest even; NaN stays NaN.
    @inlinable @inline(__always)
    public static func bf16(from x: Float) -> UInt16 {
        let u = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 0x40) }
        let rounded = u &+ 0x7FFF &+ ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// IEEE binary16 bits → Float (exact).
    @inlinable @inline(__always)
    public static func float(fromF16 bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    /// Float → IEEE binary16 bits, round to nearest even (values beyond ±65504 become ±inf).
    @inlinable @inline(__always)
    public static func f16(from x: Float) -> UInt16 {
        Float16(x).bitPattern
    }
}
