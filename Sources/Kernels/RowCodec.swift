/// Whole-row quantize / dequantize for every ``TensorType`` (used by the converter, by embedding
/// lookups and as the reference the SIMD kernels are tested against).
public enum RowCodec {
    /// Encodes `n` floats as one row of `type` at `out` (`type.rowBytes(n)` bytes).
    /// - Precondition: `n` is a multiple of `type.blockSize`.
    public static func quantize(_ x: UnsafePointer<Float>, count n: Int, as type: TensorType, into out: UnsafeMutableRawPointer) {
        switch type {
        case .f32:
            out.copyMemory(from: x, byteCount: n * 4)
        case .f16:
            let o = out.assumingMemoryBound(to: UInt16.self)
            for i in 0..<n { o[i] = HalfPrecision.f16(from: x[i]).littleEndian }
        case .bf16:
            let o = out.assumingMemoryBound(to: UInt16.self)
            for i in 0..<n { o[i] = HalfPrecision.bf16(from: x[i]).littleEndian }
        case .q8_0:
            for b in 0..<(n / 32) { Q8_0Block.quantize(x + b * 32, into: out + b * Q8_0Block.byteCount) }
        case .fp8_e4m3:
            for b in 0..<(n / 32) { FP8Block.quantize(x + b * 32, into: out + b * FP8Block.byteCount) }
        }
    }

    /// The index of the first NaN or infinity among `n` floats at `x`, or nil when all are finite.
    public static func firstNonFinite(_ x: UnsafePointer<Float>, count n: Int) -> Int? {
        let exponent = SIMD8<UInt32>(repeating: 0x7F80_0000)
        var i = 0
        while i + 8 <= n {
            let bits = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<UInt32>.self)
            if any(bits & exponent .== exponent) { break }
            i += 8
        }
        while i < n {
            if !x[i].isFinite { return i }
            i += 1
        }
        return nil
    }

    /// Decodes one row of `n` values of `type` at `row` into `out`.
    public static func dequantize(_ row: UnsafeRawPointer, count n: Int, as type: TensorType, into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: row, byteCount: n * 4)
        case .f16:
            for i in 0..<n { out[i] = HalfPrecision.float(fromF16: UInt16(littleEndian: row.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16:
            for i in 0..<n { out[i] = HalfPrecision.float(fromBF16: UInt16(littleEndian: row.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .q8_0:
            for b in 0..<(n / 32) { Q8_0Block.dequantize(row + b * Q8_0Block.byteCount, into: out + b * 32) }
        case .fp8_e4m3:
            for b in 0..<(n / 32) { FP8Block.dequantize(row + b * FP8Block.byteCount, into: out + b * 32) }
        }
    }
}
