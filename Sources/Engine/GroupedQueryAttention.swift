#if canImport(Glibc)
import Glibc
#endif
import Kernels

/// Causal attention of one token for the query heads that share one KV head (grouped-query
/// attention): scores q_h·k_j/√headDim over positions j, softmax, then Σ_j p_hj·v_j per head.
///
/// The heads of a group go together, so each cached key and value is read and converted once for
/// all of them. Per head the arithmetic has one order whatever the batch: a key's dot product in
/// 8-lane steps, then the values summed position by position.
public enum GroupedQueryAttention {
    /// - Parameters:
    ///   - queries: the `group` query heads, `headDim` floats each, one after another.
    ///   - keys, values: the cache rows of this KV head at position 0 (f32 or f16 elements, as
    ///     `f32` says), consecutive positions `rowStride` elements apart.
    ///   - positions: how many cached positions the token attends to (0..<positions).
    ///   - scores: scratch of `group` rows of `scoreStride` ≥ `positions` floats.
    ///   - out: the `group` output heads, laid out like `queries`.
    @inline(__always)
    public static func attend(queries q0: UnsafePointer<Float>, group: Int, headDim hd: Int,
                              keys: UnsafeRawPointer, values: UnsafeRawPointer, rowStride: Int, f32: Bool,
                              positions n: Int, scores s: UnsafeMutablePointer<Float>, scoreStride ctx: Int,
                              into out0: UnsafeMutablePointer<Float>) {
        precondition(hd % 8 == 0 && n >= 1 && n <= ctx)
        let scale = 1 / Float(hd).squareRoot()
        for j in 0..<n {
            if f32 {
                let k = keys.assumingMemoryBound(to: Float.self) + j * rowStride
                groupDot(q0, group: group, headDim: hd, scale: scale, into: s + j, stride: ctx) { Dot.load8(k, $0) }
            } else {
                let k = UnsafeRawPointer(keys.assumingMemoryBound(to: Float16.self) + j * rowStride)
                groupDot(q0, group: group, headDim: hd, scale: scale, into: s + j, stride: ctx) { Dot.halfs(k, $0) }
            }
        }
        for h in 0..<group {
            let sh = s + h * ctx
            var maxScore = -Float.infinity
            for j in 0..<n { maxScore = max(maxScore, sh[j]) }
            var sum: Float = 0
            for j in 0..<n { sh[j] = expf(sh[j] - maxScore); sum += sh[j] }
            let inv = 1 / sum
            for j in 0..<n { sh[j] *= inv }
        }
        if f32 {
            let v = values.assumingMemoryBound(to: Float.self)
            groupValues(s, stride: ctx, positions: n, group: group, headDim: hd, into: out0) { Dot.load8(v + $0 * rowStride, $1) }
        } else {
            let v = values.assumingMemoryBound(to: Float16.self)
            groupValues(s, stride: ctx, positions: n, group: group, headDim: hd, into: out0) {
                Dot.halfs(UnsafeRawPointer(v + $0 * rowStride), $1)
            }
        }
    }

    /// out[h·stride] = (q_h · k) × scale for the `group` query heads at `q0` (headDim apart), each
    /// 8-lane chunk of k loaded (and converted) once.
    @inline(__always)
    static func groupDot(_ q0: UnsafePointer<Float>, group: Int, headDim hd: Int, scale: Float,
                          into out: UnsafeMutablePointer<Float>, stride: Int, _ key: (Int) -> SIMD8<Float>) {
        if group == 4 {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var i = 0
            while i < hd {
                let k = key(i)
                a0.addProduct(Dot.load8(q0, i), k); a1.addProduct(Dot.load8(q0 + hd, i), k)
                a2.addProduct(Dot.load8(q0 + 2 * hd, i), k); a3.addProduct(Dot.load8(q0 + 3 * hd, i), k)
                i += 8
            }
            out[0] = a0.sum() * scale; out[stride] = a1.sum() * scale
            out[2 * stride] = a2.sum() * scale; out[3 * stride] = a3.sum() * scale
            return
        }
        for h in 0..<group {
            var a = SIMD8<Float>()
            var i = 0
            while i < hd { a.addProduct(Dot.load8(q0 + h * hd, i), key(i)); i += 8 }
            out[h * stride] = a.sum() * scale
        }
    }

    /// out_h = Σ_j p[h·stride + j] · v_j over `positions` cached values, for the `group` query
    /// heads (out_h at `out0 + h·headDim`); `value(j, i)` is lanes i..<i+8 of v_j. Each output
    /// chunk sums in registers over the positions in order, the order of adding position by
    /// position into memory, without the loads and stores.
    @inline(__always)
    static func groupValues(_ p: UnsafePointer<Float>, stride: Int, positions n: Int, group: Int, headDim hd: Int,
                             into out0: UnsafeMutablePointer<Float>, _ value: (Int, Int) -> SIMD8<Float>) {
        @inline(__always) func store(_ a: SIMD8<Float>, _ h: Int, _ i: Int) {
            UnsafeMutableRawPointer(out0 + h * hd + i).storeBytes(of: a, as: SIMD8<Float>.self)
        }
        var i = 0
        if group == 4 {
            // Two 8-lane chunks of the four heads: eight accumulators, each value chunk converted once.
            while i + 16 <= hd {
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
                for j in 0..<n {
                    let v = value(j, i), w = value(j, i + 8)
                    let p0 = SIMD8(repeating: p[j]), p1 = SIMD8(repeating: p[stride + j])
                    let p2 = SIMD8(repeating: p[2 * stride + j]), p3 = SIMD8(repeating: p[3 * stride + j])
                    a0.addProduct(p0, v); a1.addProduct(p1, v); a2.addProduct(p2, v); a3.addProduct(p3, v)
                    b0.addProduct(p0, w); b1.addProduct(p1, w); b2.addProduct(p2, w); b3.addProduct(p3, w)
                }
                store(a0, 0, i); store(a1, 1, i); store(a2, 2, i); store(a3, 3, i)
                store(b0, 0, i + 8); store(b1, 1, i + 8); store(b2, 2, i + 8); store(b3, 3, i + 8)
                i += 16
            }
        }
        while i < hd {
            for h in 0..<group {
                var a = SIMD8<Float>()
                for j in 0..<n { a.addProduct(SIMD8(repeating: p[h * stride + j]), value(j, i)) }
                store(a, h, i)
            }
            i += 8
        }
    }
}
