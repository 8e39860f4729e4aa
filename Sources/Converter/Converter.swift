import Checkpoint
import GGUF
import Kernels
import Foundation

/// Progress of a running conversion, in source bytes.
public struct ConversionProgress: Sendable {
    public var bytesDone: Int
    public var bytesTotal: Int
    public var tensorName: String
}

/// Quantization error of one tensor against its 16-bit source.
public struct TensorErrorReport: Sendable {
    public var name: String
    public var type: TensorType
    /// Root mean square of (quantized − source).
    public var rmse: Double
    public var maxAbsError: Double
    /// Root mean square of the source values (to read `rmse` relative to it).
    public var sourceRMS: Double
}

/// Streams a checkpoint into one GGUF file: tensors are read from the mapping in row chunks,
/// quantized on every worker, and written at their final offsets. Memory stays bounded by
/// `threads × chunkBytes` of scratch plus the pages of the chunk being read, which are released
/// from the process as soon as each source tensor is done.
public final class Converter {
    public let checkpoint: any Checkpoint
    public let options: ConversionOptions
    public let plan: ConversionPlan
    /// Target bytes of output per worker per chunk.
    public var chunkBytes = 4 << 20

    public init(checkpoint: any Checkpoint, options: ConversionOptions) throws {
        self.checkpoint = checkpoint
        self.options = options
        plan = try ConversionPlan(checkpoint: checkpoint, options: options)
    }

    /// Writes the GGUF to `path` (atomically: a temporary file renamed when complete).
    /// Returns the per-tensor error report when `options.report` is set.
    @discardableResult
    public func run(to path: String, progress: ((ConversionProgress) -> Void)? = nil) throws -> [TensorErrorReport] {
        let layout = plan.layout
        let out = try AtomicOutputFile(path: path, size: layout.fileSize)
        do {
            try out.write(layout.headerBytes(), at: 0)
            let pool = WorkerPool(threads: options.threads)
            var reports: [TensorErrorReport] = []
            var done = 0
            let total = plan.sourceBytes
            for (i, t) in plan.tensors.enumerated() {
                let base = layout.dataOffset + layout.tensors[i].offset
                let r = try convert(t, pool: pool, out: out, at: base)
                if options.report { reports.append(r) }
                done += t.sources.reduce(0) { $0 + $1.byteCount }
                progress?(ConversionProgress(bytesDone: done, bytesTotal: total, tensorName: t.info.name))
            }
            try out.commit()
            return reports
        } catch {
            out.abort()
            throw error
        }
    }

    private struct WorkerState {
        var sumSq = 0.0, sumSrcSq = 0.0, maxAbs = 0.0
        var error: Error?
    }

    private func convert(_ t: PlannedTensor, pool: WorkerPool, out: AtomicOutputFile, at base: Int) throws -> TensorErrorReport {
        let type = t.info.type
        let cols = t.info.shape[0]
        let outRowBytes = type.rowBytes(cols)!
        let rowsPerChunk = max(1, chunkBytes / max(outRowBytes, cols * 4))
        let workers = pool.threads
        var states = [WorkerState](repeating: WorkerState(), count: workers)
        let report = options.report
        try states.withUnsafeMutableBufferPointer { st in
            for (s, src) in t.sources.enumerated() {
                let m = src.matrix
                let sourceBase = base + s * m.rows * outRowBytes
                pool.parallelFor(m.rows, granularity: rowsPerChunk) { (range: Range<Int>, w: Int) in
                    let floats = UnsafeMutablePointer<Float>.allocate(capacity: cols * 2)
                    let buf = UnsafeMutableRawPointer.allocate(byteCount: rowsPerChunk * outRowBytes, alignment: 64)
                    defer { floats.deallocate(); buf.deallocate() }
                    var r0 = range.lowerBound
                    while r0 < range.upperBound && st[w].error == nil {
                        let r1 = min(range.upperBound, r0 + rowsPerChunk)
                        for r in r0..<r1 {
                            m.dequantizeRow(t.sourceRow(r), into: floats)
                            if let c = RowCodec.firstNonFinite(floats, count: cols) {
                                st[w].error = CheckpointError(src.file.path, "\(src.sourceName) holds \(floats[c]) at row \(t.sourceRow(r)), column \(c): the checkpoint is damaged (only finite weights convert)")
                                break
                            }
                            let dst = buf + (r - r0) * outRowBytes
                            RowCodec.quantize(floats, count: cols, as: type, into: dst)
                            if report {
                                let back = floats + cols
                                RowCodec.dequantize(dst, count: cols, as: type, into: back)
                                for i in 0..<cols {
                                    let d = Double(back[i] - floats[i])
                                    st[w].sumSq += d * d
                                    st[w].sumSrcSq += Double(floats[i]) * Double(floats[i])
                                    st[w].maxAbs = max(st[w].maxAbs, abs(d))
                                }
                            }
                        }
                        if st[w].error != nil { break }
                        do { try out.write(buf, count: (r1 - r0) * outRowBytes, at: sourceBase + r0 * outRowBytes) }
                        catch { st[w].error = error }
                        r0 = r1
                    }
                }
                if let e = st.first(where: { $0.error != nil })?.error { throw e }
                // Release the source pages from this process (they stay in the page cache).
                src.file.advise(.dontNeed, src.fileRange)
            }
        }
        let n = Double(t.info.elementCount)
        return TensorErrorReport(name: t.info.name, type: type,
                                 rmse: (states.reduce(0) { $0 + $1.sumSq } / n).squareRoot(),
                                 maxAbsError: states.map(\.maxAbs).max() ?? 0,
                                 sourceRMS: (states.reduce(0) { $0 + $1.sumSrcSq } / n).squareRoot())
    }
}
