import CHints

/// Dot products of one stored row with a float32 vector: the inner loop of every matrix-vector
/// product. Each SIMD kernel dequantizes in registers (AVX2/FMA/F16C when built for Haswell) and
/// has a scalar twin, ``reference(_:_:count:type:)``, that the tests compare it against.
public enum Dot {
    /// How far ahead of the row position the Q8_0 and FP8 decode kernels ask for weight bytes
    /// (`prefetcht0`), in bytes. Decoding streams each weight once, and with the hardware
    /// prefetcher alone the kernels wait on memory (same-run A/B on the bench model, Q8_0
    /// decode: 1536 bytes 1.18×, 3072 bytes 1.06× more, 6144 no better; FP8 1.08×). Past the
    /// row's end it reaches the next row, which the same thread usually reads next; a prefetch
    /// never faults.
    public static let prefetchDistance = 3072
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

    /// E4M3 → f16 by moving bits: sign to bit 15, the 7 other bits to bits 7…13. The f16 read that
    /// way is the E4M3 value × 2⁻⁸ (normals and subnormals alike), so the block scale absorbs 2⁸.
    @inlinable @inline(__always)
    static func e4m3s(_ q: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        // Byte into the high half of a 16-bit lane, arithmetic shift right by one (sign to bits 15
        // and 14, the rest to 13…7), clear bit 14: three operations per 8 values.
        let b = SIMD8<Int16>(truncatingIfNeeded: SIMD8<UInt16>(truncatingIfNeeded: q.loadUnaligned(fromByteOffset: i, as: SIMD8<UInt8>.self)))
        let h = ((b &<< 8) &>> 1) & Int16(bitPattern: 0xBF80)
        return SIMD8<Float>(unsafeBitCast(h, to: SIMD8<Float16>.self))
    }

    @inlinable
    static func fp8(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        // Two blocks per step into two accumulators. The 2⁸ the bit move leaves out multiplies
        // the total once (a power of two: exact, the same as scaling every block).
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var b = w
        var i = 0
        while i + 64 <= n {
            octet_prefetch(b + prefetchDistance)
            acc0.addProduct(fp8Block(b, x + i), SIMD8(repeating: Float(b.loadUnaligned(as: Float16.self))))
            acc1.addProduct(fp8Block(b + 34, x + i + 32), SIMD8(repeating: Float(b.loadUnaligned(fromByteOffset: 34, as: Float16.self))))
            b += 68
            i += 64
        }
        if i < n {
            acc0.addProduct(fp8Block(b, x + i), SIMD8(repeating: Float(b.loadUnaligned(as: Float16.self))))
        }
        return (acc0 + acc1).sum() * 256
    }

    /// Σ e4m3 × x over one block's 32 values (unscaled, ×2⁻⁸), as 8 lanes.
    @inlinable @inline(__always)
    static func fp8Block(_ b: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> SIMD8<Float> {
        let (h0, h1) = e4m3x16(b, 2), (h2, h3) = e4m3x16(b, 18)
        var s = h0 * load8(x, 0)
        var t = h1 * load8(x, 8)
        s.addProduct(h2, load8(x, 16))
        t.addProduct(h3, load8(x, 24))
        return s + t
    }

    /// ``e4m3s(_:_:)`` for 16 values at once: the bit moves run on one 256-bit register of 16-bit
    /// lanes (three operations per 16 values instead of per 8), then two `vcvtph2ps`.
    @inlinable @inline(__always)
    static func e4m3x16(_ q: UnsafeRawPointer, _ i: Int) -> (SIMD8<Float>, SIMD8<Float>) {
        let raw = q.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self)
        var b = SIMD16<Int16>()
        for j in 0..<16 { b[j] = Int16(raw[j]) }  // element-wise: the generic conversion is a call
        let h = ((b &<< 8) &>> 1) & Int16(bitPattern: 0xBF80)
        return (SIMD8<Float>(unsafeBitCast(h.lowHalf, to: SIMD8<Float16>.self)),
                SIMD8<Float>(unsafeBitCast(h.highHalf, to: SIMD8<Float16>.self)))
    }
}
