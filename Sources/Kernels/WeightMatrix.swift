/// A zero-copy view of a 2-D weight matrix in a mapped file: `rows` rows of `cols` values of `type`,
/// rows `rowBytes` apart (row-major; `cols` is GGUF's ne0). Computes y = W·x with x of length `cols`
/// and y of length `rows`.
public struct WeightMatrix: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let type: TensorType
    public let cols: Int
    public let rows: Int
    public let rowBytes: Int

    public init(base: UnsafeRawPointer, type: TensorType, cols: Int, rows: Int) {
        self.base = base
        self.type = type
        self.cols = cols
        self.rows = rows
        self.rowBytes = type.rowBytes(cols) ?? 0
    }

    /// Total bytes of the matrix in the file.
    public var byteCount: Int { rows * rowBytes }

    @inlinable @inline(__always)
    public func row(_ r: Int) -> UnsafeRawPointer { base + r * rowBytes }

    /// Rows `range` as a matrix of their own (e.g. one expert of a merged expert tensor).
    public func rows(_ range: Range<Int>) -> WeightMatrix {
        WeightMatrix(base: base + range.lowerBound * rowBytes, type: type, cols: cols, rows: range.count)
    }

    /// Decodes row `r` into `out` (`cols` floats): an embedding lookup.
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        RowCodec.dequantize(row(r), count: cols, as: type, into: out)
    }
}
