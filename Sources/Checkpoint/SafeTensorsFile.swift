import Foundation
import Kernels

/// A `.safetensors` file mapped read-only: an 8-byte little-endian header length, a JSON header
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}}`, then the data. Every entry is
/// checked against the file (offsets inside the data, byte size = shape × dtype size, known dtype).
public final class SafeTensorsFile: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let dtype: TensorType
        /// PyTorch order: outermost dimension first (the reverse of GGUF's).
        public let shape: [Int]
        /// Absolute byte range in the file.
        public let range: Range<Int>
    }

    public let file: MappedFile
    public let entries: [String: Entry]
    public var path: String { file.path }

    public init(path: String) throws {
        do { file = try MappedFile(path: path) } catch let e as MappedFile.Failure { throw CheckpointError(path, e.message) }
        guard file.size >= 8 else { throw CheckpointError(path, "truncated: \(file.size) bytes is too small for a safetensors header") }
        let n = UInt64(littleEndian: file.base.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(file.size - 8) else { throw CheckpointError(path, "header length \(n) is beyond the end of the file (\(file.size) bytes); truncated or not a safetensors file") }
        let headerData = Data(bytes: file.base + 8, count: Int(n))
        let dataStart = 8 + Int(n)
        guard let json = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw CheckpointError(path, "malformed JSON header")
        }
        var out: [String: Entry] = [:]
        for (name, raw) in json where name != "__metadata__" {
            guard let d = raw as? [String: Any], let dt = d["dtype"] as? String,
                  let shapeAny = d["shape"] as? [Any], let offsAny = d["data_offsets"] as? [Any], offsAny.count == 2 else {
                throw CheckpointError(path, "tensor '\(name)': malformed header entry")
            }
            let dtype: TensorType
            switch dt {
            case "BF16": dtype = .bf16
            case "F16": dtype = .f16
            case "F32": dtype = .f32
            default: throw CheckpointError(path, "tensor '\(name)': unsupported dtype \(dt) (Octet reads BF16, F16, F32)")
            }
            let shape = shapeAny.compactMap { ($0 as? NSNumber)?.intValue }
            let offs = offsAny.compactMap { ($0 as? NSNumber)?.intValue }
            guard shape.count == shapeAny.count, shape.allSatisfy({ $0 >= 0 }), offs.count == 2 else {
                throw CheckpointError(path, "tensor '\(name)': malformed shape or offsets")
            }
            let begin = offs[0], end = offs[1]
            guard begin >= 0, end >= begin, end <= file.size - dataStart else {
                throw CheckpointError(path, "tensor '\(name)': data offsets \(begin)…\(end) lie outside the file (data section is \(file.size - dataStart) bytes); truncated?")
            }
            let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            guard count * dtype.blockBytes == end - begin else {
                throw CheckpointError(path, "tensor '\(name)': shape \(shape) of \(dt) needs \(count * dtype.blockBytes) bytes but the offsets give \(end - begin)")
            }
            out[name] = Entry(name: name, dtype: dtype, shape: shape, range: (dataStart + begin)..<(dataStart + end))
        }
        entries = out
    }

    public func pointer(_ e: Entry) -> UnsafeRawPointer { file.base + e.range.lowerBound }
}
