import Q8_0Kernels
import AVX512Kernels

/// One matrix product of a fused parallel section: y_t = W·x_t for `count` activation vectors,
/// y_t at `y + t*yStride`. The activations are either floats (x_t at `x + t*xStride`) or, for Q8_0
/// weights, 8-bit blocks from a ``QuantizedActivations`` buffer.
///
/// Several products that do not depend on each other (the Q, K and V projections; the gate and up
/// projections of the chosen experts) run as one section with ``WorkerPool/run(_:)``: one wake-up
/// of the workers instead of one per matrix, and one split of all their rows.
public struct LinearTask: @unchecked Sendable {
    public let w: WeightMatrix
    public let count: Int
    public let y: UnsafeMutablePointer<Float>
    public let yStride: Int
    @usableFromInline let x: UnsafePointer<Float>?
    @usableFromInline let xStride: Int
    @usableFromInline let q: UnsafePointer<Int8>?
    @usableFromInline let qd: UnsafePointer<Float>?
    @usableFromInline let qStride: Int

    /// Float activations: `count` vectors of `w.cols` floats, `xStride` apart.
    public init(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int, count: Int,
                _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        self.w = w; self.count = count; self.y = y; self.yStride = yStride
        self.x = x; self.xStride = xStride; q = nil; qd = nil; qStride = 0
    }

    /// Quantized activations (Q8_0 weights only): vectors `first..<first+count` of `xq`, or all
    /// of them when `count` is nil.
    public init(_ w: WeightMatrix, _ xq: QuantizedActivations, first: Int = 0, count: Int? = nil,
                _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        precondition(w.type == .q8_0 && xq.rowLength == w.cols)
        let n = count ?? xq.count
        precondition(first >= 0 && first + n <= xq.count)
        let (q, d) = xq.vector(first)
        self.w = w; self.count = n; self.y = y; self.yStride = yStride
        x = nil; xStride = 0; self.q = q; qd = d; qStride = xq.rowLength
    }

    /// Computes rows `rows` of every vector (single thread; the pool splits the rows). `scratch`
    /// (`scratchBytes` bytes, 64-byte aligned) is the running thread's: the batched Q8_0 path
    /// keeps its group's block scales there.
    @inlinable
    public func run(rows: Range<Int>, scratch: UnsafeMutableRawPointer, scratchBytes: Int) {
        guard let q, let qd else {
            MatMul.matMul(w, x!, xStride: xStride, count: count, y, yStride: yStride, rows: rows,
                          scratch: scratch, scratchBytes: scratchBytes)
            return
        }
        let blocks = w.cols / 32
        // Groups of rows whose scales fit the scratch, with tiles of four vectors inside: a
        // tile's activations are read from far memory once per group.
        let groupRows = max(1, min(MatMul.rowGroup, Q8_0Product<AVX2BlockProducts>.tileRows(scratchBytes: scratchBytes, blocks: blocks)))
        var g = rows.lowerBound
        while g < rows.upperBound {
            let group = g..<min(g + groupRows, rows.upperBound)
            if CPUFeatures.usesAVX512 {
                Q8_0AVX512.product(w.base, rowBytes: w.rowBytes, rows: group, blocks: blocks, q, qd, xStride: qStride,
                                   count: count, y, yStride: yStride, scratch: scratch, scratchBytes: scratchBytes)
            } else if CPUFeatures.q8_0UsesVNNI {
                Q8_0VNNI.product(w.base, rowBytes: w.rowBytes, rows: group, blocks: blocks, q, qd, xStride: qStride,
                                 count: count, y, yStride: yStride, scratch: scratch, scratchBytes: scratchBytes)
            } else {
                Q8_0Product<AVX2BlockProducts>.product(w.base, rowBytes: w.rowBytes, rows: group, blocks: blocks, q, qd,
                                                       xStride: qStride, count: count, y, yStride: yStride,
                                                       scratch: scratch, scratchBytes: scratchBytes)
            }
            g = group.upperBound
        }
    }
}

extension WorkerPool {
    /// Runs independent products as one parallel section: their rows, taken one after another,
    /// are split across the workers. The calling thread first runs `first` (see
    /// ``parallelFor(_:granularity:context:_:first:)``). Allocates nothing.
    public func run(_ tasks: UnsafeBufferPointer<LinearTask>, first: () -> Void = {}) {
        var total = 0
        for t in tasks { total += t.w.rows }
        parallelFor(total, granularity: 16, with: (tasks, self), { ctx, lo, hi, thread in
            let (tasks, pool) = ctx.load(as: (UnsafeBufferPointer<LinearTask>, WorkerPool).self)
            let scratch = pool.scratch(thread), scratchBytes = pool.scratchBytes
            var start = 0
            for task in tasks {
                let end = start + task.w.rows
                let a = max(lo, start), b = min(hi, end)
                if a < b { task.run(rows: (a - start)..<(b - start), scratch: scratch, scratchBytes: scratchBytes) }
                if end >= hi { break }
                start = end
            }
        }, first: first)
    }
}
