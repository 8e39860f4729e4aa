import CHints
import AVX512Kernels

/// Matrix products over mapped weights, split by rows across a ``WorkerPool``.
public enum MatMul {
    /// Batched: for each of `count` activation vectors (x_t at `x + t*xStride`), y_t[r] = W[r]·x_t
    /// with y_t at `y + t*yStride`, for r in `rows`. Each weight row is read once from memory and
    /// reused from L1 across the batch. `scratch` (`scratchBytes` bytes, the running thread's):
    /// where it holds `w.cols` floats, a single FP8 vector is scaled there once for all the rows
    /// (see ``Dot/fp8(_:scaledX:_:)``); without it each row scales as it goes, same result.
    @inlinable
    public static func matMul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int, count: Int,
                              _ y: UnsafeMutablePointer<Float>, yStride: Int, rows: Range<Int>,
                              scratch: UnsafeMutableRawPointer? = nil, scratchBytes: Int = 0) {
        if w.type == .fp8_e4m3 && count == 1 && w.cols % 32 == 0, let scratch, scratchBytes >= 4 * w.cols {
            // Decoding FP8: the activations scaled once for all these rows, not once per row.
            let xs = scratch.bindMemory(to: Float.self, capacity: w.cols)
            var i = 0
            while i < w.cols {
                UnsafeMutableRawPointer(xs + i).storeBytes(of: Dot.load8(x, i) * SIMD8(repeating: Dot.fp8ActivationScale), as: SIMD8<Float>.self)
                i += 8
            }
            for r in rows { y[r] = Dot.fp8(w.row(r), scaledX: xs, w.cols) }
            return
        }
        let float = (w.type == .f16 || w.type == .bf16 || w.type == .f32) && w.cols % 32 == 0
        let blockTiles = (w.type == .q8_0 || w.type == .fp8_e4m3) && w.cols % 32 == 0
        // Rows in groups of `rowGroup`, tiles of four vectors inside: a tile's activations are
        // read from far memory once per group instead of once per row, and the group's weight
        // rows stay in L2 across the tiles. Float rows go two at a time through the tiles (each
        // activation load feeds two rows) and four at a time for leftover vectors (four
        // independent accumulators); every (row, vector) value is computed in the same order as
        // by ``Dot/dot(_:_:count:type:)``.
        var g = rows.lowerBound
        while g < rows.upperBound {
            let group = g..<min(g + MatMul.rowGroup, rows.upperBound)
            var t = 0
            if float {
                if CPUFeatures.usesAVX512 {
                    // Four rows × eight vectors per AVX-512 tile (same bits as the tiles below).
                    let type = w.type.avx512Floats
                    while t + 8 <= count {
                        var r = group.lowerBound
                        while r + 4 <= group.upperBound {
                            AVX512Products.floatTile4x8(w.row(r), rowBytes: w.rowBytes, type: type, count: w.cols,
                                                        x + t * xStride, xStride: xStride, y + t * yStride + r, yStride: yStride)
                            r += 4
                        }
                        for u in stride(from: t, to: t + 8, by: 4) {
                            for k in r..<group.upperBound {
                                let v = Dot.float4(w.row(k), x + u * xStride, xStride: xStride, count: w.cols, type: w.type)
                                for i in 0..<4 { y[(u + i) * yStride + k] = v[i] }
                            }
                        }
                        t += 8
                    }
                }
                while t + 4 <= count {
                    var r = group.lowerBound
                    while r + 2 <= group.upperBound {
                        let (a, b) = Dot.float2x4(w.row(r), rowBytes: w.rowBytes, x + t * xStride, xStride: xStride, count: w.cols, type: w.type)
                        for i in 0..<4 { y[(t + i) * yStride + r] = a[i]; y[(t + i) * yStride + r + 1] = b[i] }
                        r += 2
                    }
                    if r < group.upperBound {
                        let v = Dot.float4(w.row(r), x + t * xStride, xStride: xStride, count: w.cols, type: w.type)
                        for i in 0..<4 { y[(t + i) * yStride + r] = v[i] }
                    }
                    t += 4
                }
                for u in t..<count {
                    var r = group.lowerBound
                    while r + 4 <= group.upperBound {
                        let v = Dot.floatRows4(w.row(r), rowBytes: w.rowBytes, x + u * xStride, count: w.cols, type: w.type)
                        for i in 0..<4 { y[u * yStride + r + i] = v[i] }
                        r += 4
                    }
                    while r < group.upperBound {
                        y[u * yStride + r] = Dot.dot(w.row(r), x + u * xStride, count: w.cols, type: w.type)
                        r += 1
                    }
                }
                g = group.upperBound
                continue
            }
            if blockTiles {
                if w.type == .fp8_e4m3 && CPUFeatures.usesAVX512 {
                    // Eight tokens per FP8 row on AVX-512 (the four-token tile's bits).
                    while t + 8 <= count {
                        for r in group {
                            AVX512Products.fp8x8(w.row(r), x + t * xStride, xStride: xStride, count: w.cols, y + t * yStride + r, yStride: yStride)
                        }
                        t += 8
                    }
                }
                while t + 4 <= count {
                    for r in group {
                        let xt = x + t * xStride
                        let v = w.type == .q8_0 ? Dot.q8_0Float4(w.row(r), xt, xStride: xStride, count: w.cols)
                                                : Dot.fp8x4(w.row(r), xt, xStride: xStride, count: w.cols)
                        for i in 0..<4 { y[(t + i) * yStride + r] = v[i] }
                    }
                    t += 4
                }
            }
            for r in group {
                let row = w.row(r)
                for u in t..<count { y[u * yStride + r] = Dot.dot(row, x + u * xStride, count: w.cols, type: w.type) }
            }
            g = group.upperBound
        }
    }

    /// Rows per group in the batched products (see ``matMul(_:_:xStride:count:_:yStride:rows:)``).
    public static let rowGroup = 8
}

extension TensorType {
    /// The ``AVX512Products`` name of a float type.
    @inlinable
    var avx512Floats: AVX512Products.Floats {
        switch self {
        case .f16: return .f16
        case .bf16: return .bf16
        default: return .f32
        }
    }
}

extension WorkerPool {
    /// Y = W·X for `count` vectors, split across the workers by rows.
    public func matMul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int, count: Int,
                       _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        typealias Args = (w: WeightMatrix, x: UnsafePointer<Float>, xStride: Int, count: Int, y: UnsafeMutablePointer<Float>, yStride: Int)
        parallelFor(w.rows, granularity: 16, with: (Args(w, x, xStride, count, y, yStride), self)) { ctx, lo, hi, thread in
            let (a, pool) = ctx.load(as: (Args, WorkerPool).self)
            MatMul.matMul(a.w, a.x, xStride: a.xStride, count: a.count, a.y, yStride: a.yStride, rows: lo..<hi,
                          scratch: pool.scratch(thread), scratchBytes: pool.scratchBytes)
        }
    }
}

extension Dot {
    /// The weight loader of a float type: eight values at column i as floats.
    @usableFromInline typealias FloatWeights = (UnsafeRawPointer, Int) -> SIMD8<Float>

    /// One 16/32-bit float row against four activation vectors (x_i at `x + i*xStride`): each group
    /// of 8 weights is converted once and used four times. `n` must be a multiple of 8.
    @inlinable
    public static func float4(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, xStride: Int, count n: Int, type: TensorType) -> SIMD4<Float> {
        // One loop per type (the type test stays out of the loop).
        switch type {
        case .f16: return float4(w, x, xStride: xStride, count: n) { halfs($0, $1) }
        case .bf16: return float4(w, x, xStride: xStride, count: n) { brains($0, $1) }
        default: return float4(w, x, xStride: xStride, count: n) { $0.loadUnaligned(fromByteOffset: 4 * $1, as: SIMD8<Float>.self) }
        }
    }

    @inlinable @inline(__always)
    static func float4(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, xStride: Int, count n: Int,
                       _ weights: FloatWeights) -> SIMD4<Float> {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        let x1 = x + xStride, x2 = x + 2 * xStride, x3 = x + 3 * xStride
        var i = 0
        while i < n {
            let v = weights(w, i)
            a0.addProduct(v, load8(x, i)); a1.addProduct(v, load8(x1, i))
            a2.addProduct(v, load8(x2, i)); a3.addProduct(v, load8(x3, i))
            i += 8
        }
        return SIMD4(a0.sum(), a1.sum(), a2.sum(), a3.sum())
    }

    /// Two consecutive float rows (`w`, `w + rowBytes`) against four activation vectors: the
    /// prompt tile. Each activation load feeds both rows: 2 conversions and 4 loads per 8 fused
    /// multiply-adds, which the one-row tile needs 5 loads for 4 of.
    @inlinable
    public static func float2x4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>, xStride: Int, count n: Int,
                                type: TensorType) -> (SIMD4<Float>, SIMD4<Float>) {
        switch type {
        case .f16: return float2x4(w, rowBytes: rowBytes, x, xStride: xStride, count: n) { halfs($0, $1) }
        case .bf16: return float2x4(w, rowBytes: rowBytes, x, xStride: xStride, count: n) { brains($0, $1) }
        default: return float2x4(w, rowBytes: rowBytes, x, xStride: xStride, count: n) { $0.loadUnaligned(fromByteOffset: 4 * $1, as: SIMD8<Float>.self) }
        }
    }

    @inlinable @inline(__always)
    static func float2x4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>, xStride: Int, count n: Int,
                         _ weights: FloatWeights) -> (SIMD4<Float>, SIMD4<Float>) {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
        let w1 = w + rowBytes
        let x1 = x + xStride, x2 = x + 2 * xStride, x3 = x + 3 * xStride
        var i = 0
        while i < n {
            let u0 = load8(x, i), u1 = load8(x1, i), u2 = load8(x2, i), u3 = load8(x3, i)
            let v = weights(w, i)
            a0.addProduct(v, u0); a1.addProduct(v, u1); a2.addProduct(v, u2); a3.addProduct(v, u3)
            let z = weights(w1, i)
            b0.addProduct(z, u0); b1.addProduct(z, u1); b2.addProduct(z, u2); b3.addProduct(z, u3)
            i += 8
        }
        return (SIMD4(a0.sum(), a1.sum(), a2.sum(), a3.sum()), SIMD4(b0.sum(), b1.sum(), b2.sum(), b3.sum()))
    }

    /// Four consecutive float rows (`w + k·rowBytes`) against one vector: decoding. Four
    /// independent accumulators; for f16/bf16 the next four rows are prefetched meanwhile.
    @inlinable
    public static func floatRows4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>, count n: Int,
                                  type: TensorType) -> SIMD4<Float> {
        switch type {
        // The prefetch target as a constant per case: passed as a value, the loop tests it every
        // 32 columns, and F16 decode measured 0.95× (two same-run A/Bs).
        case .f16 where CPUFeatures.floatDecodePrefetchesIntoL1:
            return floatRows4(w, rowBytes: rowBytes, x, count: n, prefetch: .l1) { halfs($0, $1) }
        case .f16: return floatRows4(w, rowBytes: rowBytes, x, count: n, prefetch: .l2) { halfs($0, $1) }
        case .bf16 where CPUFeatures.floatDecodePrefetchesIntoL1:
            return floatRows4(w, rowBytes: rowBytes, x, count: n, prefetch: .l1) { brains($0, $1) }
        case .bf16: return floatRows4(w, rowBytes: rowBytes, x, count: n, prefetch: .l2) { brains($0, $1) }
        default: return floatRows4(w, rowBytes: rowBytes, x, count: n, prefetch: .none) { $0.loadUnaligned(fromByteOffset: 4 * $1, as: SIMD8<Float>.self) }
        }
    }

    @inlinable @inline(__always)
    static func floatRows4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>, count n: Int, prefetch: RowPrefetch,
                           _ weights: FloatWeights) -> SIMD4<Float> {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        let w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = 4 * rowBytes
        var i = 0
        while i < n {
            if prefetch != .none && i & 31 == 0 {
                // The next four rows, in address order, at twice the pace these four are read
                // (eight lines per 32 columns, so the next group is all requested halfway through
                // this one): one stream of whole lines for the hardware, where a prefetch per row
                // (four scattered streams) measured 0.93×, and none 0.85× (F16 decode on the
                // bench model, an AVX2-only machine). Into L1 or L2 by the CPU (see
                // ``CPUFeatures/floatDecodePrefetchesIntoL1``). The next four are usually this
                // thread's next.
                let ahead = w + next + 16 * i
                if prefetch == .l1 {
                    octet_prefetch(ahead); octet_prefetch(ahead + 64); octet_prefetch(ahead + 128); octet_prefetch(ahead + 192)
                    octet_prefetch(ahead + 256); octet_prefetch(ahead + 320); octet_prefetch(ahead + 384); octet_prefetch(ahead + 448)
                } else {
                    octet_prefetch_l2(ahead); octet_prefetch_l2(ahead + 64); octet_prefetch_l2(ahead + 128); octet_prefetch_l2(ahead + 192)
                    octet_prefetch_l2(ahead + 256); octet_prefetch_l2(ahead + 320); octet_prefetch_l2(ahead + 384); octet_prefetch_l2(ahead + 448)
                }
            }
            let u = load8(x, i)
            a0.addProduct(weights(w, i), u); a1.addProduct(weights(w1, i), u)
            a2.addProduct(weights(w2, i), u); a3.addProduct(weights(w3, i), u)
            i += 8
        }
        return SIMD4(a0.sum(), a1.sum(), a2.sum(), a3.sum())
    }
}

/// Where ``Dot/floatRows4(_:rowBytes:_:count:type:)`` prefetches the next rows.
@usableFromInline enum RowPrefetch { case none, l1, l2 }

extension Dot {
    /// One Q8_0 row against four float activation vectors: each block's 32 weights are converted
    /// once and used four times. Per vector exactly the arithmetic of the one-vector Q8_0 kernel,
    /// so a token's result does not depend on its batch. `n` must be a multiple of 32.
    @inlinable
    public static func q8_0Float4(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, xStride: Int, count n: Int) -> SIMD4<Float> {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var b = w
        var i = 0
        @inline(__always) func term(_ w0: SIMD8<Float>, _ w1: SIMD8<Float>, _ w2: SIMD8<Float>, _ w3: SIMD8<Float>,
                                    _ x: UnsafePointer<Float>) -> SIMD8<Float> {
            var s = w0 * load8(x, i)
            s.addProduct(w1, load8(x, i + 8))
            s.addProduct(w2, load8(x, i + 16))
            s.addProduct(w3, load8(x, i + 24))
            return s
        }
        while i < n {
            let d = SIMD8<Float>(repeating: Float(b.loadUnaligned(as: Float16.self)))
            let w0 = bytesToFloats(b, 2), w1 = bytesToFloats(b, 10), w2 = bytesToFloats(b, 18), w3 = bytesToFloats(b, 26)
            a0.addProduct(term(w0, w1, w2, w3, x), d)
            a1.addProduct(term(w0, w1, w2, w3, x + xStride), d)
            a2.addProduct(term(w0, w1, w2, w3, x + 2 * xStride), d)
            a3.addProduct(term(w0, w1, w2, w3, x + 3 * xStride), d)
            b += 34
            i += 32
        }
        return SIMD4(a0.sum(), a1.sum(), a2.sum(), a3.sum())
    }
}

extension Dot {
    /// Eight signed bytes at `q + i` as floats, element by element: no generic SIMD conversion,
    /// which the compiler leaves as a call in large kernels (LLVM turns this into vpmovsxbd +
    /// vcvtdq2ps). Same values as ``int8s(_:_:)``.
    @inlinable @inline(__always)
    static func bytesToFloats(_ q: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        let p = (q + i).assumingMemoryBound(to: Int8.self)
        return SIMD8<Float>(Float(p[0]), Float(p[1]), Float(p[2]), Float(p[3]), Float(p[4]), Float(p[5]), Float(p[6]), Float(p[7]))
    }
}
