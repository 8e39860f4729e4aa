import _Builtin_intrinsics.intel
import CHints
import Q8_0Kernels

// x86-64 only, as the whole package.

/// The float-weight products (f32, f16, bf16 and FP8 E4M3 rows against float activations) on
/// AVX-512, with the Haswell kernels' exact bits. Each 512-bit register holds two of the Haswell
/// kernels' 8-lane values side by side, so every lane runs the same operations in the same order:
/// - float tiles: lanes 0…7 one activation vector's accumulator, lanes 8…15 the next one's
///   (the weights converted once and broadcast to both halves);
/// - FP8: a block's first sixteen weights at once, lanes 0…7 the Haswell kernel's S partial
///   sums and accumulator, lanes 8…15 its T ones, added as there once the row is done.
/// So a model's output does not depend on which route ran it, and the tests of the Haswell
/// kernels hold for these too (`AVX512ProductsTests` compares them bit for bit).
///
/// This module alone is compiled with AVX-512 (`-Xcc -mavx512f -mavx512bw -mavx512vnni` on top of
/// Haswell). `Kernels` calls its entry points only after `CPUFeatures` has found the features in
/// /proc/cpuinfo, and they are not inlinable, so no AVX-512 instruction leaks into code that runs
/// everywhere.
public enum AVX512Products {
    /// The stored type of float weights.
    public enum Floats: Sendable { case f32, f16, bf16 }

    /// Rows r…r+3 (row k at `w + k·rowBytes`, `n` values) against vectors x_0…x_7 (x_t at
    /// `x + t·xStride`): y_t[r + k] at `y + t·yStride + r + k`. Per (row, vector) the order of
    /// `Dot.float2x4` in `Kernels`: one 8-lane accumulator, columns in order, then
    /// `SIMD8<Float>.sum()`. Four weight conversions and eight activation loads (with their
    /// inserts) feed sixteen 16-lane multiply-adds. `n` must be a multiple of 8.
    @inline(never)
    public static func floatTile4x8(_ w: UnsafeRawPointer, rowBytes: Int, type: Floats, count n: Int,
                                    _ x: UnsafePointer<Float>, xStride: Int, _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        switch type {
        case .f16: floatTile4x8(w, rowBytes, n, x, xStride, y, yStride) { halfs($0, $1) }
        case .bf16: floatTile4x8(w, rowBytes, n, x, xStride, y, yStride) { brains($0, $1) }
        case .f32: floatTile4x8(w, rowBytes, n, x, xStride, y, yStride) { singles($0, $1) }
        }
    }

    /// FP8 row · x: `Dot.fp8` in `Kernels`, bit for bit. With `scaled`, `x` holds the activations
    /// already multiplied by 2⁹⁶ (`Dot.fp8ActivationScale`); without, they are scaled here.
    /// `n` must be a multiple of 32.
    @inline(never)
    public static func fp8(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, count n: Int, scaled: Bool) -> Float {
        scaled ? fp8(w, x, n) { $0 } : fp8(w, x, n) { _mm512_mul_ps($0, _mm512_set1_ps(0x1p96)) }
    }

    /// One FP8 row against four vectors (x_t at `x + t·xStride`, unscaled): `Dot.fp8x4` in
    /// `Kernels`, bit for bit. `n` must be a multiple of 32.
    @inline(never)
    public static func fp8x4(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, xStride: Int, count n: Int) -> SIMD4<Float> {
        let z = _mm512_setzero_ps()
        var a0 = z, a1 = z, a2 = z, a3 = z
        let x1 = x + xStride, x2 = x + 2 * xStride, x3 = x + 3 * xStride
        var b = w
        var i = 0
        while i < n {
            let h01 = exact(e4m3Bits(b + 2)), h23 = exact(e4m3Bits(b + 18)), d = scale(b)
            a0 = _mm512_fmadd_ps(blockSum(h01, h23, x + i) { $0 }, d, a0)
            a1 = _mm512_fmadd_ps(blockSum(h01, h23, x1 + i) { $0 }, d, a1)
            a2 = _mm512_fmadd_ps(blockSum(h01, h23, x2 + i) { $0 }, d, a2)
            a3 = _mm512_fmadd_ps(blockSum(h01, h23, x3 + i) { $0 }, d, a3)
            b += 34
            i += 32
        }
        return SIMD4(halvesSum(a0), halvesSum(a1), halvesSum(a2), halvesSum(a3))
    }

    /// One FP8 row against eight vectors (x_t at `x + t·xStride`, unscaled) into `y[t]`: each
    /// block's weights and scale converted once for eight tokens instead of four (33 vector
    /// operations a block where two ``fp8x4(_:_:xStride:count:)`` take 42); per vector the same
    /// operations in the same order, so bit for bit `Dot.fp8x4`. `n` must be a multiple of 32.
    @inline(never)
    public static func fp8x8(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, xStride: Int, count n: Int,
                             _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        let z = _mm512_setzero_ps()
        var a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z
        var b = w
        var i = 0
        while i < n {
            let h01 = exact(e4m3Bits(b + 2)), h23 = exact(e4m3Bits(b + 18)), d = scale(b)
            let xi = x + i
            a0 = _mm512_fmadd_ps(blockSum(h01, h23, xi) { $0 }, d, a0)
            a1 = _mm512_fmadd_ps(blockSum(h01, h23, xi + xStride) { $0 }, d, a1)
            a2 = _mm512_fmadd_ps(blockSum(h01, h23, xi + 2 &* xStride) { $0 }, d, a2)
            a3 = _mm512_fmadd_ps(blockSum(h01, h23, xi + 3 &* xStride) { $0 }, d, a3)
            a4 = _mm512_fmadd_ps(blockSum(h01, h23, xi + 4 &* xStride) { $0 }, d, a4)
            a5 = _mm512_fmadd_ps(blockSum(h01, h23, xi + 5 &* xStride) { $0 }, d, a5)
            a6 = _mm512_fmadd_ps(blockSum(h01, h23, xi + 6 &* xStride) { $0 }, d, a6)
            a7 = _mm512_fmadd_ps(blockSum(h01, h23, xi + 7 &* xStride) { $0 }, d, a7)
            b += 34
            i += 32
        }
        y[0] = halvesSum(a0); y[yStride] = halvesSum(a1); y[2 &* yStride] = halvesSum(a2); y[3 &* yStride] = halvesSum(a3)
        y[4 &* yStride] = halvesSum(a4); y[5 &* yStride] = halvesSum(a5); y[6 &* yStride] = halvesSum(a6); y[7 &* yStride] = halvesSum(a7)
    }

    // MARK: - Loads

    @usableFromInline typealias Loader = (UnsafeRawPointer, Int) -> __m512

    /// Eight f16 at column i as floats, in both halves (`vbroadcasti128`, `vcvtph2ps`).
    @inline(__always)
    static func halfs(_ w: UnsafeRawPointer, _ i: Int) -> __m512 {
        _mm512_cvtph_ps(_mm256_broadcastsi128_si256(w.loadUnaligned(fromByteOffset: 2 &* i, as: __m128i.self)))
    }

    /// Eight bf16 at column i as floats, in both halves (exact: the bits shifted up by 16).
    @inline(__always)
    static func brains(_ w: UnsafeRawPointer, _ i: Int) -> __m512 {
        let h = _mm256_broadcastsi128_si256(w.loadUnaligned(fromByteOffset: 2 &* i, as: __m128i.self))
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
    }

    /// Eight f32 at column i, in both halves.
    @inline(__always)
    static func singles(_ w: UnsafeRawPointer, _ i: Int) -> __m512 {
        let v = w.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
        return SIMD16(lowHalf: v, highHalf: v)  // __m512 is SIMD16<Float>
    }

    /// Columns i…i+7 of two vectors: `a` in lanes 0…7, `b` in lanes 8…15.
    @inline(__always)
    static func pair(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ i: Int) -> __m512 {
        SIMD16(lowHalf: UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self),
               highHalf: UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self))
    }

    @inline(__always)
    static func load16(_ x: UnsafePointer<Float>) -> __m512 {
        UnsafeRawPointer(x).loadUnaligned(as: __m512.self)
    }

    /// Sixteen E4M3 bytes at `q` as f32 bits, the value × 2⁻¹²⁰ (`Dot.e4m3Bits` in `Kernels`, on
    /// sixteen lanes: `vpmovsxbd`, `vpslld`, `vpandd`).
    @inline(__always)
    static func e4m3Bits(_ q: UnsafeRawPointer) -> __m512 {
        let b = _mm512_cvtepi8_epi32(q.loadUnaligned(as: __m128i.self))
        return _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(b, 20), _mm512_set1_epi32(Int32(bitPattern: 0x87FF_FFFF))))
    }

    /// ``e4m3Bits(_:)`` × 2¹²⁰: the exact values (`Dot.e4m3Exact` in `Kernels`).
    @inline(__always)
    static func exact(_ v: __m512) -> __m512 { _mm512_mul_ps(v, _mm512_set1_ps(0x1p120)) }

    /// The FP8 block scale at `b` in all sixteen lanes, from a broadcast half (`vpbroadcastw`,
    /// `vcvtph2ps`; no scalar register in the multiply-adds' chain). Exact.
    @inline(__always)
    static func scale(_ b: UnsafeRawPointer) -> __m512 {
        _mm512_cvtph_ps(_mm256_set1_epi16(Int16(bitPattern: b.loadUnaligned(as: UInt16.self))))
    }

    /// An FP8 accumulator's result: its S half plus its T half, summed as `SIMD8<Float>.sum()`.
    @inline(__always)
    static func halvesSum(_ acc: __m512) -> Float { (acc.lowHalf + acc.highHalf).sum() }

    // MARK: - Kernels

    @inline(__always)
    static func floatTile4x8(_ w: UnsafeRawPointer, _ rowBytes: Int, _ n: Int, _ x: UnsafePointer<Float>, _ xStride: Int,
                             _ y: UnsafeMutablePointer<Float>, _ yStride: Int, _ load: Loader) {
        let z = _mm512_setzero_ps()
        // a…d: rows r…r+3; 0…3: vector pairs (0, 1), (2, 3), (4, 5), (6, 7).
        var a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z
        var c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z
        let w0 = w, w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes
        let x0 = x, x1 = x + xStride, x2 = x + 2 * xStride, x3 = x + 3 * xStride
        let x4 = x + 4 * xStride, x5 = x + 5 * xStride, x6 = x + 6 * xStride, x7 = x + 7 * xStride
        var i = 0
        while i < n {
            let u0 = pair(x0, x1, i), u1 = pair(x2, x3, i), u2 = pair(x4, x5, i), u3 = pair(x6, x7, i)
            let v0 = load(w0, i)
            a0 = _mm512_fmadd_ps(v0, u0, a0); a1 = _mm512_fmadd_ps(v0, u1, a1)
            a2 = _mm512_fmadd_ps(v0, u2, a2); a3 = _mm512_fmadd_ps(v0, u3, a3)
            let v1 = load(w1, i)
            b0 = _mm512_fmadd_ps(v1, u0, b0); b1 = _mm512_fmadd_ps(v1, u1, b1)
            b2 = _mm512_fmadd_ps(v1, u2, b2); b3 = _mm512_fmadd_ps(v1, u3, b3)
            let v2 = load(w2, i)
            c0 = _mm512_fmadd_ps(v2, u0, c0); c1 = _mm512_fmadd_ps(v2, u1, c1)
            c2 = _mm512_fmadd_ps(v2, u2, c2); c3 = _mm512_fmadd_ps(v2, u3, c3)
            let v3 = load(w3, i)
            d0 = _mm512_fmadd_ps(v3, u0, d0); d1 = _mm512_fmadd_ps(v3, u1, d1)
            d2 = _mm512_fmadd_ps(v3, u2, d2); d3 = _mm512_fmadd_ps(v3, u3, d3)
            i += 8
        }
        @inline(__always) func store(_ acc: __m512, row k: Int, pair p: Int) {
            y[2 * p * yStride + k] = acc.lowHalf.sum()
            y[(2 * p + 1) * yStride + k] = acc.highHalf.sum()
        }
        store(a0, row: 0, pair: 0); store(a1, row: 0, pair: 1); store(a2, row: 0, pair: 2); store(a3, row: 0, pair: 3)
        store(b0, row: 1, pair: 0); store(b1, row: 1, pair: 1); store(b2, row: 1, pair: 2); store(b3, row: 1, pair: 3)
        store(c0, row: 2, pair: 0); store(c1, row: 2, pair: 1); store(c2, row: 2, pair: 2); store(c3, row: 2, pair: 3)
        store(d0, row: 3, pair: 0); store(d1, row: 3, pair: 1); store(d2, row: 3, pair: 2); store(d3, row: 3, pair: 3)
    }

    /// One FP8 block's partial sums as the Haswell kernel forms them: lanes 0…7 of
    /// `w01·x[0..<16]` then `+= w23·x[16..<32]` are its S (weights 0…7 and 16…23), lanes 8…15
    /// its T (8…15 and 24…31). `scaleX` is applied to each activation load.
    @inline(__always)
    static func blockSum(_ w01: __m512, _ w23: __m512, _ x: UnsafePointer<Float>, _ scaleX: (__m512) -> __m512) -> __m512 {
        _mm512_fmadd_ps(w23, scaleX(load16(x + 16)), _mm512_mul_ps(w01, scaleX(load16(x))))
    }

    @inline(__always)
    static func fp8(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int, _ scaleX: (__m512) -> __m512) -> Float {
        var acc = _mm512_setzero_ps()
        var b = w
        var i = 0
        @inline(__always) func block(_ b: UnsafeRawPointer, _ x: UnsafePointer<Float>) {
            acc = _mm512_fmadd_ps(blockSum(e4m3Bits(b + 2), e4m3Bits(b + 18), x, scaleX), scale(b), acc)
        }
        while i + 64 <= n {
            octet_prefetch(b + prefetchDistance)
            block(b, x + i)
            octet_prefetch(b + 34 + prefetchDistance)
            block(b + 34, x + i + 32)
            b += 68
            i += 64
        }
        if i < n { block(b, x + i) }
        return halvesSum(acc) * 0x1p24
    }

    /// How far ahead of the row position the FP8 one-vector kernel prefetches (`prefetcht0`), in
    /// bytes: the Q8_0 kernels' distance.
    public static var prefetchDistance: Int { Q8_0Product<Q8_0AVX512.BlockProducts>.prefetchDistance }
}
