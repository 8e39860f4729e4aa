import Foundation
import Kernels

/// Test data from the library's deterministic generator.
extension SplitMix64 {
    /// Roughly normal (Box–Muller), scaled.
    mutating func gaussian(_ sigma: Float = 1) -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)) * sigma
    }

    mutating func floats(_ n: Int, sigma: Float = 1) -> [Float] { (0..<n).map { _ in gaussian(sigma) } }
}

/// Encodes `x` as one row of `type` with the library codec (the kernels under test read it back).
func encodeRow(_ x: [Float], as type: TensorType) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: type.rowBytes(x.count)!)
    x.withUnsafeBufferPointer { xp in
        out.withUnsafeMutableBytes { RowCodec.quantize(xp.baseAddress!, count: x.count, as: type, into: $0.baseAddress!) }
    }
    return out
}

func decodeRow(_ bytes: [UInt8], count n: Int, as type: TensorType) -> [Float] {
    var out = [Float](repeating: 0, count: n)
    bytes.withUnsafeBytes { b in
        out.withUnsafeMutableBufferPointer { RowCodec.dequantize(b.baseAddress!, count: n, as: type, into: $0.baseAddress!) }
    }
    return out
}

/// Independent float16 decoder (sign, 5-bit exponent bias 15, 10-bit mantissa), in Double.
func f16Value(_ bits: UInt16) -> Double {
    let sign: Double = bits & 0x8000 != 0 ? -1 : 1
    let e = Int((bits >> 10) & 0x1F), m = Double(bits & 0x3FF)
    if e == 0x1F { return m == 0 ? sign * .infinity : .nan }
    if e == 0 { return sign * m / 1024 * pow(2, -14) }
    return sign * (1 + m / 1024) * pow(2, Double(e - 15))
}
