import Kernels

/// A GGUF v2/v3 file mapped read-only. Every count, length, offset and size is checked against the
/// file before it is used; tensors are handed out as zero-copy views into the mapping.
public final class GGUFFile: @unchecked Sendable {
    public static let magic: UInt32 = 0x4655_4747  // "GGUF" little-endian
    public static let defaultAlignment = 32

    public let file: MappedFile
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    private let metadataIndex: [String: Int]
    private let tensorIndex: [String: Int]

    public var path: String { file.path }

    public convenience init(path: String) throws {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let e as MappedFile.Failure { throw GGUFError(path, e.message) }
        try self.init(file: file)
    }

    public init(file: MappedFile) throws {
        self.file = file
        var r = ByteReader(base: file.base, size: file.size, path: file.path)
        guard file.size >= 24 else { throw GGUFError(file.path, "too small for a GGUF header (\(file.size) bytes)") }
        guard try r.u32() == GGUFFile.magic else { throw GGUFError(file.path, "not a GGUF file (bad magic)") }
        version = try r.u32()
        guard version == 2 || version == 3 else { throw GGUFError(file.path, "unsupported GGUF version \(version) (expected 3)") }
        let tensorCount = try r.u64(), kvCount = try r.u64()
        // Each KV takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8 + 4 + 4 + 8.
        guard kvCount <= UInt64(file.size / 13) else { throw GGUFError(file.path, "metadata count \(kvCount) is impossible for a \(file.size)-byte file") }
        guard tensorCount <= UInt64(file.size / 24) else { throw GGUFError(file.path, "tensor count \(tensorCount) is impossible for a \(file.size)-byte file") }

        var md: [(key: String, value: GGUFValue)] = []
        var mdIndex: [String: Int] = [:]
        for _ in 0..<Int(kvCount) {
            let key = try r.string()
            guard mdIndex[key] == nil else { throw GGUFError(file.path, "duplicate metadata key '\(key)'") }
            let rawType = try r.u32()
            guard let type = GGUFValueType(rawValue: rawType) else { throw GGUFError(file.path, "metadata '\(key)': unknown value type \(rawType)") }
            let value: GGUFValue
            do { value = try r.value(type, depth: 0) } catch let e as GGUFError { throw GGUFError(file.path, "metadata '\(key)': \(e.message)") }
            mdIndex[key] = md.count
            md.append((key, value))
        }
        metadata = md
        metadataIndex = mdIndex

        var align = GGUFFile.defaultAlignment
        if let a = mdIndex["general.alignment"].map({ md[$0].value }) {
            guard let v = a.int, v > 0, v & (v - 1) == 0, v <= 1 << 20 else { throw GGUFError(file.path, "general.alignment must be a power of two, got \(a)") }
            align = v
        }
        alignment = align

        var infos: [GGUFTensorInfo] = []
        var tIndex: [String: Int] = [:]
        for _ in 0..<Int(tensorCount) {
            let name = try r.string()
            guard tIndex[name] == nil else { throw GGUFError(file.path, "duplicate tensor '\(name)'") }
            let nDims = try r.u32()
            guard (1...4).contains(nDims) else { throw GGUFError(file.path, "tensor '\(name)': \(nDims) dimensions (1…4 allowed)") }
            var shape: [Int] = []
            for _ in 0..<nDims {
                let d = try r.u64()
                guard d > 0, d <= 1 << 40 else { throw GGUFError(file.path, "tensor '\(name)': bad dimension \(d)") }
                shape.append(Int(d))
            }
            let rawType = try r.u32()
            guard let type = TensorType(rawValue: rawType) else {
                throw GGUFError(file.path, "tensor '\(name)': unsupported tensor type id \(rawType) (Octet reads F32, F16, BF16, Q8_0, FP8_E4M3)")
            }
            let offset = try r.u64()
            guard offset <= UInt64(file.size) else { throw GGUFError(file.path, "tensor '\(name)': offset \(offset) beyond the end of the file") }
            let info = GGUFTensorInfo(name: name, shape: shape, type: type, offset: Int(offset))
            tIndex[name] = infos.count
            infos.append(info)
        }
        let headerEnd = r.offset
        dataOffset = (headerEnd + align - 1) / align * align
        for t in infos {
            guard let bytes = t.byteCount else {
                throw GGUFError(file.path, "tensor '\(t.name)': row length \(t.shape[0]) is not a multiple of \(t.type.name)'s block size \(t.type.blockSize)")
            }
            guard t.offset % align == 0 else { throw GGUFError(file.path, "tensor '\(t.name)': offset \(t.offset) is not aligned to \(align)") }
            let (end, overflow) = (dataOffset + t.offset).addingReportingOverflow(bytes)
            guard !overflow, end <= file.size else {
                throw GGUFError(file.path, "tensor '\(t.name)': data (\(bytes) bytes at \(dataOffset + t.offset)) runs past the end of the file (\(file.size) bytes); truncated?")
            }
        }
        tensors = infos
        tensorIndex = tIndex
    }

    public subscript(key: String) -> GGUFValue? { metadataIndex[key].map { metadata[$0].value } }

    public func tensorInfo(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// Absolute byte range of a tensor's data in the file.
    public func byteRange(of t: GGUFTensorInfo) -> Range<Int> {
        let start = dataOffset + t.offset
        return start..<(start + (t.byteCount ?? 0))
    }

    /// Pointer to a tensor's data (zero-copy).
    public func data(of t: GGUFTensorInfo) -> UnsafeRawPointer { file.base + dataOffset + t.offset }

    /// A 2-D (or higher, rows flattened) view of tensor `name`.
    public func matrix(_ name: String) -> WeightMatrix? {
        guard let t = tensorInfo(name) else { return nil }
        return WeightMatrix(base: data(of: t), type: t.type, cols: t.shape[0], rows: t.rowCount)
    }
}

/// Bounds-checked little-endian cursor over the mapped header.
struct ByteReader {
    let base: UnsafeRawPointer
    let size: Int
    let path: String
    var offset = 0

    mutating func need(_ n: Int) throws {
        guard n >= 0, offset <= size - n else { throw GGUFError(path, "header runs past the end of the file at byte \(offset) (truncated?)") }
    }
    mutating func raw<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    mutating func u32() throws -> UInt32 { try raw(UInt32.self) }
    mutating func u64() throws -> UInt64 { try raw(UInt64.self) }
    mutating func string() throws -> String {
        let n = try u64()
        guard n <= UInt64(size - offset) else { throw GGUFError(path, "string length \(n) at byte \(offset) runs past the end of the file") }
        try need(Int(n))
        let s = String(decoding: UnsafeRawBufferPointer(start: base + offset, count: Int(n)), as: UTF8.self)
        offset += Int(n)
        return s
    }
    mutating func value(_ type: GGUFValueType, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try raw(UInt8.self))
        case .int8: return .int8(try raw(Int8.self))
        case .uint16: return .uint16(try raw(UInt16.self))
        case .int16: return .int16(try raw(Int16.self))
        case .uint32: return .uint32(try raw(UInt32.self))
        case .int32: return .int32(try raw(Int32.self))
        case .float32: return .float32(Float(bitPattern: try raw(UInt32.self)))
        case .bool:
            let b = try raw(UInt8.self)
            guard b <= 1 else { throw GGUFError(path, "bool value \(b) is neither 0 nor 1") }
            return .bool(b == 1)
        case .string: return .string(try string())
        case .uint64: return .uint64(try raw(UInt64.self))
        case .int64: return .int64(try raw(Int64.self))
        case .float64: return .float64(Double(bitPattern: try raw(UInt64.self)))
        case .array:
            guard depth < 4 else { throw GGUFError(path, "arrays nested too deeply") }
            let rawType = try u32()
            guard let et = GGUFValueType(rawValue: rawType) else { throw GGUFError(path, "array of unknown value type \(rawType)") }
            let n = try u64()
            let minSize = UInt64(et.fixedSize ?? 8)
            guard n <= UInt64(size - offset) / minSize else { throw GGUFError(path, "array count \(n) is impossible for the bytes left in the file") }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(n))
            for _ in 0..<Int(n) { items.append(try value(et, depth: depth + 1)) }
            return .array(et, items)
        }
    }
}
