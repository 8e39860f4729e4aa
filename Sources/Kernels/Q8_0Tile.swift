import CHints

/// The batched Q8_0 product (prompt processing) on 16-bit integers.
///
/// A group of weight rows is first widened into per-thread scratch: per block, the 16
/// even-indexed weights as Int16, the 16 odd-indexed ones, then (after all blocks) the block
/// scales as Float. The tile then multiplies one widened row with four activation vectors in the
/// same layout (``QuantizedActivations``), each pair of 16-bit products summed by one `vpmaddwd`:
/// per vector and block two `vpmaddwd`, one add, the conversion and one fused multiply-add, where
/// the byte kernel needs the sign moves, `vpmaddubsw` and four operations to sum its pairs.
///
/// Lane i of a block's sum is w[4i]·x[4i] + w[4i+2]·x[4i+2] + w[4i+1]·x[4i+1] + w[4i+3]·x[4i+3]:
/// the same integer the one-vector kernel ``q8_0(_:_:_:blocks:)`` puts in lane i, and the scales
/// and accumulators follow it too, so a token's result does not depend on its batch.
///
/// Widening in a separate pass is what lets LLVM see `vpmaddwd`: its pattern needs 16-bit
/// operands that come from memory. Computed in the same loop, the sign extensions of the weight
/// bytes fold into 32-bit ones and the product becomes `vpmulld`.
extension Dot {
    /// Scratch bytes of one widened row of `blocks` blocks (64 per block, and a Float scale).
    @inlinable
    public static func widenedRowBytes(blocks: Int) -> Int { blocks * 68 }

    /// Widens the Q8_0 row at `w` (`blocks` blocks) into `s` (``widenedRowBytes(blocks:)`` bytes,
    /// 32-byte aligned).
    @inlinable
    public static func widenQ8_0(_ w: UnsafeRawPointer, blocks: Int, into s: UnsafeMutableRawPointer) {
        let scales = (s + 64 * blocks).assumingMemoryBound(to: Float.self)
        var b = w
        for k in 0..<blocks {
            // 16-bit lane j holds bytes 2j (low) and 2j+1 (high): shift each to the bottom, signed.
            let v = b.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int16>.self)
            s.storeBytes(of: (v &<< 8) &>> 8, toByteOffset: 64 * k, as: SIMD16<Int16>.self)
            s.storeBytes(of: v &>> 8, toByteOffset: 64 * k + 32, as: SIMD16<Int16>.self)
            scales[k] = Float(b.loadUnaligned(as: Float16.self))
            b += 34
        }
    }

    /// One widened row (``widenQ8_0(_:blocks:into:)``) against four activation vectors in the
    /// 16-bit layout, vector i at `x + i·vectorStride` with its block scales at
    /// `xd + i·vectorStride/32`.
    @inlinable
    public static func q8_0x4(widened ws: UnsafeRawPointer, _ x: UnsafePointer<Int16>, _ xd: UnsafePointer<Float>,
                              vectorStride: Int, blocks: Int) -> SIMD4<Float> {
        // Even blocks into e, odd ones into o, summed as (e + o): the one-vector kernel's order.
        var e0 = SIMD8<Float>(), e1 = SIMD8<Float>(), e2 = SIMD8<Float>(), e3 = SIMD8<Float>()
        var o0 = SIMD8<Float>(), o1 = SIMD8<Float>(), o2 = SIMD8<Float>(), o3 = SIMD8<Float>()
        let scales = (ws + 64 * blocks).assumingMemoryBound(to: Float.self)
        let ds = vectorStride / 32, xs = 2 * vectorStride
        let xr = UnsafeRawPointer(x)
        @inline(__always) func block(_ k: Int, _ a0: inout SIMD8<Float>, _ a1: inout SIMD8<Float>,
                                     _ a2: inout SIMD8<Float>, _ a3: inout SIMD8<Float>) {
            let we = ws.loadUnaligned(fromByteOffset: 64 * k, as: SIMD16<Int16>.self)
            let wo = ws.loadUnaligned(fromByteOffset: 64 * k + 32, as: SIMD16<Int16>.self)
            let xk = xr + 64 * k, dw = scales[k]
            a0.addProduct(blockSum(we, wo, xk), SIMD8(repeating: dw * xd[k]))
            a1.addProduct(blockSum(we, wo, xk + xs), SIMD8(repeating: dw * xd[k + ds]))
            a2.addProduct(blockSum(we, wo, xk + 2 * xs), SIMD8(repeating: dw * xd[k + 2 * ds]))
            a3.addProduct(blockSum(we, wo, xk + 3 * xs), SIMD8(repeating: dw * xd[k + 3 * ds]))
        }
        var k = 0
        while k + 2 <= blocks {
            block(k, &e0, &e1, &e2, &e3)
            block(k + 1, &o0, &o1, &o2, &o3)
            k += 2
        }
        if k < blocks { block(k, &e0, &e1, &e2, &e3) }
        return SIMD4((e0 + o0).sum(), (e1 + o1).sum(), (e2 + o2).sum(), (e3 + o3).sum())
    }

    /// One block: the even and odd weights against the activation block at `x`, as 8 floats.
    /// Each half passes through ``octet_opaque`` before the add: LLVM would otherwise
    /// reassociate the four products and lower two of them to `vpmulld`.
    @inlinable @inline(__always)
    static func blockSum(_ we: SIMD16<Int16>, _ wo: SIMD16<Int16>, _ x: UnsafeRawPointer) -> SIMD8<Float> {
        floats(octet_opaque(multiplyAddPairs(we, x.loadUnaligned(as: SIMD16<Int16>.self)))
               &+ octet_opaque(multiplyAddPairs(wo, x.loadUnaligned(fromByteOffset: 32, as: SIMD16<Int16>.self))))
    }

    /// a[2i]·b[2i] + a[2i+1]·b[2i+1] in 32 bits, for i in 0..<8: the shape LLVM emits as one
    /// `vpmaddwd` (when a and b come straight from memory).
    @inlinable @inline(__always)
    static func multiplyAddPairs(_ a: SIMD16<Int16>, _ b: SIMD16<Int16>) -> SIMD8<Int32> {
        widen(a.evenHalf) &* widen(b.evenHalf) &+ widen(a.oddHalf) &* widen(b.oddHalf)
    }

    @inlinable @inline(__always)
    static func widen(_ v: SIMD8<Int16>) -> SIMD8<Int32> {
        var r = SIMD8<Int32>()
        for i in 0..<8 { r[i] = Int32(v[i]) }
        return r
    }
}
