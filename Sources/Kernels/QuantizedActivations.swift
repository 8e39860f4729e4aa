import CHints
import Q8_0Kernels
import _Builtin_intrinsics.intel

/// Activation vectors quantized to 8-bit blocks of 32 for Q8_0 integer dot products (as ggml pairs
/// Q8_0 weights with Q8_0 activations): per block a float scale `d = max|x|/127` and the 32 values
/// `round(x/d)` as Int8 in their natural order (|q| ≤ 127, so negating one never overflows).
public final class QuantizedActivations: @unchecked Sendable {
    public let capacity: Int
    public private(set) var count = 0
    public private(set) var rowLength = 0
    @usableFromInline let q: UnsafeMutablePointer<Int8>
    @usableFromInline let d: UnsafeMutablePointer<Float>

    /// - Parameter capacity: values (vectors × row length) the buffer can hold.
    public init(capacity: Int) {
        self.capacity = capacity
        q = .allocate(capacity: max(capacity, 32))
        d = .allocate(capacity: max(capacity / 32, 1))
    }

    deinit { q.deallocate(); d.deallocate() }

    /// Quantizes `count` vectors of `n` floats (vector t at `x + t*stride`); n must be a multiple
    /// of 32. With a `pool`, eight or more vectors are split across its threads (prompt
    /// processing; a single vector is too little work to wake anyone).
    public func quantize(_ x: UnsafePointer<Float>, stride: Int, count: Int, rowLength n: Int, pool: WorkerPool? = nil) {
        precondition(n % 32 == 0 && count * n <= capacity)
        self.count = count
        rowLength = n
        guard let pool, count >= 8 else {
            quantize(x, stride: stride, vectors: 0..<count)
            return
        }
        pool.parallelFor(count, with: (self, x, stride)) { context, lo, hi, _ in
            let (me, x, stride) = context.load(as: (QuantizedActivations, UnsafePointer<Float>, Int).self)
            me.quantize(x, stride: stride, vectors: lo..<hi)
        }
    }

    /// Sets the shape, `count` vectors of `n` values (n a multiple of 32), for filling the buffer
    /// piece by piece with ``quantize(vector:blocks:from:)``, e.g. by the threads that produce the
    /// values.
    public func prepare(count: Int, rowLength n: Int) {
        precondition(n % 32 == 0 && count * n <= capacity)
        self.count = count
        rowLength = n
    }

    /// Quantizes blocks `blocks` (32 values each) of vector `t` from `x`, the start of that
    /// vector's floats. The shape comes from ``prepare(count:rowLength:)``.
    public func quantize(vector t: Int, blocks: Range<Int>, from x: UnsafePointer<Float>) {
        precondition(t >= 0 && t < count && blocks.lowerBound >= 0 && blocks.upperBound <= rowLength / 32)
        for b in blocks {
            let v = UnsafeRawPointer(x + b * 32)
            let v0 = v.loadUnaligned(as: SIMD8<Float>.self), v1 = v.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
            let v2 = v.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self), v3 = v.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
            let m01 = QuantizedActivations.maxMagnitude(v0, v1), m23 = QuantizedActivations.maxMagnitude(v2, v3)
            let amax = QuantizedActivations.maxAcross(m01.replacing(with: m23, where: m23 .> m01))
            let scale = amax / 127
            let inv: Float = scale != 0 ? 1 / scale : 0
            let blk = (t * rowLength / 32) + b
            d[blk] = scale
            let o = q + blk * 32
            let ob = UnsafeMutableRawPointer(o)
            ob.storeBytes(of: QuantizedActivations.roundedBytes(v0 * inv), as: SIMD8<Int8>.self)
            ob.storeBytes(of: QuantizedActivations.roundedBytes(v1 * inv), toByteOffset: 8, as: SIMD8<Int8>.self)
            ob.storeBytes(of: QuantizedActivations.roundedBytes(v2 * inv), toByteOffset: 16, as: SIMD8<Int8>.self)
            ob.storeBytes(of: QuantizedActivations.roundedBytes(v3 * inv), toByteOffset: 24, as: SIMD8<Int8>.self)
        }
    }

    /// max(|a|, |b|) lane by lane (the sign bits cleared, then a compare and a blend).
    @inlinable @inline(__always)
    static func maxMagnitude(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        let mask = SIMD8<UInt32>(repeating: 0x7FFF_FFFF)
        let x = unsafeBitCast(unsafeBitCast(a, to: SIMD8<UInt32>.self) & mask, to: SIMD8<Float>.self)
        let y = unsafeBitCast(unsafeBitCast(b, to: SIMD8<UInt32>.self) & mask, to: SIMD8<Float>.self)
        return x.replacing(with: y, where: y .> x)
    }

    /// The largest lane, by halves (`SIMD.max()` stays a call).
    @inlinable @inline(__always)
    static func maxAcross(_ m: SIMD8<Float>) -> Float {
        var a = m.lowHalf
        let b = m.highHalf
        a = a.replacing(with: b, where: b .> a)
        let c = SIMD4(lowHalf: a.highHalf, highHalf: a.lowHalf)
        a = a.replacing(with: c, where: c .> a)
        return max(a[0], a[1])
    }

    /// Each lane (|y| ≤ 127.5) rounded to the nearest integer, halves away from zero, as bytes:
    /// what `Int8(y.rounded(.toNearestOrAwayFromZero))` gives, without the scalar conversion and
    /// its overflow checks. Adding 1.5·2²³ rounds to nearest even and leaves the integer in the
    /// low mantissa bits; a tie that went toward zero (y − n = ±0.5 with the sign of y) then
    /// moves one step out.
    @inlinable @inline(__always)
    static func roundedBytes(_ y: SIMD8<Float>) -> SIMD8<Int8> {
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let shifted = y + magic
        let n = shifted - magic
        let diff = y - n
        var i = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let up = (diff .== 0.5) .& (y .> 0), down = (diff .== -0.5) .& (y .< 0)
        i = i.replacing(with: i &+ 1, where: up).replacing(with: i &- 1, where: down)
        var r = SIMD8<Int8>()
        for k in 0..<8 { r[k] = Int8(truncatingIfNeeded: i[k]) }
        return r
    }

    private func quantize(_ x: UnsafePointer<Float>, stride: Int, vectors: Range<Int>) {
        for t in vectors { quantize(vector: t, blocks: 0..<(rowLength / 32), from: x + t * stride) }
    }

    /// Block values and scales of vector `t`.
    @inlinable @inline(__always)
    func vector(_ t: Int) -> (UnsafePointer<Int8>, UnsafePointer<Float>) {
        (UnsafePointer(q + t * rowLength), UnsafePointer(d + t * rowLength / 32))
    }

    /// The dequantized value i of vector t (for tests).
    public func value(_ t: Int, _ i: Int) -> Float {
        d[(t * rowLength + i) / 32] * Float(q[t * rowLength + i])
    }
}

extension Dot {
    /// Q8_0 row · quantized activations: Σ_blocks d_w·d_x·Σ q_w·q_x, on AVX2 (see
    /// ``Q8_0Product`` for the order of the sums, which ``Q8_0VNNI`` shares bit for bit).
    @inlinable
    public static func q8_0(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float {
        Q8_0Product<AVX2BlockProducts>.dot(w, xq, xd, blocks: blocks)
    }
}

/// A Q8_0 block's products on AVX2: `vpmaddubsw` multiplies the unsigned magnitudes by the signed
/// bytes and adds adjacent pairs in 16 bits (|pair| ≤ 2·128·127 < 2¹⁵, so its saturation never
/// acts), `vpmaddwd` by ones adds adjacent pairs of those into Int32 lanes.
public enum AVX2BlockProducts: Q8_0BlockProducts {
    @inlinable @inline(__always)
    public static func products(_ m: __m256i, _ s: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(m, s), _mm256_set1_epi16(1)))
    }
}

extension Dot {
    /// Scalar twin of the integer Q8_0 kernel.
    public static func q8_0Reference(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float {
        var total: Float = 0
        for k in 0..<blocks {
            let blk = w + k * 34
            let dw = HalfPrecision.float(fromF16: UInt16(littleEndian: blk.loadUnaligned(as: UInt16.self)))
            var s: Int32 = 0
            for i in 0..<32 {
                s += Int32(blk.load(fromByteOffset: 2 + i, as: Int8.self)) * Int32(xq[k * 32 + i])
            }
            total += dw * xd[k] * Float(s)
        }
        return total
    }
}

extension WorkerPool {
    /// Y = W·X for a Q8_0 matrix and activations already quantized (`xq` holds `count` vectors),
    /// split across the workers by rows; y_t at `y + t*yStride`.
    public func matMul(_ w: WeightMatrix, _ xq: QuantizedActivations, _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        var task = LinearTask(w, xq, y, yStride: yStride)
        withUnsafePointer(to: &task) { run(UnsafeBufferPointer(start: $0, count: 1)) }
    }
}
