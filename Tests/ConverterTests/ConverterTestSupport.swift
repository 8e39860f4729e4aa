import Foundation
import XCTest
import Kernels

/// Where the test data lives, relative to this file (Tests/ConverterTests/ → repository root).
enum TestPaths {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixture = repositoryRoot.appendingPathComponent("Fixtures/tiny-mixtral")
    static let sharedModels = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/reference/models")
    static let f16Sharded = sharedModels.appendingPathComponent("tiny-mixtral-f16-sharded")
    static let consolidated = sharedModels.appendingPathComponent("tiny-mixtral-consolidated")

    /// The folder, or an XCTSkip saying it is absent.
    static func require(_ url: URL, _ what: String, marker: String) throws -> URL {
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent(marker).path) else {
            throw XCTSkip("\(what) absent: \(url.path) has no \(marker) (the shared reference models are not on this machine)")
        }
        return url
    }
}

func makeTemporaryDirectory(_ tag: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("octet-\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A minimal independent safetensors reader (8-byte LE header length, JSON header, data), for
/// BF16, F16, F32 and I32 tensors. Written for the tests with Foundation only.
final class SafeTensorsReader {
    struct Entry { let dtype: String; let shape: [Int]; let range: Range<Int> }
    let path: String
    let data: Data
    let entries: [String: Entry]
    /// The header as parsed (for writing modified copies).
    let header: [String: Any]
    let dataStart: Int

    init(path: String) throws {
        self.path = path
        data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        let n = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        dataStart = 8 + Int(n)
        header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart)) as! [String: Any]
        var e: [String: Entry] = [:]
        for (k, v) in header where k != "__metadata__" {
            let d = v as! [String: Any]
            let offs = d["data_offsets"] as! [Int]
            e[k] = Entry(dtype: d["dtype"] as! String, shape: d["shape"] as! [Int], range: (dataStart + offs[0])..<(dataStart + offs[1]))
        }
        entries = e
    }

    func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else { throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(path): no tensor \(name)"]) }
        return e
    }

    /// Raw little-endian 16-bit words of a BF16/F16 tensor.
    func halfWords(_ name: String) throws -> [UInt16] {
        let e = try entry(name)
        precondition(e.dtype == "BF16" || e.dtype == "F16")
        let n = e.range.count / 2
        return data.withUnsafeBytes { b in
            [UInt16](unsafeUninitializedCapacity: n) { out, count in
                let src = b.baseAddress! + e.range.lowerBound
                for i in 0..<n { out[i] = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
                count = n
            }
        }
    }

    func floats(_ name: String) throws -> [Float] {
        let e = try entry(name)
        let width = e.dtype == "F32" ? 4 : 2
        let n = e.range.count / width
        return data.withUnsafeBytes { b in
            [Float](unsafeUninitializedCapacity: n) { out, count in
                let src = b.baseAddress! + e.range.lowerBound
                switch e.dtype {
                case "BF16":
                    for i in 0..<n { out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
                case "F16":
                    for i in 0..<n { out[i] = Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
                case "F32":
                    for i in 0..<n { out[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                default: fatalError("\(name): dtype \(e.dtype) is not a float type")
                }
                count = n
            }
        }
    }

    func ints(_ name: String) throws -> [Int32] {
        let e = try entry(name)
        precondition(e.dtype == "I32")
        return data.withUnsafeBytes { b in
            (0..<(e.range.count / 4)).map { Int32(littleEndian: b.loadUnaligned(fromByteOffset: e.range.lowerBound + 4 * $0, as: Int32.self)) }
        }
    }

    /// Writes a copy with a modified header (the data section unchanged; offsets stay relative to it).
    static func writeCopy(of src: SafeTensorsReader, to path: String, modify: (inout [String: Any]) -> Void) throws {
        var h = src.header
        modify(&h)
        let json = try JSONSerialization.data(withJSONObject: h, options: [.sortedKeys])
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(src.data.subdata(in: src.dataStart..<src.data.count))
        try out.write(to: URL(fileURLWithPath: path))
    }
}

/// The tensors of a Hugging Face checkpoint folder (single file or shards listed in the index).
final class HFSource {
    let readers: [String: SafeTensorsReader]  // tensor name → file
    let dtype: String

    init(folder: URL) throws {
        let index = folder.appendingPathComponent("model.safetensors.index.json")
        var byName: [String: SafeTensorsReader] = [:]
        if FileManager.default.fileExists(atPath: index.path) {
            let j = try JSONSerialization.jsonObject(with: Data(contentsOf: index)) as! [String: Any]
            let map = j["weight_map"] as! [String: String]
            var files: [String: SafeTensorsReader] = [:]
            for f in Set(map.values) { files[f] = try SafeTensorsReader(path: folder.appendingPathComponent(f).path) }
            for (n, f) in map { byName[n] = files[f] }
        } else {
            let r = try SafeTensorsReader(path: folder.appendingPathComponent("model.safetensors").path)
            for n in r.entries.keys { byName[n] = r }
        }
        readers = byName
        dtype = byName["model.embed_tokens.weight"]!.entries["model.embed_tokens.weight"]!.dtype
    }

    func reader(_ name: String) -> SafeTensorsReader { readers[name]! }
}

/// Rows reordered from Hugging Face's rotate-half order to GGUF's interleaved order:
/// GGUF row h·d + 2i + j = HF row h·d + j·d/2 + i.
func permuteQK<T>(_ values: [T], heads: Int, headDim d: Int, cols: Int) -> [T] {
    precondition(values.count == heads * d * cols)
    var out = values
    for h in 0..<heads {
        for i in 0..<(d / 2) {
            for j in 0..<2 {
                let dst = h * d + 2 * i + j, src = h * d + j * (d / 2) + i
                for c in 0..<cols { out[dst * cols + c] = values[src * cols + c] }
            }
        }
    }
    return out
}

/// ggml's reference Q8_0 (quantize_row_q8_0_ref), rewritten: d = amax/127, q = roundf(x/d as x·(1/d)),
/// half away from zero, d stored as f16.
func referenceQ8_0Row(_ x: [Float]) -> [UInt8] {
    let blocks = x.count / 32
    return [UInt8](unsafeUninitializedCapacity: blocks * 34) { out, written in
        for blk in 0..<blocks {
            let b = blk * 32, o = blk * 34
            var amax: Float = 0
            for i in b..<(b + 32) { amax = max(amax, abs(x[i])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            let bits = Float16(d).bitPattern
            out[o] = UInt8(bits & 0xFF); out[o + 1] = UInt8(bits >> 8)
            for i in 0..<32 { out[o + 2 + i] = UInt8(bitPattern: Int8(roundf(x[b + i] * id))) }
        }
        written = blocks * 34
    }
}

/// bfloat16 with round-to-nearest-even, computed by comparing the two neighbours.
func referenceBF16(_ x: Float) -> UInt16 {
    let u = x.bitPattern
    let lo = UInt16(u >> 16)
    if u & 0xFFFF == 0 { return lo }
    let r = u & 0xFFFF
    if r < 0x8000 { return lo }
    if r > 0x8000 { return lo &+ 1 }
    return lo & 1 == 0 ? lo : lo &+ 1
}

/// Little-endian bytes (the host is little-endian: x86-64 / arm64).
func littleEndianBytes(_ words: [UInt16]) -> [UInt8] { words.withUnsafeBytes { Array($0) } }
func littleEndianBytes(_ floats: [Float]) -> [UInt8] { floats.withUnsafeBytes { Array($0) } }

/// Encodes float rows as `type`, independently of the converter (FP8 via the kernel-tested FP8Block).
func referenceEncode(_ x: [Float], as type: TensorType) -> [UInt8] {
    switch type {
    case .f32: return littleEndianBytes(x)
    case .f16:
        return littleEndianBytes([UInt16](unsafeUninitializedCapacity: x.count) { o, n in
            for i in 0..<x.count { o[i] = Float16(x[i]).bitPattern }; n = x.count })
    case .bf16:
        return littleEndianBytes([UInt16](unsafeUninitializedCapacity: x.count) { o, n in
            for i in 0..<x.count { o[i] = referenceBF16(x[i]) }; n = x.count })
    case .q8_0: return referenceQ8_0Row(x)
    case .fp8_e4m3:
        // Two halves in parallel (the suite runs on 2 cores); blocks are independent.
        var out = [UInt8](repeating: 0, count: x.count / 32 * 34)
        let blocks = x.count / 32
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBytes { o in
                let xb = xp.baseAddress!, ob = o.baseAddress!
                DispatchQueue.concurrentPerform(iterations: 2) { part in
                    for b in (part * blocks / 2)..<((part + 1) * blocks / 2) { FP8Block.quantize(xb + 32 * b, into: ob + 34 * b) }
                }
            }
        }
        return out
    }
}

/// First index where two byte arrays differ, for messages.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
    if a.count != b.count { return min(a.count, b.count) }
    return zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset
}
