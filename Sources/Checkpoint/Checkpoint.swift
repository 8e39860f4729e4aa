import Foundation
import Kernels

/// How the rows of the Q and K projections are ordered for RoPE.
public enum RopeLayout: Sendable {
    /// Pairs (2i, 2i+1) rotate together: Mistral's original weights and GGUF files.
    case interleaved
    /// Pairs (i, i + d/2) rotate together: Hugging Face (transformers' rotate-half) weights.
    case halves
}

/// One 2-D weight (or 1-D norm) in a mapped checkpoint: zero-copy.
public struct CheckpointTensor: @unchecked Sendable {
    /// The name in the checkpoint (for messages).
    public let sourceName: String
    public let file: MappedFile
    public let dtype: TensorType
    /// [rows, cols] in PyTorch order; 1-D tensors are [n].
    public let shape: [Int]
    public let base: UnsafeRawPointer

    public var rows: Int { shape.count == 2 ? shape[0] : 1 }
    public var cols: Int { shape.last ?? 0 }
    public var matrix: WeightMatrix { WeightMatrix(base: base, type: dtype, cols: cols, rows: rows) }
    public var byteCount: Int { rows * cols * dtype.blockBytes }
    /// Absolute byte range in `file`.
    public var fileRange: Range<Int> { let o = base - file.base; return o..<(o + byteCount) }
}

/// A 16-bit checkpoint opened for reading: its configuration and its tensors by role.
///
/// Implementations: ``HuggingFaceCheckpoint`` (config.json + safetensors, classic or fused expert
/// names) and ``ConsolidatedCheckpoint`` (Mistral's params.json + consolidated.safetensors). A
/// reader for `consolidated.00.pth` would be one more conformance; the converter and engine only
/// see this protocol.
public protocol Checkpoint: AnyObject, Sendable {
    var path: String { get }
    var config: ModelConfig { get }
    var ropeLayout: RopeLayout { get }
    /// The tensor for `role`, shape-checked against ``config``.
    func tensor(_ role: TensorRole) throws -> CheckpointTensor
    /// Path of the SentencePiece `tokenizer.model`, if the checkpoint has one.
    var tokenizerModelPath: String? { get }
    /// The Jinja chat template from `tokenizer_config.json`, if any.
    var chatTemplate: String? { get }
    var bosID: Int32 { get }
    var eosID: Int32 { get }
    /// Human-readable name of the layout.
    var layoutName: String { get }
}

extension Checkpoint {
    /// Every role the model needs, in the order GGUF files list them.
    public var allRoles: [TensorRole] {
        var r: [TensorRole] = [.tokenEmbedding]
        for l in 0..<config.nLayers {
            r += [.attnNorm(l), .attnQ(l), .attnK(l), .attnV(l), .attnOutput(l), .ffnNorm(l), .router(l)]
            for e in 0..<config.nExperts { r.append(.expertGate(l, e)) }
            for e in 0..<config.nExperts { r.append(.expertUp(l, e)) }
            for e in 0..<config.nExperts { r.append(.expertDown(l, e)) }
        }
        r += [.outputNorm, .output]
        return r
    }

    /// Opens every tensor once, so a missing or misshapen tensor is reported before any work.
    public func validateAll() throws { for role in allRoles { _ = try tensor(role) } }
}

/// Opens the checkpoint at `path`: a folder (Hugging Face or Mistral consolidated layout) or a
/// single `.safetensors` file whose folder holds `config.json` or `params.json`.
public func openCheckpoint(_ path: String) throws -> any Checkpoint {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw CheckpointError(path, "no such file or folder")
    }
    let folder = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent.nonEmpty ?? "."
    let fm = FileManager.default
    if fm.fileExists(atPath: folder + "/config.json") {
        return try HuggingFaceCheckpoint(folder: folder, singleFile: isDir.boolValue ? nil : path)
    }
    if fm.fileExists(atPath: folder + "/params.json") {
        return try ConsolidatedCheckpoint(folder: folder, singleFile: isDir.boolValue ? nil : path)
    }
    throw CheckpointError(folder, "not a checkpoint folder: neither config.json (Hugging Face) nor params.json (Mistral) is there")
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}

/// Reads a JSON object file with a clear error.
func readJSONObject(_ path: String) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: path) else { throw CheckpointError(path, "cannot read file") }
    guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
        throw CheckpointError(path, "malformed JSON")
    }
    return obj
}

/// Typed access to required and optional JSON config fields.
struct JSONFields {
    let dict: [String: Any]
    let path: String
    func int(_ key: String) throws -> Int {
        guard let v = dict[key] else { throw CheckpointError(path, "missing required field '\(key)'") }
        guard let n = (v as? NSNumber)?.intValue else { throw CheckpointError(path, "field '\(key)' is not a number") }
        return n
    }
    func optInt(_ key: String) -> Int? { (dict[key] as? NSNumber)?.intValue }
    func optDouble(_ key: String) -> Double? { (dict[key] as? NSNumber)?.doubleValue }
    func double(_ key: String) throws -> Double {
        guard let v = dict[key] else { throw CheckpointError(path, "missing required field '\(key)'") }
        guard let n = (v as? NSNumber)?.doubleValue else { throw CheckpointError(path, "field '\(key)' is not a number") }
        return n
    }
    func sub(_ key: String) -> JSONFields? { (dict[key] as? [String: Any]).map { JSONFields(dict: $0, path: path) } }
}

/// Looks tensors up by name across one or more safetensors files and checks their shapes.
final class SafeTensorsSet: @unchecked Sendable {
    let files: [SafeTensorsFile]
    let index: [String: (SafeTensorsFile, SafeTensorsFile.Entry)]

    init(paths: [String]) throws {
        files = try paths.map { try SafeTensorsFile(path: $0) }
        var idx: [String: (SafeTensorsFile, SafeTensorsFile.Entry)] = [:]
        for f in files { for (n, e) in f.entries { idx[n] = (f, e) } }
        index = idx
    }

    func has(_ name: String) -> Bool { index[name] != nil }

    func tensor(_ name: String, role: TensorRole, expected: [Int], folder: String) throws -> CheckpointTensor {
        guard let (f, e) = index[name] else { throw CheckpointError(folder, "missing tensor '\(name)' (\(role))") }
        guard e.shape == expected else {
            throw CheckpointError(f.path, "tensor '\(name)' has shape \(e.shape), expected \(expected) for \(role)")
        }
        return CheckpointTensor(sourceName: name, file: f.file, dtype: e.dtype, shape: e.shape, base: f.pointer(e))
    }

    /// Rows `rows` of matrix `index0` of a 3-D tensor [n, r, c] (a fused expert tensor).
    func slice(_ name: String, role: TensorRole, index0: Int, rows: Range<Int>, expected3D: [Int], folder: String) throws -> CheckpointTensor {
        guard let (f, e) = index[name] else { throw CheckpointError(folder, "missing tensor '\(name)' (\(role))") }
        guard e.shape == expected3D else {
            throw CheckpointError(f.path, "tensor '\(name)' has shape \(e.shape), expected \(expected3D) for \(role)")
        }
        let rowBytes = e.shape[2] * e.dtype.blockBytes
        let start = f.pointer(e) + (index0 * e.shape[1] + rows.lowerBound) * rowBytes
        return CheckpointTensor(sourceName: "\(name)[\(index0)][\(rows.lowerBound)..<\(rows.upperBound)]", file: f.file,
                                dtype: e.dtype, shape: [rows.count, e.shape[2]], base: start)
    }
}
