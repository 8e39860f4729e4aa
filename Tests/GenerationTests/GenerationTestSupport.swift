import Foundation
import XCTest
import Engine
import Generation
import Kernels
import Tokenizer
import Checkpoint
#if canImport(Converter)
import Converter
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Where the test data lives, relative to this file (Tests/GenerationTests/ → repository root).
enum GenPaths {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixture = repositoryRoot.appendingPathComponent("Fixtures/tiny-mixtral")
    static let referenceTensors = fixture.appendingPathComponent("reference.safetensors")
    static let referenceJSON = fixture.appendingPathComponent("reference.json")
    static let tokenizerModel = fixture.appendingPathComponent("tokenizer.model")
    static let tokenizerConfig = fixture.appendingPathComponent("tokenizer_config.json")
    static let allocShimSource = repositoryRoot.appendingPathComponent("Tools/alloc_count/alloc_count.c")

    /// A fresh directory under the system's temporary directory.
    static func temporaryDirectory(_ tag: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("octet-gen-\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A tiny safetensors reader written for these tests (8-byte little-endian header length, JSON
/// header, raw data), for I32 and F32 tensors only.
struct ReferenceTensors {
    struct Entry { let dtype: String; let shape: [Int]; let range: Range<Int> }
    let data: Data
    let entries: [String: Entry]

    init(path: String) throws {
        data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        guard data.count >= 8 else { throw TestFailure("\(path): too short for safetensors") }
        var n = 0
        for i in 0..<8 { n |= Int(data[data.startIndex + i]) << (8 * i) }
        guard n > 0, 8 + n <= data.count else { throw TestFailure("\(path): bad header length \(n)") }
        guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw TestFailure("\(path): header is not a JSON object")
        }
        var e: [String: Entry] = [:]
        for (k, v) in header where k != "__metadata__" {
            guard let d = v as? [String: Any], let dtype = d["dtype"] as? String, let shape = d["shape"] as? [Int],
                  let offs = d["data_offsets"] as? [Int], offs.count == 2 else { throw TestFailure("\(path): bad entry \(k)") }
            e[k] = Entry(dtype: dtype, shape: shape, range: (8 + n + offs[0])..<(8 + n + offs[1]))
        }
        entries = e
    }

    private func raw(_ name: String, dtype: String) throws -> (Entry, [UInt32]) {
        guard let e = entries[name] else { throw TestFailure("reference.safetensors has no tensor \(name)") }
        guard e.dtype == dtype else { throw TestFailure("\(name) is \(e.dtype), expected \(dtype)") }
        let count = e.range.count / 4
        let words: [UInt32] = data.withUnsafeBytes { b in
            (0..<count).map { UInt32(littleEndian: b.loadUnaligned(fromByteOffset: e.range.lowerBound + 4 * $0, as: UInt32.self)) }
        }
        return (e, words)
    }

    func int32s(_ name: String) throws -> [Int32] { try raw(name, dtype: "I32").1.map { Int32(bitPattern: $0) } }
    func floats(_ name: String) throws -> [Float] { try raw(name, dtype: "F32").1.map { Float(bitPattern: $0) } }
}

/// The reference prompts: ids, greedy continuation (tensors) and texts (JSON).
struct ReferencePrompt {
    let index: Int
    let name: String
    let text: String
    let inputIDs: [Int32]
    let generatedIDs: [Int32]
    let generatedText: String
}

enum Reference {
    static func prompts() throws -> [ReferencePrompt] {
        let tensors = try ReferenceTensors(path: GenPaths.referenceTensors.path)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: GenPaths.referenceJSON)) as! [String: Any]
        let list = json["prompts"] as! [[String: Any]]
        return try list.map { p in
            let i = p["index"] as! Int
            return ReferencePrompt(index: i, name: p["name"] as! String, text: (p["text"] ?? p["chat_template_text"]) as? String ?? "",
                                   inputIDs: try tensors.int32s("p\(i).input_ids"),
                                   generatedIDs: try tensors.int32s("p\(i).generated_ids"),
                                   generatedText: p["generated_text"] as? String ?? "")
        }
    }
}

/// Models shared by the tests of one process (loading maps files; converting takes a moment).
enum Shared {
    static let pool = WorkerPool(threads: min(2, WorkerPool.onlineCPUs))

    private static let lock = NSLock()
    nonisolated(unsafe) private static var fixtureModel: Model?
    nonisolated(unsafe) private static var converted: [TensorType: Model] = [:]
    nonisolated(unsafe) private static var convertedDir: URL?

    /// The 16-bit checkpoint folder, read directly.
    static func fixture() throws -> Model {
        lock.lock(); defer { lock.unlock() }
        if let m = fixtureModel { return m }
        let m = try Model(path: GenPaths.fixture.path)
        fixtureModel = m
        return m
    }

    /// The fixture converted to a BF16 GGUF (once per process).
    static func bf16GGUF() throws -> Model { try gguf(.bf16) }

    /// The fixture converted to a GGUF of `type` (once per process and type).
    static func gguf(_ type: TensorType) throws -> Model {
        lock.lock(); defer { lock.unlock() }
        if let m = converted[type] { return m }
        let dir: URL
        if let d = convertedDir { dir = d } else {
            dir = try GenPaths.temporaryDirectory("gguf")
            convertedDir = dir
            atexit { Shared.removeTemporaryFiles() }
        }
        let out = dir.appendingPathComponent("tiny-\(type.name).gguf").path
        try convert(GenPaths.fixture.path, out, type)
        let m = try Model(path: out)
        converted[type] = m
        return m
    }

    static func removeTemporaryFiles() {
        lock.lock(); defer { lock.unlock() }
        if let d = convertedDir { try? FileManager.default.removeItem(at: d) }
        convertedDir = nil
        converted = [:]
    }

    /// Converts with the Converter module when the test target can import it, else with the
    /// `octet` binary built beside the test bundle; throws XCTSkip when neither is available.
    private static func convert(_ source: String, _ output: String, _ type: TensorType) throws {
        #if canImport(Converter)
        var options = ConversionOptions()
        options.type = type
        options.threads = min(2, WorkerPool.onlineCPUs)
        let converter = try Converter(checkpoint: try openCheckpoint(source), options: options)
        _ = try converter.run(to: output)
        #else
        guard let octet = builtBinary("octet") else {
            throw XCTSkip("GGUF \(type.name): the test target cannot import Converter and no built `octet` binary was found beside the test bundle")
        }
        let r = try runProcess(octet, ["convert", source, "-o", output, "--type", type.name.lowercased(), "--threads", "2"])
        guard r.status == 0 else { throw TestFailure("octet convert failed (\(r.status)): \(r.stderr)") }
        #endif
    }
}

/// A product of this package's build, beside the running test bundle (…/debug/octet).
func builtBinary(_ name: String) -> String? {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}

struct ProcessResult { let status: Int32; let stdout: String; let stderr: String }

/// Runs a program to completion, capturing its output.
func runProcess(_ path: String, _ args: [String], environment: [String: String]? = nil) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    // Read both pipes to the end before waiting, so a chatty child never blocks on a full pipe.
    final class Box: @unchecked Sendable { var data = Data() }
    let errData = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData.data, as: UTF8.self))
}

/// The fixture's tokenizer, without loading the model.
func fixtureTokenizer() throws -> Tokenizer {
    try Tokenizer(sentencePieceModel: Array(Data(contentsOf: GenPaths.tokenizerModel)))
}

/// A greedy session on `model` with an F32 KV cache (the reference's precision).
func greedySession(_ model: Model, contextLength: Int? = 1024) throws -> Session {
    try Session(model: model, pool: Shared.pool, kvType: .f32, contextLength: contextLength, sampling: .greedy)
}
