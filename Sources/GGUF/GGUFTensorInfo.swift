import Kernels

/// One tensor's entry in a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    /// Dimensions as GGUF stores them: `shape[0]` (ne0) is the row length.
    public var shape: [Int]
    public var type: TensorType
    /// Offset of the data, relative to the start of the data section.
    public var offset: Int

    public init(name: String, shape: [Int], type: TensorType, offset: Int = 0) {
        self.name = name; self.shape = shape; self.type = type; self.offset = offset
    }

    public var elementCount: Int { shape.reduce(1, *) }
    /// Number of rows (product of every dimension but the first).
    public var rowCount: Int { shape.dropFirst().reduce(1, *) }
    /// Bytes of the data, or nil when ne0 is not a whole number of blocks.
    public var byteCount: Int? { type.rowBytes(shape.first ?? 0).map { $0 * rowCount } }
}
