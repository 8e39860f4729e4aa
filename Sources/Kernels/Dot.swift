import CHints
import Q8_0Kernels
import AVX512Kernels

/// Dot products of one stored row with a float32 vector: the inner loop of every matrix-vector
/// product. Each SIMD kernel dequantizes in registers (AVX2/FMA/F16C when built for Haswell) and
/// has a scalar twin, ``reference(_:_:count:type:)``, that the tests compare it against.
public enum Dot {
    /// How far ahead of the row position the FP8 decode kernel asks for weight bytes
    /// (`prefetcht0`), in bytes: the Q8_0 kernels' distance (``Q8_0Product/prefetchDistance``),
    /// which gave FP8 decode 1.08× over the hardware prefetcher alone. A prefetch never faults.
    public static var prefetchDistance: Int { Q8_0Product<AVX2BlockProducts>.prefetchDistance }
    /// (f16/bf16 decoding reads four rows at once and prefetches the next four instead, see
    /// ``floatRows4(_:rowBytes:_:count:type:)``.)

    /// `row` (n values of `type`) · `x` (n floats). `n` must be a multiple of 32 for the fast path
    /// of every type; other lengths fall back to the scalar twin.
    @inlinable
    public static func dot(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, count n: Int, type: TensorType) -> Float {
        if n & 31 != 0 { return reference(row, x, count: n, type: type) }
        switch type {
        case .f32: return f32(row.assumingMemoryBound(to: Float.self), x, n)
        case .f16: return f16(row, x, n)
        case .bf16: return bf16(row, x, n)
        case .q8_0: return q8_0(row, x, n)
        case .fp8_e4m3: return fp8(row, x, n)
        }
    }

    /// Scalar twin: dequantize each value, multiply-add in Float, in order.
    public static func reference(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, count n: Int, type: TensorType) -> Float {
        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        defer { tmp.deallocate() }
        RowCodec.dequantize(row, count: n, as: type, into: tmp)
        var s: Float = 0
        for i in 0..<n { s += tmp[i] * x[i] }
        return s
    }

    /// Eight floats at `x + i`.
    @inlinable @inline(__always)
    public static func load8(_ x: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// One float-type row · x with a single accumulator: groups of 8 in order, then the lane
    /// sum. Every float kernel (four rows at once, two rows × four vectors) keeps this order per
    /// (row, vector), so a token's result does not depend on its batch or on which rows share
    /// a kernel call. Alone it waits on the accumulator; the matrix products use it only for
    /// leftover rows.
    @inlinable @inline(__always)
    static func floatRow(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int,
                         _ weights: (UnsafeRawPointer, Int) -> SIMD8<Float>) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        while i < n {
            acc.addProduct(weights(w, i), load8(x, i))
            i += 8
        }
        return acc.sum()
    }

    @inlinable
    static func f32(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        floatRow(UnsafeRawPointer(w), x, n) { $0.loadUnaligned(fromByteOffset: 4 * $1, as: SIMD8<Float>.self) }
    }

    /// Eight f16 at `w + 2i` as floats (`vcvtph2ps`), element-wise: the generic SIMD conversion
    /// stays a call when a loop has more than one conversion site.
    @inlinable @inline(__always)
    public static func halfs(_ w: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        let h = w.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)
        var r = SIMD8<Float>()
        for j in 0..<8 { r[j] = Float(h[j]) }
        return r
    }

    @inlinable
    static func f16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        floatRow(w, x, n) { halfs($0, $1) }
    }

    @inlinable @inline(__always)
    static func brains(_ w: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        let h = w.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self)
        var r = SIMD8<UInt32>()
        for j in 0..<8 { r[j] = UInt32(h[j]) &<< 16 }  // element-wise, as in halfs
        return unsafeBitCast(r, to: SIMD8<Float>.self)
    }

    @inlinable
    static func bf16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        floatRow(w, x, n) { brains($0, $1) }
    }

    @inlinable @inline(__always)
    static func int8s(_ q: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: q.loadUnaligned(fromByteOffset: i, as: SIMD8<Int8>.self)))
    }

    @inlinable
    static func q8_0(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var b = w
        var i = 0
        while i < n {
            let d = Float(b.loadUnaligned(as: Float16.self))
            var s = int8s(b, 2) * load8(x, i)
            s.addProduct(int8s(b, 10), load8(x, i + 8))
            s.addProduct(int8s(b, 18), load8(x, i + 16))
            s.addProduct(int8s(b, 26), load8(x, i + 24))
            acc.addProduct(s, SIMD8(repeating: d))
            b += 34
            i += 32
        }
        return acc.sum()
    }

    /// The factor ``fp8(_:scaledX:_:)`` takes its activations multiplied by (see
    /// ``e4m3Bits(_:_:)``).
    public static let fp8ActivationScale: Float = 0x1p96

    @inlinable
    static func fp8(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        if CPUFeatures.usesAVX512 { return AVX512Products.fp8(w, x, count: n, scaled: false) }
        return fp8(w, x, n) { $0 * SIMD8(repeating: fp8ActivationScale) }
    }

    /// `row` · x for FP8 weights, given x × ``fp8ActivationScale`` (`scaledX`, n floats): the
    /// decode path scales the activations once per product instead of once per row.
    @inlinable
    public static func fp8(_ w: UnsafeRawPointer, scaledX x: UnsafePointer<Float>, _ n: Int) -> Float {
        if CPUFeatures.usesAVX512 { return AVX512Products.fp8(w, x, count: n, scaled: true) }
        return fp8(w, x, n) { $0 }
    }

    /// The FP8 summation order, on every route: each block's 32 products form two 8-lane
    /// partial sums, S over weights 0…7 and 16…23 and T over 8…15 and 24…31 (a multiply, then
    /// a multiply-add); the block scale multiplies each into its own accumulator, one pair for
    /// the whole row; the result is `(accS + accT).sum()`. (On AVX-512 one 16-lane register holds
    /// S beside T, so the block needs no cross-lane add.) The weights come as e4m3 × 2⁻¹²⁰ (see
    /// ``e4m3Bits(_:_:)``) and the activations × 2⁹⁶ (by `scale`), so every product is
    /// e4m3 × x × 2⁻²⁴, and the total is multiplied back by 2²⁴ once. Powers of two: exact (the
    /// same result as unscaled arithmetic) for activations below 2³² in magnitude. The prompt
    /// tile ``fp8x4(_:_:xStride:count:)`` keeps this order per vector.
    @inlinable @inline(__always)
    static func fp8(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int,
                    _ scale: (SIMD8<Float>) -> SIMD8<Float>) -> Float {
        var accS = SIMD8<Float>(), accT = SIMD8<Float>()
        var b = w
        var i = 0
        @inline(__always) func block(_ b: UnsafeRawPointer, _ x: UnsafePointer<Float>) {
            var s = e4m3Bits(b, 2) * scale(load8(x, 0)), t = e4m3Bits(b, 10) * scale(load8(x, 8))
            s.addProduct(e4m3Bits(b, 18), scale(load8(x, 16)))
            t.addProduct(e4m3Bits(b, 26), scale(load8(x, 24)))
            let d = SIMD8<Float>(repeating: Float(b.loadUnaligned(as: Float16.self)))
            accS.addProduct(s, d)
            accT.addProduct(t, d)
        }
        while i + 64 <= n {
            octet_prefetch(b + prefetchDistance)  // one per block, as the Q8_0 kernels
            block(b, x + i)
            octet_prefetch(b + 34 + prefetchDistance)
            block(b + 34, x + i + 32)
            b += 68
            i += 64
        }
        if i < n { block(b, x + i) }
        return (accS + accT).sum() * 0x1p24
    }

    /// E4M3 → f32 bits: the sign-extended byte shifted left by 20 puts the 4 exponent and 3
    /// mantissa bits at the bottom of f32's exponent field and the top of its mantissa; clearing
    /// bits 27…30 (copies of the sign) leaves the sign at bit 31. Read as f32, that is the E4M3
    /// value × 2⁻¹²⁰ for every code: normals become f32 normals, E4M3's subnormals f32
    /// subnormals. The converter writes no E4M3 subnormals (see ``FP8E4M3/encodeNormal(_:)``): many CPUs
    /// multiply subnormal floats through a slow microcode assist. Three operations per 8 values
    /// (`vpmovsxbd`, `vpslld`, `vpand`), where the f16 route needs four and a `vcvtph2ps`.
    @inlinable @inline(__always)
    static func e4m3Bits(_ q: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        let raw = q.loadUnaligned(fromByteOffset: i, as: SIMD8<Int8>.self)
        var b = SIMD8<Int32>()
        for j in 0..<8 { b[j] = Int32(raw[j]) }  // element-wise: the generic conversion is a call
        return unsafeBitCast((b &<< 20) & Int32(bitPattern: 0x87FF_FFFF), to: SIMD8<Float>.self)
    }

    /// One FP8 row against four activation vectors (x_i at `x + i*xStride`, unscaled): the
    /// prompt tile. Each block's weights are converted once, to their exact values (the f32 bits
    /// × 2¹²⁰), and serve the four vectors. Per vector the sums run in ``fp8(_:_:_:_:)``'s order
    /// (an S and a T accumulator) on values 2²⁴ times larger, so each result is bit for bit the
    /// one-vector kernel's. `n` must be a multiple of 32.
    @inlinable
    public static func fp8x4(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, xStride: Int, count n: Int) -> SIMD4<Float> {
        if CPUFeatures.usesAVX512 { return AVX512Products.fp8x4(w, x, xStride: xStride, count: n) }
        var s = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
        var t = s
        var b = w
        var i = 0
        while i < n {
            fp8x4Block(b, x + i, xStride, &s, &t)
            b += 34
            i += 32
        }
        return SIMD4((s.0 + t.0).sum(), (s.1 + t.1).sum(), (s.2 + t.2).sum(), (s.3 + t.3).sum())
    }

    /// One block of ``fp8x4(_:_:xStride:count:)``: for each of the four vectors,
    /// accS += d × S and accT += d × T (see ``fp8(_:_:_:_:)``).
    @inlinable @inline(__always)
    static func fp8x4Block(_ b: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xStride: Int,
                           _ accS: inout (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>),
                           _ accT: inout (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)) {
        let h0 = e4m3Exact(b, 2), h1 = e4m3Exact(b, 10), h2 = e4m3Exact(b, 18), h3 = e4m3Exact(b, 26)
        let d = SIMD8<Float>(repeating: Float(b.loadUnaligned(as: Float16.self)))
        @inline(__always) func add(_ x: UnsafePointer<Float>, _ accS: inout SIMD8<Float>, _ accT: inout SIMD8<Float>) {
            var s = h0 * load8(x, 0), t = h1 * load8(x, 8)
            s.addProduct(h2, load8(x, 16)); t.addProduct(h3, load8(x, 24))
            accS.addProduct(s, d); accT.addProduct(t, d)
        }
        add(x, &accS.0, &accT.0)
        add(x + xStride, &accS.1, &accT.1)
        add(x + 2 * xStride, &accS.2, &accT.2)
        add(x + 3 * xStride, &accS.3, &accT.3)
    }

    /// Eight E4M3 values at byte offset `i`, exact: ``e4m3Bits(_:_:)`` × 2¹²⁰, through
    /// ``octet_opaque``: where one block's weights serve four vectors, LLVM's vectorizer would
    /// otherwise take the lanes apart and rebuild them per vector (scalar multiplies, blends).
    @inlinable @inline(__always)
    static func e4m3Exact(_ q: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        let v = e4m3Bits(q, i) * SIMD8<Float>(repeating: 0x1p120)
        return unsafeBitCast(octet_opaque(unsafeBitCast(v, to: SIMD8<Int32>.self)), to: SIMD8<Float>.self)
    }
}
