import Foundation
import XCTest
import Checkpoint
import Converter
import Engine
import GGUF
import Kernels

/// Where the test data lives, relative to this file (Tests/EngineTests/ → repository root).
enum TestPaths {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixture = repositoryRoot.appendingPathComponent("Fixtures/tiny-mixtral")
    static let reference = fixture.appendingPathComponent("reference.safetensors")
    static let sharedModels = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/reference/models")
    static let consolidated = sharedModels.appendingPathComponent("tiny-mixtral-consolidated")
    static let f16Sharded = sharedModels.appendingPathComponent("tiny-mixtral-f16-sharded")

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

/// Reads F32 and I32 tensors of a safetensors file (8-byte LE header length, JSON header, data)
/// with Foundation only: reference.safetensors holds types the library reader does not accept.
final class ReferenceFile {
    struct Entry { let dtype: String; let shape: [Int]; let range: Range<Int> }
    let data: Data
    let entries: [String: Entry]

    init(path: String) throws {
        data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        let n = Int(data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        var e: [String: Entry] = [:]
        for (k, v) in header where k != "__metadata__" {
            let d = v as! [String: Any]
            let offs = d["data_offsets"] as! [Int]
            e[k] = Entry(dtype: d["dtype"] as! String, shape: d["shape"] as! [Int], range: (8 + n + offs[0])..<(8 + n + offs[1]))
        }
        entries = e
    }

    func shape(_ name: String) -> [Int] { entries[name]!.shape }

    func floats(_ name: String) -> [Float] {
        let e = entries[name]!
        precondition(e.dtype == "F32", "\(name) is \(e.dtype)")
        let n = e.range.count / 4
        return data.withUnsafeBytes { b in
            [Float](unsafeUninitializedCapacity: n) { out, c in
                for i in 0..<n { out[i] = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: e.range.lowerBound + 4 * i, as: UInt32.self))) }
                c = n
            }
        }
    }

    func ints(_ name: String) -> [Int32] {
        let e = entries[name]!
        precondition(e.dtype == "I32", "\(name) is \(e.dtype)")
        let n = e.range.count / 4
        return data.withUnsafeBytes { b in
            (0..<n).map { Int32(littleEndian: b.loadUnaligned(fromByteOffset: e.range.lowerBound + 4 * $0, as: Int32.self)) }
        }
    }
}

/// One reference prompt: ids, full-sequence logits [seq, vocab], chosen experts [layer, seq, 2].
struct ReferencePrompt {
    let index: Int
    let ids: [Int32]
    let logits: [Float]
    let expertIDs: [Int32]
    var count: Int { ids.count }

    func experts(layer: Int, position: Int) -> [Int] {
        let base = (layer * count + position) * 2
        return [Int(expertIDs[base]), Int(expertIDs[base + 1])]
    }

    static let vocab = 32000, layers = 4

    static let all: [ReferencePrompt] = {
        let f = try! ReferenceFile(path: TestPaths.reference.path)
        return (0..<4).map { i in
            let ids = f.ints("p\(i).input_ids")
            precondition(f.shape("p\(i).logits") == [ids.count, vocab])
            precondition(f.shape("p\(i).expert_ids") == [layers, ids.count, 2])
            return ReferencePrompt(index: i, ids: ids, logits: f.floats("p\(i).logits"), expertIDs: f.ints("p\(i).expert_ids"))
        }
    }()
}

/// GGUF files converted from the fixture once per test process, removed at exit of each class
/// that asks (see `cleanUp`).
enum ConvertedFixture {
    nonisolated(unsafe) static var directory: URL?
    nonisolated(unsafe) static var paths: [String: String] = [:]
    static let lock = NSLock()

    /// `source` (default: the fixture) converted to `type`, once per process.
    static func path(_ type: TensorType, from source: URL = TestPaths.fixture) throws -> String {
        lock.lock(); defer { lock.unlock() }
        let key = "\(source.lastPathComponent)-\(type.name)"
        if let p = paths[key] { return p }
        if directory == nil { directory = try makeTemporaryDirectory("engine-tests") }
        let p = directory!.appendingPathComponent("\(key).gguf").path
        var options = ConversionOptions()
        options.type = type
        options.threads = 2
        try Converter(checkpoint: try openCheckpoint(source.path), options: options).run(to: p)
        paths[key] = p
        return p
    }

    static func cleanUp() {
        lock.lock(); defer { lock.unlock() }
        if let d = directory { try? FileManager.default.removeItem(at: d) }
        directory = nil
        paths = [:]
    }
}

/// Runs `ids` as one batch with every row of logits, returning [seq × vocab] and the expert trace.
func runBatch(_ t: Transformer, _ ids: [Int32]) throws -> (logits: [Float], trace: [[ExpertChoice]]) {
    t.reset()
    t.traceExperts = true
    try ids.withUnsafeBufferPointer { try t.forward($0, logits: .all) }
    let n = ids.count * t.config.nVocab
    return (Array(UnsafeBufferPointer(start: t.logits, count: n)), t.expertTrace)
}

/// Runs `ids` as one batch, returning the last position's logits [vocab] and the expert trace.
func runLast(_ t: Transformer, _ ids: [Int32]) throws -> (logits: [Float], trace: [[ExpertChoice]]) {
    t.reset()
    t.traceExperts = true
    try ids.withUnsafeBufferPointer { try t.forward($0, logits: .last) }
    return (Array(UnsafeBufferPointer(start: t.logits, count: t.config.nVocab)), t.expertTrace)
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in 0..<a.count {
        let d = abs(a[i] - b[i])
        if !(d <= m) { m = d.isNaN ? .infinity : d }
    }
    return m
}

func argmax(_ p: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    for i in 1..<p.count where p[i] > p[best] { best = i }
    return best
}
