/// Activation vectors quantized to 8-bit blocks of 32 for Q8_0 integer dot products (as ggml pairs
/// Q8_0 weights with Q8_0 activations): per block a float scale `d = max|x|/127` and the 32 values
/// `round(x/d)` stored as Int16, the 16 even-indexed values first, then the 16 odd-indexed ones,
/// matching how the kernel splits a weight block's bytes into even and odd 16-bit lanes.
public final class QuantizedActivations: @unchecked Sendable {
    public let capacity: Int
    public private(set) var count = 0
    public private(set) var rowLength = 0
    @usableFromInline let q: UnsafeMutablePointer<Int16>
    @usableFromInline let d: UnsafeMutablePointer<Float>

    /// - Parameter capacity: values (vectors × row length) the buffer can hold.
    public init(capacity: Int) {
        self.capacity = capacity
        q = .allocate(capacity: max(capacity, 32))
        d = .allocate(capacity: max(capacity / 32, 1))
    }

    deinit { q.deallocate(); d.deallocate() }

    /// Quantizes `count` vectors of `n` floats (vector t at `x + t*stride`); n must be a multiple of 32.
    public func quantize(_ x: UnsafePointer<Float>, stride: Int, count: Int, rowLength n: Int) {
        precondition(n % 32 == 0 && count * n <= capacity)
        self.count = count
        rowLength = n
        for t in 0..<count {
            let src = x + t * stride
            for b in 0..<(n / 32) {
                let v = src + b * 32
                var amax: Float = 0
                for i in 0..<32 { amax = max(amax, abs(v[i])) }
                let scale = amax / 127
                let inv: Float = scale != 0 ? 1 / scale : 0
                let blk = (t * n / 32) + b
                d[blk] = scale
                let o = q + blk * 32
                for i in 0..<16 {
                    o[i] = Int16((v[2 * i] * inv).rounded(.toNearestOrAwayFromZero))
                    o[16 + i] = Int16((v[2 * i + 1] * inv).rounded(.toNearestOrAwayFromZero))
                }
            }
        }
    }

    /// Block pointer and scales of vector `t`.
    @inlinable @inline(__always)
    func vector(_ t: Int) -> (UnsafePointer<Int16>, UnsafePointer<Float>) {
        (UnsafePointer(q + t * rowLength), UnsafePointer(d + t * rowLength / 32))
    }

    /// The dequantized value i of vector t (for tests).
    public func value(_ t: Int, _ i: Int) -> Float {
        let blk = (t * rowLength + i) / 32, j = i % 32
        return d[blk] * Float(q[blk * 32 + (j % 2 == 0 ? j / 2 : 16 + j / 2)])
    }
}

extension Dot {
    /// Q8_0 row · quantized activations: Σ_blocks d_w·d_x·Σ q_w·q_x. The weight block's 32 bytes
    /// load as 16 little-endian 16-bit lanes; shifts give the sign-extended even and odd bytes,
    /// which multiply the activation's even and odd values in 16-bit lanes (|q_w·q_x| ≤ 127², two of
    /// them add up within Int16), then widen to Int32 and Float for the scaled accumulation.
    @inlinable
    public static func q8_0(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int16>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float {
        // Two blocks per step into two accumulators: the fused multiply-adds of consecutive
        // blocks do not wait for each other.
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var b = w
        var k = 0
        while k + 2 <= blocks {
            let x = UnsafeRawPointer(xq + k * 32)
            let s0 = Float(b.loadUnaligned(as: Float16.self)) * xd[k]
            let s1 = Float(b.loadUnaligned(fromByteOffset: 34, as: Float16.self)) * xd[k + 1]
            acc0.addProduct(q8Block(b, x), SIMD8(repeating: s0))
            acc1.addProduct(q8Block(b + 34, x + 64), SIMD8(repeating: s1))
            b += 68; k += 2
        }
        if k < blocks {
            let s0 = Float(b.loadUnaligned(as: Float16.self)) * xd[k]
            acc0.addProduct(q8Block(b, UnsafeRawPointer(xq + k * 32)), SIMD8(repeating: s0))
        }
        return (acc0 + acc1).sum()
    }

    /// Σ q_w·q_x of one Q8_0 weight block (at `b`, scale first) and one activation block, as 8
    /// float lanes (each the sum of four products).
    @inlinable @inline(__always)
    static func q8Block(_ b: UnsafeRawPointer, _ x: UnsafeRawPointer) -> SIMD8<Float> {
        let v = b.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int16>.self)
        return q8Term((v &<< 8) &>> 8, v &>> 8, x)
    }

    /// Four activation vectors against one Q8_0 row: each weight block is decoded once and used
    /// four times (prompt processing). Same arithmetic per vector as ``q8_0(_:_:_:blocks:)``.
    @inlinable
    public static func q8_0x4(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int16>, _ xd: UnsafePointer<Float>,
                              vectorStride: Int, blocks: Int) -> SIMD4<Float> {
        // Even blocks into the e accumulators, odd ones into the o accumulators, summed as
        // (e + o) at the end: exactly the order of ``q8_0(_:_:_:blocks:)``, so a token's result
        // does not depend on whether it was computed alone or in a group of four.
        var e0 = SIMD8<Float>(), e1 = SIMD8<Float>(), e2 = SIMD8<Float>(), e3 = SIMD8<Float>()
        var o0 = SIMD8<Float>(), o1 = SIMD8<Float>(), o2 = SIMD8<Float>(), o3 = SIMD8<Float>()
        let ds = vectorStride / 32
        var b = w
        for k in 0..<blocks {
            let dw = Float(b.loadUnaligned(as: Float16.self))
            let v = b.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int16>.self)
            let even = (v &<< 8) &>> 8, odd = v &>> 8
            let x = UnsafeRawPointer(xq + k * 32)
            let t0 = q8Term(even, odd, x), t1 = q8Term(even, odd, x + 2 * vectorStride)
            let t2 = q8Term(even, odd, x + 4 * vectorStride), t3 = q8Term(even, odd, x + 6 * vectorStride)
            let s0 = SIMD8(repeating: dw * xd[k]), s1 = SIMD8(repeating: dw * xd[k + ds])
            let s2 = SIMD8(repeating: dw * xd[k + 2 * ds]), s3 = SIMD8(repeating: dw * xd[k + 3 * ds])
            if k & 1 == 0 {
                e0.addProduct(t0, s0); e1.addProduct(t1, s1); e2.addProduct(t2, s2); e3.addProduct(t3, s3)
            } else {
                o0.addProduct(t0, s0); o1.addProduct(t1, s1); o2.addProduct(t2, s2); o3.addProduct(t3, s3)
            }
            b += 34
        }
        return SIMD4((e0 + o0).sum(), (e1 + o1).sum(), (e2 + o2).sum(), (e3 + o3).sum())
    }

    /// Σ of one weight block's products with one activation block, as 8 float lanes.
    @inlinable @inline(__always)
    static func q8Term(_ even: SIMD16<Int16>, _ odd: SIMD16<Int16>, _ x: UnsafeRawPointer) -> SIMD8<Float> {
        let p = even &* x.loadUnaligned(as: SIMD16<Int16>.self) &+ odd &* x.loadUnaligned(fromByteOffset: 32, as: SIMD16<Int16>.self)
        let u = unsafeBitCast(p, to: SIMD8<Int32>.self)
        let pairs = ((u &<< 16) &>> 16) &+ (u &>> 16)
        return exactFloat(pairs)
    }

    /// Int32 → Float for |v| < 2²² without a conversion call: adding v to the bits of 1.5·2²³
    /// gives the float 1.5·2²³ + v exactly; subtracting 1.5·2²³ leaves v.
    @inlinable @inline(__always)
    static func exactFloat(_ v: SIMD8<Int32>) -> SIMD8<Float> {
        unsafeBitCast(v &+ 0x4B40_0000, to: SIMD8<Float>.self) - SIMD8<Float>(repeating: 12_582_912)
    }

    /// Scalar twin of the integer Q8_0 kernel.
    public static func q8_0Reference(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int16>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float {
        var total: Float = 0
        for k in 0..<blocks {
            let blk = w + k * 34
            let dw = HalfPrecision.float(fromF16: UInt16(littleEndian: blk.loadUnaligned(as: UInt16.self)))
            var s: Int32 = 0
            for i in 0..<32 {
                let qw = Int32(blk.load(fromByteOffset: 2 + i, as: Int8.self))
                let qx = Int32(xq[k * 32 + (i % 2 == 0 ? i / 2 : 16 + i / 2)])
                s += qw * qx
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
        precondition(w.type == .q8_0 && xq.rowLength == w.cols)
        typealias Args = (w: WeightMatrix, xq: QuantizedActivations, y: UnsafeMutablePointer<Float>, yStride: Int)
        parallelFor(w.rows, granularity: 16, with: Args(w, xq, y, yStride)) { ctx, lo, hi, _ in
            let (w, xq, y, yStride) = ctx.load(as: Args.self)
            let blocks = w.cols / 32, count = xq.count
            for r in lo..<hi {
                let row = w.row(r)
                var t = 0
                while t + 4 <= count {
                    let (q, d) = xq.vector(t)
                    let v = Dot.q8_0x4(row, q, d, vectorStride: xq.rowLength, blocks: blocks)
                    for i in 0..<4 { y[(t + i) * yStride + r] = v[i] }
                    t += 4
                }
                while t < count {
                    let (q, d) = xq.vector(t)
                    y[t * yStride + r] = Dot.q8_0(row, q, d, blocks: blocks)
                    t += 1
                }
            }
        }
    }
}
