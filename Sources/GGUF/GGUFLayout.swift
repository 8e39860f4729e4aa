import Kernels

/// The complete layout of a GGUF v3 file about to be written: metadata, tensor infos with their
/// data offsets, and the header bytes. Tensor data can then be written at
/// `dataOffset + tensor.offset` in any order (see ``AtomicOutputFile``).
public struct GGUFLayout: Sendable {
    public private(set) var metadata: [(key: String, value: GGUFValue)]
    public private(set) var tensors: [GGUFTensorInfo]
    public let alignment: Int
    public let dataOffset: Int
    public let fileSize: Int

    /// - Parameters:
    ///   - alignment: data alignment; Octet writes 4096 so every tensor starts on a page.
    ///   - tensors: in file order; their `offset` fields are ignored and recomputed.
    public init(metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorInfo], alignment: Int = 4096) throws {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0)
        var md = metadata.filter { $0.key != "general.alignment" }
        md.insert(("general.alignment", .uint32(UInt32(alignment))), at: md.firstIndex { !$0.key.hasPrefix("general.architecture") } ?? md.count)
        self.metadata = md
        self.alignment = alignment
        var placed: [GGUFTensorInfo] = []
        var cursor = 0
        for var t in tensors {
            guard let bytes = t.byteCount else {
                throw GGUFError(t.name, "row length \(t.shape[0]) is not a multiple of \(t.type.name) block size \(t.type.blockSize)")
            }
            t.offset = cursor
            cursor = (cursor + bytes + alignment - 1) / alignment * alignment
            placed.append(t)
        }
        self.tensors = placed
        let headerSize = GGUFLayout.encodeHeader(metadata: md, tensors: placed).count
        dataOffset = (headerSize + alignment - 1) / alignment * alignment
        let last = placed.last.map { $0.offset + ($0.byteCount ?? 0) } ?? 0
        fileSize = dataOffset + last
    }

    /// Header bytes, zero-padded to `dataOffset`.
    public func headerBytes() -> [UInt8] {
        var h = GGUFLayout.encodeHeader(metadata: metadata, tensors: tensors)
        h.append(contentsOf: repeatElement(0, count: dataOffset - h.count))
        return h
    }

    /// Absolute file offset of a tensor's data.
    public func absoluteOffset(of name: String) -> Int? {
        tensors.first { $0.name == name }.map { dataOffset + $0.offset }
    }

    static func encodeHeader(metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorInfo]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(GGUFFile.magic)
        w.u32(3)
        w.u64(UInt64(tensors.count))
        w.u64(UInt64(metadata.count))
        for (k, v) in metadata {
            w.string(k)
            w.u32(v.type.rawValue)
            w.value(v)
        }
        for t in tensors {
            w.string(t.name)
            w.u32(UInt32(t.shape.count))
            for d in t.shape { w.u64(UInt64(d)) }
            w.u32(t.type.rawValue)
            w.u64(UInt64(t.offset))
        }
        return w.bytes
    }
}

struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func int<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { int(v) }
    mutating func u64(_ v: UInt64) { int(v) }
    mutating func string(_ s: String) { let u = Array(s.utf8); u64(UInt64(u.count)); bytes.append(contentsOf: u) }
    mutating func value(_ v: GGUFValue) {
        switch v {
        case .uint8(let x): int(x)
        case .int8(let x): int(x)
        case .uint16(let x): int(x)
        case .int16(let x): int(x)
        case .uint32(let x): int(x)
        case .int32(let x): int(x)
        case .float32(let x): int(x.bitPattern)
        case .bool(let x): int(UInt8(x ? 1 : 0))
        case .string(let s): string(s)
        case .uint64(let x): int(x)
        case .int64(let x): int(x)
        case .float64(let x): int(x.bitPattern)
        case .array(let et, let items):
            u32(et.rawValue)
            u64(UInt64(items.count))
            for i in items { value(i) }
        }
    }
}
