/// Elementwise math on eight floats at once, for the activation functions.
public enum VectorMath {
    /// eˣ for each lane, to within 2 ulp for x in −87…87 (inputs are clamped to that range, so
    /// the result is always finite and never subnormal).
    ///
    /// The usual range reduction: x = n·ln 2 + r with n = round(x / ln 2) and |r| ≤ ln 2 / 2
    /// (ln 2 split in a high part exact in float and a low part, so n·ln 2 loses nothing), eʳ by
    /// its Taylor polynomial to degree 7 (error below 2⁻²⁶ on that interval), then 2ⁿ written
    /// straight into the exponent field.
    @inlinable @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let lo = SIMD8<Float>(repeating: -87), hi = SIMD8<Float>(repeating: 87)
        let v = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
        // n = round(x / ln 2) by the 1.5·2²³ trick: adding it leaves n in the low mantissa bits
        // (round to nearest even), subtracting it gives n as a float. Lane-wise SIMD rounding
        // and Float → Int32 conversions would compile to scalar code here.
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let shifted = v * 1.442_695_04 + magic
        let n = shifted - magic
        var r = v
        r.addProduct(n, SIMD8(repeating: -0.693_145_751_953_125))   // ln 2, high part (exact × n)
        r.addProduct(n, SIMD8(repeating: -1.428_606_765_330_187e-6)) // ln 2 − high part
        var p = SIMD8<Float>(repeating: 1.0 / 5040)
        p = p * r + 1.0 / 720; p = p * r + 1.0 / 120; p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6; p = p * r + 0.5; p = p * r + 1; p = p * r + 1
        // 2ⁿ: n + 127 into the exponent field (|n| ≤ 126: a normal power of two).
        let k = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        return p * unsafeBitCast((k &+ 127) &<< 23, to: SIMD8<Float>.self)
    }

    /// g[i] = silu(g[i]) · u[i] = g / (1 + e^−g) · u for i in `range`: the gated activation of a
    /// Mixtral expert (gate g, up u).
    @inlinable
    public static func gatedSiLU(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ range: Range<Int>) {
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            let x = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
            let up = UnsafeRawPointer(u + i).loadUnaligned(as: SIMD8<Float>.self)
            let y = x / (1 + exp(-x)) * up
            UnsafeMutableRawPointer(g + i).storeBytes(of: y, as: SIMD8<Float>.self)
            i += 8
        }
        while i < range.upperBound {
            var x = SIMD8<Float>(repeating: 0)
            x[0] = g[i]
            g[i] = (x / (1 + exp(-x)))[0] * u[i]
            i += 1
        }
    }
}
