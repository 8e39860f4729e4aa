#if canImport(Glibc)
import Glibc
#endif
import Kernels
import CHints

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
    ///   - scores: scratch of `group × positions` floats (position-major: the group's scores for
    ///     one position side by side).
    ///   - out: the `group` output heads, laid out like `queries`.
    @inline(__always)
    public static func attend(queries q0: UnsafePointer<Float>, group: Int, headDim hd: Int,
                              keys: UnsafeRawPointer, values: UnsafeRawPointer, rowStride: Int, f32: Bool,
                              positions n: Int, scores s: UnsafeMutablePointer<Float>,
                              into out0: UnsafeMutablePointer<Float>) {
        precondition(hd % 8 == 0 && n >= 1)
        let scale = 1 / Float(hd).squareRoot()
        let rowBytes = rowStride * (f32 ? 4 : 2), headBytes = hd * (f32 ? 4 : 2)
        for j in 0..<n {
            // The cache was written tokens ago and the weights streamed since have pushed it out
            // to memory: ask for the key `keysAhead` positions on while this one is summed.
            // Its value as well, into L2, for the value sums after the softmax.
            let ahead = keys + (j + keysAhead) * rowBytes, valueAhead = values + (j + keysAhead) * rowBytes
            var line = 0
            while line < headBytes { octet_prefetch(ahead + line); octet_prefetch_l2(valueAhead + line); line += 64 }
            if f32 {
                let k = keys.assumingMemoryBound(to: Float.self) + j * rowStride
                groupDot(q0, group: group, headDim: hd, scale: scale, into: s + j * group) { Dot.load8(k, $0) }
            } else {
                let k = UnsafeRawPointer(keys.assumingMemoryBound(to: Float16.self) + j * rowStride)
                groupDot(q0, group: group, headDim: hd, scale: scale, into: s + j * group) { Dot.halfs(k, $0) }
            }
        }
        softmax(s, group: group, positions: n)
        if f32 {
            let v = values.assumingMemoryBound(to: Float.self)
            groupValues(s, positions: n, group: group, headDim: hd, headBytes: headBytes, into: out0,
                        row: { values + $0 * rowBytes }) { Dot.load8(v + $0 * rowStride, $1) }
        } else {
            let v = values.assumingMemoryBound(to: Float16.self)
            groupValues(s, positions: n, group: group, headDim: hd, headBytes: headBytes, into: out0,
                        row: { values + $0 * rowBytes }) { Dot.halfs(UnsafeRawPointer(v + $0 * rowStride), $1) }
        }
    }

    /// How many positions ahead the key loop prefetches: ~40 cycles per position for a group of
    /// four heads, so 16 positions cover the ~150 ns of a miss to memory.
    static let keysAhead = 16

    /// Positions per block of the value sums: 32 rows of 128 f16 values are 8 KiB, which stay in
    /// L1 while every 16-lane chunk of the output sums over them.
    static let valueBlock = 32

    /// Softmax over the positions of each head's scores (`s[j·group + h]`), in place. When the
    /// group size divides 8, eight scores at a time (``VectorMath/exp(_:)``): lane l of every
    /// 8-float step belongs to head l mod group.
    @inline(__always)
    static func softmax(_ s: UnsafeMutablePointer<Float>, group: Int, positions n: Int) {
        let total = n * group
        var maxima = SIMD8<Float>(repeating: -.infinity), sums = SIMD8<Float>()
        guard 8 % group == 0 else {
            for h in 0..<group {
                var m = -Float.infinity
                for j in 0..<n { m = max(m, s[j * group + h]) }
                var sum: Float = 0
                for j in 0..<n { let e = expf(s[j * group + h] - m); s[j * group + h] = e; sum += e }
                for j in 0..<n { s[j * group + h] /= sum }
            }
            return
        }
        let full = total & ~7
        @inline(__always) func chunk(_ i: Int) -> SIMD8<Float> { UnsafeRawPointer(s + i).loadUnaligned(as: SIMD8<Float>.self) }
        @inline(__always) func store(_ v: SIMD8<Float>, _ i: Int) { UnsafeMutableRawPointer(s + i).storeBytes(of: v, as: SIMD8<Float>.self) }
        var i = 0
        while i < full { let c = chunk(i); maxima = maxima.replacing(with: c, where: c .> maxima); i += 8 }
        for t in full..<total { maxima[t & 7] = max(maxima[t & 7], s[t]) }
        // Each head's maximum, repeated in its lanes.
        var m = maxima
        var width = 8
        while width > group {
            width /= 2
            for l in 0..<8 { m[l] = max(m[l], m[(l + width) & 7]) }
        }
        i = 0
        while i < full { let e = VectorMath.exp(chunk(i) - m); store(e, i); sums += e; i += 8 }
        if full < total {
            var tail = SIMD8<Float>(repeating: -.infinity)
            for t in full..<total { tail[t & 7] = s[t] }
            let e = VectorMath.exp(tail - m)
            for t in full..<total { s[t] = e[t & 7]; sums[t & 7] += e[t & 7] }
        }
        width = 8
        while width > group {
            width /= 2
            var folded = sums
            for l in 0..<8 { folded[l] = sums[l] + sums[(l + width) & 7] }
            sums = folded
        }
        let inverse = 1 / sums
        i = 0
        while i < full { store(chunk(i) * inverse, i); i += 8 }
        for t in full..<total { s[t] *= inverse[t & 7] }
    }

    /// out[h] = (q_h · k) × scale for the `group` query heads at `q0` (headDim apart), each
    /// 8-lane chunk of k loaded (and converted) once.
    @inline(__always)
    static func groupDot(_ q0: UnsafePointer<Float>, group: Int, headDim hd: Int, scale: Float,
                         into out: UnsafeMutablePointer<Float>, _ key: (Int) -> SIMD8<Float>) {
        if group == 4 {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var i = 0
            while i < hd {
                let k = key(i)
                a0.addProduct(Dot.load8(q0, i), k); a1.addProduct(Dot.load8(q0 + hd, i), k)
                a2.addProduct(Dot.load8(q0 + 2 * hd, i), k); a3.addProduct(Dot.load8(q0 + 3 * hd, i), k)
                i += 8
            }
            UnsafeMutableRawPointer(out).storeBytes(of: laneSums(a0, a1, a2, a3) * scale, as: SIMD4<Float>.self)
            return
        }
        for h in 0..<group {
            var a = SIMD8<Float>()
            var i = 0
            while i < hd { a.addProduct(Dot.load8(q0 + h * hd, i), key(i)); i += 8 }
            out[h] = a.sum() * scale
        }
    }

    /// The lane sums of a0…a3 side by side, each as ((l0+l4) + (l1+l5)) + ((l2+l6) + (l3+l7)):
    /// whole-vector adds and shuffles, about 20 instructions for the four where `sum()` takes
    /// seven dependent scalar adds and as many shuffles each.
    @inline(__always)
    static func laneSums(_ a0: SIMD8<Float>, _ a1: SIMD8<Float>, _ a2: SIMD8<Float>, _ a3: SIMD8<Float>) -> SIMD4<Float> {
        let c01 = SIMD8(lowHalf: a0.lowHalf + a0.highHalf, highHalf: a1.lowHalf + a1.highHalf)
        let c23 = SIMD8(lowHalf: a2.lowHalf + a2.highHalf, highHalf: a3.lowHalf + a3.highHalf)
        let e = SIMD8(lowHalf: c01.evenHalf + c01.oddHalf, highHalf: c23.evenHalf + c23.oddHalf)
        return e.evenHalf + e.oddHalf
    }

    /// out_h = Σ_j p[j·group + h] · v_j over `positions` cached values, for the `group` query
    /// heads (out_h at `out0 + h·headDim`); `value(j, i)` is lanes i..<i+8 of v_j, and `row(j)`
    /// v_j's first byte. Positions go in blocks of ``valueBlock``: each output chunk sums over a
    /// block in registers, in position order, and carries its partial sum in `out` to the next
    /// block, so the sums are those of adding position by position while a block's rows are read
    /// from memory once (the next block's prefetched while the first chunk runs).
    @inline(__always)
    static func groupValues(_ p: UnsafePointer<Float>, positions n: Int, group: Int, headDim hd: Int, headBytes: Int,
                             into out0: UnsafeMutablePointer<Float>, row: (Int) -> UnsafeRawPointer,
                             _ value: (Int, Int) -> SIMD8<Float>) {
        @inline(__always) func store(_ a: SIMD8<Float>, _ h: Int, _ i: Int) {
            UnsafeMutableRawPointer(out0 + h * hd + i).storeBytes(of: a, as: SIMD8<Float>.self)
        }
        @inline(__always) func load(_ h: Int, _ i: Int, first: Bool) -> SIMD8<Float> {
            first ? SIMD8<Float>() : UnsafeRawPointer(out0 + h * hd + i).loadUnaligned(as: SIMD8<Float>.self)
        }
        var start = 0
        while start < n {
            let end = min(start + valueBlock, n), first = start == 0
            var i = 0
            if group == 4 {
                // Two 8-lane chunks of the four heads: eight accumulators, each value chunk converted once.
                while i + 16 <= hd {
                    var a0 = load(0, i, first: first), a1 = load(1, i, first: first)
                    var a2 = load(2, i, first: first), a3 = load(3, i, first: first)
                    var b0 = load(0, i + 8, first: first), b1 = load(1, i + 8, first: first)
                    var b2 = load(2, i + 8, first: first), b3 = load(3, i + 8, first: first)
                    for j in start..<end {
                        if i == 0 {
                            let ahead = row(j + valueBlock)
                            var line = 0
                            while line < headBytes { octet_prefetch(ahead + line); line += 64 }
                        }
                        let v = value(j, i), w = value(j, i + 8)
                        let p0 = SIMD8(repeating: p[4 * j]), p1 = SIMD8(repeating: p[4 * j + 1])
                        let p2 = SIMD8(repeating: p[4 * j + 2]), p3 = SIMD8(repeating: p[4 * j + 3])
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
                    var a = load(h, i, first: first)
                    for j in start..<end { a.addProduct(SIMD8(repeating: p[j * group + h]), value(j, i)) }
                    store(a, h, i)
                }
                i += 8
            }
            start = end
        }
    }
}
