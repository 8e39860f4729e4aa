/// Matrix products over mapped weights, split by rows across a ``WorkerPool``.
public enum MatMul {
    /// y[r] = W[r]·x for r in `rows` (single thread; the caller splits work).
    @inlinable
    public static func matVec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
        for r in rows { y[r] = Dot.dot(w.row(r), x, count: w.cols, type: w.type) }
    }

    /// Batched: for each of `count` activation vectors (x_t at `x + t*xStride`), y_t[r] = W[r]·x_t
    /// with y_t at `y + t*yStride`, for r in `rows`. Each weight row is read once from memory and
    /// reused from L1 across the batch.
    @inlinable
    public static func matMul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int, count: Int,
                              _ y: UnsafeMutablePointer<Float>, yStride: Int, rows: Range<Int>) {
        let tiled = (w.type == .f16 || w.type == .bf16 || w.type == .f32) && w.cols % 32 == 0
        let tiledQ8 = w.type == .q8_0 && w.cols % 32 == 0
        // Rows in groups of `rowGroup`, tiles of four vectors inside: a tile's activations are
        // read from far memory once per group instead of once per row, and the group's weight
        // rows stay in L2 across the tiles. Every (row, vector) value is computed by the same
        // kernel as without grouping.
        var g = rows.lowerBound
        while g < rows.upperBound {
            let group = g..<min(g + MatMul.rowGroup, rows.upperBound)
            var t = 0
            if tiledQ8 || tiled {
                while t + 4 <= count {
                    for r in group {
                        let row = w.row(r)
                        let v = tiledQ8 ? Dot.q8_0Float4(row, x + t * xStride, xStride: xStride, count: w.cols)
                                        : Dot.float4(row, x + t * xStride, xStride: xStride, count: w.cols, type: w.type)
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

extension WorkerPool {
    /// y = W·x over all rows, split across the workers.
    public func matVec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        parallelFor(w.rows, granularity: 16, with: (w, x, y)) { ctx, lo, hi, _ in
            let (w, x, y) = ctx.load(as: (WeightMatrix, UnsafePointer<Float>, UnsafeMutablePointer<Float>).self)
            MatMul.matVec(w, x, y, rows: lo..<hi)
        }
    }

    /// Y = W·X for `count` vectors, split across the workers by rows.
    public func matMul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int, count: Int,
                       _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        if count == 1 { matVec(w, x, y); return }
        typealias Args = (w: WeightMatrix, x: UnsafePointer<Float>, xStride: Int, count: Int, y: UnsafeMutablePointer<Float>, yStride: Int)
        parallelFor(w.rows, granularity: 16, with: Args(w, x, xStride, count, y, yStride)) { ctx, lo, hi, _ in
            let a = ctx.load(as: Args.self)
            MatMul.matMul(a.w, a.x, xStride: a.xStride, count: a.count, a.y, yStride: a.yStride, rows: lo..<hi)
        }
    }
}

extension Dot {
    /// One 16/32-bit float row against four activation vectors (x_i at `x + i*xStride`): each group
    /// of 8 weights is converted once and used four times. `n` must be a multiple of 16.
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
                       _ weights: (UnsafeRawPointer, Int) -> SIMD8<Float>) -> SIMD4<Float> {
        // Per vector, even groups of 8 into e, odd ones into o, summed as (e + o): the order of
        // the one-vector kernels, so a token's result does not depend on its batch.
        var e0 = SIMD8<Float>(), e1 = SIMD8<Float>(), e2 = SIMD8<Float>(), e3 = SIMD8<Float>()
        var o0 = SIMD8<Float>(), o1 = SIMD8<Float>(), o2 = SIMD8<Float>(), o3 = SIMD8<Float>()
        let x1 = x + xStride, x2 = x + 2 * xStride, x3 = x + 3 * xStride
        var i = 0
        while i < n {
            let we = weights(w, i), wo = weights(w, i + 8)
            e0.addProduct(we, load8(x, i)); e1.addProduct(we, load8(x1, i))
            e2.addProduct(we, load8(x2, i)); e3.addProduct(we, load8(x3, i))
            o0.addProduct(wo, load8(x, i + 8)); o1.addProduct(wo, load8(x1, i + 8))
            o2.addProduct(wo, load8(x2, i + 8)); o3.addProduct(wo, load8(x3, i + 8))
            i += 16
        }
        return SIMD4((e0 + o0).sum(), (e1 + o1).sum(), (e2 + o2).sum(), (e3 + o3).sum())
    }
}

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
