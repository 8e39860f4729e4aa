import _Builtin_intrinsics.intel
import CHints
import Q8_0Kernels

/// The Q8_0 integer products on AVX-512 (BW and VNNI), with the AVX2 route's bits: each 512-bit
/// register holds two consecutive blocks, an even one in lanes 0…7 and the odd one after it in
/// lanes 8…15, which is exactly where ``Q8_0Product`` keeps its two 8-lane accumulators (even
/// blocks, odd blocks). So one `vpdpbusd`, one conversion and one multiply-add serve two blocks,
/// with the same integers per lane and the same float operations per lane.
///
/// AVX-512 has no `vpsignb`: the weights' magnitudes are `vpabsb`, and the activations take the
/// weights' signs by a masked `vpsubb` from zero under the weights' sign bits (`vpmovb2m`). Where
/// a weight is 0 the activation keeps its sign, but its product is 0 either way.
public enum Q8_0AVX512 {
    enum BlockProducts: Q8_0BlockProducts {
        /// One block: the EVEX 256-bit `vpdpbusd` (reached through its masked form, all lanes set).
        @inline(__always)
        static func products(_ m: __m256i, _ s: __m256i) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_mask_dpbusd_epi32(_mm256_setzero_si256(), 0xFF, m, s))
        }

        /// Four vectors, two blocks per step (see ``Q8_0Product/rowTile4(_:_:_:_:_:)`` for the
        /// arithmetic this keeps). Not inlined into the product's loops over rows and vectors:
        /// on its own the loop keeps all its pointers in registers (inlined, LLVM spilled three
        /// and reloaded them every step).
        @inline(never)
        static func tile4(_ w: UnsafeRawPointer, _ x: UnsafeRawPointer, _ xStride: Int, _ s: UnsafePointer<Float>,
                          _ blocks: Int) -> SIMD4<Float> {
            let z = _mm512_setzero_ps()
            var a0 = z, a1 = z, a2 = z, a3 = z
            // One moving pointer each for the weights, the activations and the scales, the
            // vectors at fixed distances from it: few enough registers that none is spilled.
            var b = w, xp = x, sp = s
            let x2 = 2 * xStride, x3 = 3 * xStride, s2 = 2 * blocks, s3 = 3 * blocks
            let pairEnd = w + 34 * (blocks & ~1)
            while b < pairEnd {
                let v = pairWeights(b)
                let m = _mm512_abs_epi8(v), negative = _mm512_movepi8_mask(v)
                a0 = _mm512_fmadd_ps(pairProducts(m, negative, xp), pairScales(sp), a0)
                a1 = _mm512_fmadd_ps(pairProducts(m, negative, xp + xStride), pairScales(sp + blocks), a1)
                a2 = _mm512_fmadd_ps(pairProducts(m, negative, xp + x2), pairScales(sp + s2), a2)
                a3 = _mm512_fmadd_ps(pairProducts(m, negative, xp + x3), pairScales(sp + s3), a3)
                b += 68
                xp += 64
                sp += 2
            }
            let k = blocks & ~1
            let x1 = x + xStride, s1 = s + blocks
            let xt2 = x + x2, xt3 = x + x3, st2 = s + s2, st3 = s + s3
            var e0 = a0.lowHalf, e1 = a1.lowHalf, e2 = a2.lowHalf, e3 = a3.lowHalf  // __m512 is SIMD16<Float>
            if k < blocks {
                let v = (w + 34 * k).loadUnaligned(fromByteOffset: 2, as: __m256i.self)
                let m = _mm256_sign_epi8(v, v), o = 32 * k
                typealias P = Q8_0Product<BlockProducts>
                e0 = _mm256_fmadd_ps(P.products(m, v, x + o), _mm256_set1_ps(s[k]), e0)
                e1 = _mm256_fmadd_ps(P.products(m, v, x1 + o), _mm256_set1_ps(s1[k]), e1)
                e2 = _mm256_fmadd_ps(P.products(m, v, xt2 + o), _mm256_set1_ps(st2[k]), e2)
                e3 = _mm256_fmadd_ps(P.products(m, v, xt3 + o), _mm256_set1_ps(st3[k]), e3)
            }
            return SIMD4((e0 + a0.highHalf).sum(), (e1 + a1.highHalf).sum(), (e2 + a2.highHalf).sum(), (e3 + a3.highHalf).sum())
        }

        /// The weights of blocks k (at `b`) and k+1 (34 bytes on): 64 signed bytes.
        @inline(__always)
        static func pairWeights(_ b: UnsafeRawPointer) -> __m512i {
            SIMD8(lowHalf: b.loadUnaligned(fromByteOffset: 2, as: SIMD4<Int64>.self),
                  highHalf: b.loadUnaligned(fromByteOffset: 36, as: SIMD4<Int64>.self))  // __m512i is SIMD8<Int64>
        }

        /// |w| (`m`) times the 64 activation bytes at `x` given w's signs, four products per lane.
        @inline(__always)
        static func pairProducts(_ m: __m512i, _ negative: __mmask64, _ x: UnsafeRawPointer) -> __m512 {
            let v = x.loadUnaligned(as: __m512i.self)
            let signed = _mm512_mask_sub_epi8(v, negative, _mm512_setzero_si512(), v)
            return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), m, signed))
        }

        /// s[0] in lanes 0…7, s[1] in lanes 8…15 (a two-float masked load, `vpermps`).
        @inline(__always)
        static func pairScales(_ s: UnsafePointer<Float>) -> __m512 {
            let both = _mm512_castpd_ps(_mm512_set1_pd(UnsafeRawPointer(s).loadUnaligned(as: Double.self)))
            return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), both)
        }
    }

    /// ``Q8_0Product/product(_:rowBytes:rows:blocks:_:_:xStride:count:_:yStride:scratch:scratchBytes:)`` on AVX-512.
    @inline(never)
    public static func product(_ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int,
                               _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, xStride: Int, count: Int,
                               _ y: UnsafeMutablePointer<Float>, yStride: Int,
                               scratch: UnsafeMutableRawPointer, scratchBytes: Int) {
        Q8_0Product<BlockProducts>.product(w, rowBytes: rowBytes, rows: rows, blocks: blocks, xq, xd, xStride: xStride,
                                          count: count, y, yStride: yStride, scratch: scratch, scratchBytes: scratchBytes)
    }

    /// ``Q8_0Product/dot(_:_:_:blocks:)`` on AVX-512.
    @inline(never)
    public static func dot(_ w: UnsafeRawPointer, _ xq: UnsafePointer<Int8>, _ xd: UnsafePointer<Float>, blocks: Int) -> Float {
        Q8_0Product<BlockProducts>.dot(w, xq, xd, blocks: blocks)
    }
}
