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
        for r in rows {
            let row = w.row(r)
            for t in 0..<count {
                y[t * yStride + r] = Dot.dot(row, x + t * xStride, count: w.cols, type: w.type)
            }
        }
    }
}

extension WorkerPool {
    /// y = W·x over all rows, split across the workers.
    public func matVec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        parallelFor(w.rows, granularity: 16) { MatMul.matVec(w, x, y, rows: $0) }
    }

    /// Y = W·X for `count` vectors, split across the workers by rows.
    public func matMul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int, count: Int,
                       _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        if count == 1 { matVec(w, x, y); return }
        parallelFor(w.rows, granularity: 16) {
            MatMul.matMul(w, x, xStride: xStride, count: count, y, yStride: yStride, rows: $0)
        }
    }
}
