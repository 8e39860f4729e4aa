import _Builtin_intrinsics.intel
import CHints

// x86-64 only, as the whole package (its hot modules are built for Haswell).

/// How one Q8_0 block's 32 integer products are summed: `m` the weights' magnitudes |q_w| as
/// unsigned bytes (≤ 128), `s` the activations carrying the weights' signs (|s| ≤ 127); lane i of
/// the result is Σ m[j]·s[j] over j = 4i…4i+3, as a float (exact: |lane| < 2¹⁶).
///
/// Two instruction sets fill it in: AVX2 (`vpmaddubsw`, then `vpmaddwd` by ones; in `Kernels`) and
/// AVX-VNNI (one `vpdpbusd`; ``Q8_0VNNI``). Both give the same integers, so the same bits.
public protocol Q8_0BlockProducts {
    static func products(_ m: __m256i, _ s: __m256i) -> __m256

    /// ``Q8_0Product/dot(_:_:_:blocks:)``; by default ``Q8_0Product/rowDot(_:_:_:blocks:)``.
    static func dot(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float

    /// One row against four vectors (see ``Q8_0Product/rowTile4(_:_:_:_:_:)``, the default). A wider
    /// instruction set may do it otherwise, with the same bits.
    static func tile4(_ w: UnsafeRawPointer, _ x: UnsafeRawPointer, _ xStride: Int, _ s: UnsafePointer<Float>,
                      _ blocks: Int) -> SIMD4<Float>
}

extension Q8_0BlockProducts {
    @inlinable @inline(__always)
    public static func dot(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float {
        Q8_0Product<Self>.rowDot(w, xq, xd, blocks: blocks)
    }

    @inlinable @inline(__always)
    public static func tile4(_ w: UnsafeRawPointer, _ x: UnsafeRawPointer, _ xStride: Int, _ s: UnsafePointer<Float>,
                             _ blocks: Int) -> SIMD4<Float> {
        Q8_0Product<Self>.rowTile4(w, x, xStride, s, blocks)
    }
}

/// The Q8_0 integer products — Q8_0 weight rows against activations quantized to 8-bit blocks
/// (`QuantizedActivations` in `Kernels`) — written once, for either ``Q8_0BlockProducts``.
///
/// Per block: the weights' magnitudes (`vpsignb` of the bytes by themselves) times the
/// activations carrying their signs (`vpsignb`), summed by `P`, converted to floats and
/// multiplied into an accumulator by d_w·d_x (one float product per block, in all lanes). Even
/// blocks go into one accumulator and odd blocks into another, which are added and summed across
/// lanes at the end. Tiles of four vectors keep this order per vector, so a token's result does not
/// depend on its batch.
///
/// Everything is inlinable and generic: each caller's module compiles it for its own instruction
/// set (`Kernels` for Haswell, this module's ``Q8_0VNNI`` for AVX-VNNI).
public enum Q8_0Product<P: Q8_0BlockProducts> {
    /// How far ahead of the row position the one-vector kernel prefetches (`prefetcht0`), in
    /// bytes: decoding streams each weight once, and with the hardware prefetcher alone the
    /// kernel waits on memory (Q8_0 decode 1.18× at 1536 bytes, 1.06× more at 3072, same-run;
    /// on the Zen 5 machine of 2026-12-07, 6144 against 3072: Q8_0 decode 1.04× on 2 threads and
    /// 1.08× on 1, FP8 1.07×). Past the row's end it reaches the next row, which the same thread usually reads next.
    public static var prefetchDistance: Int { 6144 }

    /// Q8_0 row (`blocks` blocks of 34 bytes at `w`) · one quantized vector (`blocks` × 32 values at
    /// `xq`, their block scales at `xd`).
    @inlinable @inline(__always)
    public static func dot(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float {
        P.dot(w, xq, xd, blocks: blocks)
    }

    /// ``dot(_:_:_:blocks:)`` on 8 lanes: the order every route keeps.
    @inlinable @inline(__always)
    public static func rowDot(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps()
        var x = UnsafeRawPointer(xq), d = xd
        var b = w
        let end = w + 34 * blocks
        // One prefetch per block: one per two (68 bytes) leaves every seventeenth line to the
        // hardware and measured slower on one thread.
        while b + 68 <= end {
            octet_prefetch(b + prefetchDistance)
            acc0 = _mm256_fmadd_ps(products(b, x), scale(b, d[0]), acc0)
            octet_prefetch(b + 34 + prefetchDistance)
            acc1 = _mm256_fmadd_ps(products(b + 34, x + 32), scale(b + 34, d[1]), acc1)
            b += 68
            x += 64
            d += 2
        }
        if b < end { acc0 = _mm256_fmadd_ps(products(b, x), scale(b, d[0]), acc0) }
        return sum(acc0, acc1)
    }

    /// y_t[r] = row r · x_t for rows `rows` (row r at `w + r·rowBytes`, `blocks` blocks) and
    /// `count` quantized vectors (vector t at `xq + t·xStride`, its scales at `xd + t·xStride/32`),
    /// y_t[r] at `y + t·yStride + r`. Tiles of four vectors share each weight load; the rest go
    /// one by one. `scratch` (`scratchBytes` bytes, 32-byte aligned) holds the rows' scales as
    /// floats and each tile's scale products: the tiles need ``scratchBytes(rows:blocks:)``
    /// bytes, and with less every vector goes one by one.
    @inlinable @inline(__always)
    public static func product(_ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int,
                               _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, xStride: Int, count: Int,
                               _ y: UnsafeMutablePointer<Float>, yStride: Int,
                               scratch: UnsafeMutableRawPointer, scratchBytes available: Int) {
        var t = 0
        if count >= 4 && scratchBytes(rows: rows.count, blocks: blocks) <= available {
            let dw = scratch.assumingMemoryBound(to: Float.self)
            let s = dw + rows.count * blocks
            for (i, r) in rows.enumerated() {
                let row = w + r * rowBytes
                for k in 0..<blocks { dw[i * blocks + k] = Float(row.loadUnaligned(fromByteOffset: 34 * k, as: Float16.self)) }
            }
            let ds = xStride / 32
            while t + 4 <= count {
                for (i, r) in rows.enumerated() {
                    scaleProducts(dw + i * blocks, xd + t * ds, ds, blocks, into: s)
                    let v = P.tile4(w + r * rowBytes, UnsafeRawPointer(xq + t * xStride), xStride, s, blocks)
                    for j in 0..<4 { y[(t + j) * yStride + r] = v[j] }
                }
                t += 4
            }
        }
        for r in rows {
            for u in t..<count {
                y[u * yStride + r] = dot(w + r * rowBytes, xq + u * xStride, xd + u * xStride / 32, blocks: blocks)
            }
        }
    }

    /// Scratch bytes the tiles of ``product(_:rowBytes:rows:blocks:_:_:xStride:count:_:yStride:scratch:scratchBytes:)`` need.
    @inlinable
    public static func scratchBytes(rows: Int, blocks: Int) -> Int { 4 * (rows + 4) * blocks }

    /// The most rows whose tiles fit `scratchBytes` (0 when not even one row's do).
    @inlinable
    public static func tileRows(scratchBytes: Int, blocks: Int) -> Int { max(0, scratchBytes / (4 * blocks) - 4) }

    /// s[t·blocks + k] = d_w[k] × d_x_t[k] for a tile's four vectors (scales `ds` apart).
    @inlinable @inline(__always)
    static func scaleProducts(_ dw: UnsafePointer<Float>, _ xd: UnsafePointer<Float>, _ ds: Int, _ blocks: Int,
                              into s: UnsafeMutablePointer<Float>) {
        // The four vectors at once per eight blocks (one weight-scale load for four products),
        // with unchecked index arithmetic: the checked loop per vector cost ~9 % of a Q8_0 prompt.
        let x0 = UnsafeRawPointer(xd), x1 = UnsafeRawPointer(xd + ds), x2 = UnsafeRawPointer(xd + 2 &* ds), x3 = UnsafeRawPointer(xd + 3 &* ds)
        let o0 = UnsafeMutableRawPointer(s), o1 = UnsafeMutableRawPointer(s + blocks)
        let o2 = UnsafeMutableRawPointer(s + 2 &* blocks), o3 = UnsafeMutableRawPointer(s + 3 &* blocks)
        let w = UnsafeRawPointer(dw)
        var b = 0  // byte offset, 4 per block
        let end8 = 4 &* (blocks & ~7)
        while b < end8 {
            let d = w.loadUnaligned(fromByteOffset: b, as: SIMD8<Float>.self)
            o0.storeBytes(of: d * x0.loadUnaligned(fromByteOffset: b, as: SIMD8<Float>.self), toByteOffset: b, as: SIMD8<Float>.self)
            o1.storeBytes(of: d * x1.loadUnaligned(fromByteOffset: b, as: SIMD8<Float>.self), toByteOffset: b, as: SIMD8<Float>.self)
            o2.storeBytes(of: d * x2.loadUnaligned(fromByteOffset: b, as: SIMD8<Float>.self), toByteOffset: b, as: SIMD8<Float>.self)
            o3.storeBytes(of: d * x3.loadUnaligned(fromByteOffset: b, as: SIMD8<Float>.self), toByteOffset: b, as: SIMD8<Float>.self)
            b &+= 32
        }
        for t in 0..<4 {
            let x = xd + t &* ds, o = s + t &* blocks
            var k = blocks & ~7
            while k < blocks { o[k] = dw[k] * x[k]; k &+= 1 }
        }
    }

    /// One Q8_0 row against four vectors (x_t at `x + t·xStride` bytes), with the scale
    /// products `s` (t·blocks + k): each block's weights are loaded and their magnitudes formed
    /// once for the four.
    @inlinable @inline(__always)
    public static func rowTile4(_ w: UnsafeRawPointer, _ x: UnsafeRawPointer, _ xStride: Int, _ s: UnsafePointer<Float>,
                      _ blocks: Int) -> SIMD4<Float> {
        var e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0
        var o0 = e0, o1 = e0, o2 = e0, o3 = e0
        let s1 = s + blocks, s2 = s + 2 * blocks, s3 = s + 3 * blocks
        @inline(__always) func block(_ k: Int, _ a0: inout __m256, _ a1: inout __m256, _ a2: inout __m256, _ a3: inout __m256) {
            let v = (w + 34 * k).loadUnaligned(fromByteOffset: 2, as: __m256i.self)
            let m = _mm256_sign_epi8(v, v)
            let xk = x + 32 * k
            a0 = _mm256_fmadd_ps(products(m, v, xk), _mm256_set1_ps(s[k]), a0)
            a1 = _mm256_fmadd_ps(products(m, v, xk + xStride), _mm256_set1_ps(s1[k]), a1)
            a2 = _mm256_fmadd_ps(products(m, v, xk + 2 * xStride), _mm256_set1_ps(s2[k]), a2)
            a3 = _mm256_fmadd_ps(products(m, v, xk + 3 * xStride), _mm256_set1_ps(s3[k]), a3)
        }
        var k = 0
        while k + 2 <= blocks {
            block(k, &e0, &e1, &e2, &e3)
            block(k + 1, &o0, &o1, &o2, &o3)
            k += 2
        }
        if k < blocks { block(k, &e0, &e1, &e2, &e3) }
        return SIMD4(sum(e0, o0), sum(e1, o1), sum(e2, o2), sum(e3, o3))
    }

    /// The block at `b`: its 32 weights against the 32 activation bytes at `x`, as 8 float lanes.
    @inlinable @inline(__always)
    public static func products(_ b: UnsafeRawPointer, _ x: UnsafeRawPointer) -> __m256 {
        let v = b.loadUnaligned(fromByteOffset: 2, as: __m256i.self)
        return products(_mm256_sign_epi8(v, v), v, x)
    }

    /// |w| (`m`) times x with w's signs (`v` the signed weights), four products per lane.
    @inlinable @inline(__always)
    public static func products(_ m: __m256i, _ v: __m256i, _ x: UnsafeRawPointer) -> __m256 {
        P.products(m, _mm256_sign_epi8(x.loadUnaligned(as: __m256i.self), v))
    }

    /// d_w × d_x for the block at `b`, in all lanes: the half broadcast from memory
    /// (`vpbroadcastw`), widened (`vcvtph2ps`, exact) and multiplied in every lane, so no scalar
    /// register is involved. Written as `Float(Float16) * xd`, LLVM inserted the half into an
    /// accumulator's register (`vpinsrw`), which chained each block's scale to the previous
    /// block's multiply-add: 0.8× on one thread.
    @inlinable @inline(__always)
    public static func scale(_ b: UnsafeRawPointer, _ xd: Float) -> __m256 {
        let h = _mm_set1_epi16(Int16(bitPattern: b.loadUnaligned(as: UInt16.self)))
        return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(xd))
    }

    /// (a + b) summed across lanes, as `SIMD8<Float>.sum()` orders it.
    @inlinable @inline(__always)
    static func sum(_ a: __m256, _ b: __m256) -> Float { (a + b).sum() }  // __m256 is SIMD8<Float>
}

/// The Q8_0 products on AVX-VNNI (`vpdpbusd`, VEX-encoded, 256-bit): Intel since Alder Lake, AMD
/// since Zen 5. This module alone is compiled with the feature (`-Xcc -mavxvnni` on top of
/// Haswell); `Kernels` calls these two functions only after `CPUFeatures` has found `avx_vnni`
/// in /proc/cpuinfo, and they are not inlinable, so no VNNI instruction leaks into code that
/// runs everywhere.
public enum Q8_0VNNI {
    /// One `vpdpbusd` into a zeroed register: exact, with no 16-bit step that could saturate.
    enum BlockProducts: Q8_0BlockProducts {
        @inline(__always)
        static func products(_ m: __m256i, _ s: __m256i) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), m, s))
        }
    }

    /// ``Q8_0Product/dot(_:_:_:blocks:)`` on AVX-VNNI.
    @inline(never)
    public static func dot(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float {
        Q8_0Product<BlockProducts>.dot(w, xq, xd, blocks: blocks)
    }

    /// ``Q8_0Product/product(_:rowBytes:rows:blocks:_:_:xStride:count:_:yStride:scratch:scratchBytes:)`` on AVX-VNNI.
    @inline(never)
    public static func product(_ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int,
                               _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, xStride: Int, count: Int,
                               _ y: UnsafeMutablePointer<Float>, yStride: Int,
                               scratch: UnsafeMutableRawPointer, scratchBytes: Int) {
        Q8_0Product<BlockProducts>.product(w, rowBytes: rowBytes, rows: rows, blocks: blocks, xq, xd, xStride: xStride,
                                          count: count, y, yStride: yStride, scratch: scratch, scratchBytes: scratchBytes)
    }
}
