import Foundation
import XCTest
import Checkpoint
import Converter
import GGUF
import Kernels

/// Damaged copies of the tiny-mixtral checkpoint: conversion must fail with an error naming the
/// file and the problem, and leave neither the output nor a temporary file behind.
final class CorruptCheckpointTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory("corrupt-checkpoint") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A writable copy of the fixture folder (the originals are read-only), minus the reference data.
    func copyFixture() throws -> URL {
        let copy = dir.appendingPathComponent("tiny-mixtral")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"] {
            let data = try Data(contentsOf: TestPaths.fixture.appendingPathComponent(f))
            try data.write(to: copy.appendingPathComponent(f))
        }
        return copy
    }

    var modelPath: String { dir.appendingPathComponent("tiny-mixtral/model.safetensors").path }
    var configPath: String { dir.appendingPathComponent("tiny-mixtral/config.json").path }

    /// Rewrites model.safetensors with a modified JSON header.
    func patchHeader(_ modify: (inout [String: Any]) -> Void) throws {
        let original = try SafeTensorsReader(path: TestPaths.fixture.appendingPathComponent("model.safetensors").path)
        try SafeTensorsReader.writeCopy(of: original, to: modelPath, modify: modify)
    }

    func patchConfig(_ modify: (inout [String: Any]) -> Void) throws {
        var j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        modify(&j)
        try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: configPath))
    }

    func assertConversionFails(_ folder: URL, naming file: String, _ phrases: [String],
                               sourceFile: StaticString = #filePath, line: UInt = #line) {
        let out = dir.appendingPathComponent("out.gguf")
        do {
            var options = ConversionOptions()
            options.type = .q8_0
            options.threads = 2
            let converter = try Converter(checkpoint: try openCheckpoint(folder.path), options: options)
            try converter.run(to: out.path)
            XCTFail("conversion succeeded; expected an error about \(phrases)", file: sourceFile, line: line)
        } catch {
            let d = "\(error)"
            XCTAssertTrue(d.contains(file), "error does not name \(file): \(d)", file: sourceFile, line: line)
            for p in phrases { XCTAssertTrue(d.contains(p), "error does not say '\(p)': \(d)", file: sourceFile, line: line) }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "output exists after a failed conversion", file: sourceFile, line: line)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        XCTAssertFalse(left.contains { $0.hasPrefix(".out.gguf.partial-") }, "temporary file left: \(left)", file: sourceFile, line: line)
    }

    func testCopyOfFixtureConverts() throws {
        // The control: the unmodified copy converts, so the failures below are due to the damage.
        let folder = try copyFixture()
        let out = dir.appendingPathComponent("ok.gguf")
        var options = ConversionOptions()
        options.type = .bf16
        try Converter(checkpoint: try openCheckpoint(folder.path), options: options).run(to: out.path)
        XCTAssertEqual(try GGUFFile(path: out.path).tensors.count, 43)
    }

    func testNaNWeightIsRefused() throws {
        // A bf16 NaN (0x7FC0) in the middle of the tensor data: quantizing it would write garbage.
        let folder = try copyFixture()
        var data = try Data(contentsOf: URL(fileURLWithPath: modelPath))
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let dataStart = 8 + headerLength
        let at = dataStart + ((data.count - dataStart) / 2) & ~1
        data[at] = 0xC0; data[at + 1] = 0x7F
        try data.write(to: URL(fileURLWithPath: modelPath))
        assertConversionFails(folder, naming: modelPath, ["nan", "damaged", "row", "column"])
    }

    func testTruncatedSafetensors() throws {
        let folder = try copyFixture()
        let data = try Data(contentsOf: URL(fileURLWithPath: modelPath))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: modelPath))
        assertConversionFails(folder, naming: modelPath, ["outside the file", "truncated"])
    }

    func testTruncatedByOneByte() throws {
        let folder = try copyFixture()
        let data = try Data(contentsOf: URL(fileURLWithPath: modelPath))
        try data.dropLast().write(to: URL(fileURLWithPath: modelPath))
        assertConversionFails(folder, naming: modelPath, ["outside the file"])
    }

    func testHeaderLengthBeyondFile() throws {
        let folder = try copyFixture()
        var data = try Data(contentsOf: URL(fileURLWithPath: modelPath))
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { data.replaceSubrange(0..<8, with: $0) }
        try data.write(to: URL(fileURLWithPath: modelPath))
        assertConversionFails(folder, naming: modelPath, ["header length \(data.count)", "beyond the end of the file"])
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: modelPath))
        assertConversionFails(folder, naming: modelPath, ["too small"])
    }

    func testDataOffsetsOutsideFile() throws {
        let folder = try copyFixture()
        let size = try FileManager.default.attributesOfItem(atPath: TestPaths.fixture.appendingPathComponent("model.safetensors").path)[.size] as! Int
        try patchHeader { h in
            var e = h["model.norm.weight"] as! [String: Any]
            e["data_offsets"] = [size, size + 256]
            h["model.norm.weight"] = e
        }
        assertConversionFails(folder, naming: modelPath, ["model.norm.weight", "outside the file"])
        try patchHeader { h in
            var e = h["model.norm.weight"] as! [String: Any]
            e["data_offsets"] = [300, 44]  // end before begin
            h["model.norm.weight"] = e
        }
        assertConversionFails(folder, naming: modelPath, ["model.norm.weight", "outside the file"])
    }

    func testShapeDisagreesWithByteSize() throws {
        let folder = try copyFixture()
        try patchHeader { h in
            var e = h["model.norm.weight"] as! [String: Any]
            e["shape"] = [64]  // 128 bytes, but the offsets span 256
            h["model.norm.weight"] = e
        }
        assertConversionFails(folder, naming: modelPath, ["model.norm.weight", "needs 128 bytes", "256"])
    }

    func testShapeDisagreesWithConfig() throws {
        // Consistent within the file but not with config.json: [8, 256] instead of [32, 128] (same bytes).
        let folder = try copyFixture()
        try patchHeader { h in
            var e = h["model.layers.1.self_attn.k_proj.weight"] as! [String: Any]
            e["shape"] = [16, 256]
            h["model.layers.1.self_attn.k_proj.weight"] = e
        }
        assertConversionFails(folder, naming: modelPath, ["model.layers.1.self_attn.k_proj.weight", "[16, 256]", "[32, 128]"])
    }

    func testMissingTensor() throws {
        let folder = try copyFixture()
        try patchHeader { h in h["model.layers.2.block_sparse_moe.experts.5.w2.weight"] = nil }
        // A missing tensor is a property of the checkpoint folder: the error names the folder.
        assertConversionFails(folder, naming: folder.path, ["missing tensor", "model.layers.2.block_sparse_moe.experts.5.w2.weight"])
    }

    func testMissingGateTensor() throws {
        let folder = try copyFixture()
        try patchHeader { h in h["model.layers.1.block_sparse_moe.experts.3.w1.weight"] = nil }
        assertConversionFails(folder, naming: folder.path, ["missing tensor", "model.layers.1.block_sparse_moe.experts.3.w1.weight"])
    }

    func testUnknownDtype() throws {
        let folder = try copyFixture()
        try patchHeader { h in
            var e = h["model.layers.0.input_layernorm.weight"] as! [String: Any]
            e["dtype"] = "F64"
            h["model.layers.0.input_layernorm.weight"] = e
        }
        assertConversionFails(folder, naming: modelPath, ["model.layers.0.input_layernorm.weight", "unsupported dtype F64"])
    }

    func testMalformedHeaderJSON() throws {
        let folder = try copyFixture()
        var data = try Data(contentsOf: URL(fileURLWithPath: modelPath))
        data[8] = UInt8(ascii: "[")  // header no longer an object
        data[9] = UInt8(ascii: "}")
        try data.write(to: URL(fileURLWithPath: modelPath))
        assertConversionFails(folder, naming: modelPath, ["malformed"])
    }

    func testMalformedConfigJSON() throws {
        let folder = try copyFixture()
        try Data("{\"hidden_size\": 128, \"num_attention_heads\": ".utf8).write(to: URL(fileURLWithPath: configPath))
        assertConversionFails(folder, naming: configPath, ["malformed JSON"])
    }

    func testMissingRequiredConfigField() throws {
        let folder = try copyFixture()
        try patchConfig { $0["num_local_experts"] = nil }
        assertConversionFails(folder, naming: configPath, ["num_local_experts"])
    }

    func testNonNumericConfigField() throws {
        let folder = try copyFixture()
        try patchConfig { $0["num_hidden_layers"] = "four" }
        assertConversionFails(folder, naming: configPath, ["num_hidden_layers", "not a number"])
    }

    func testInconsistentConfig() throws {
        let folder = try copyFixture()
        try patchConfig { $0["num_experts_per_tok"] = 9 }
        assertConversionFails(folder, naming: configPath, ["9 of 8 experts"])
    }

    func testMissingShard() throws {
        let src = try TestPaths.require(TestPaths.f16Sharded, "tiny-mixtral-f16-sharded", marker: "model.safetensors.index.json")
        let copy = dir.appendingPathComponent("sharded")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "tokenizer.model"] {
            try Data(contentsOf: src.appendingPathComponent(f)).write(to: copy.appendingPathComponent(f))
        }
        assertConversionFails(copy, naming: copy.appendingPathComponent("model-00002-of-00002.safetensors").path, ["missing"])
    }

    func testMissingTokenizer() throws {
        let folder = try copyFixture()
        try FileManager.default.removeItem(at: folder.appendingPathComponent("tokenizer.model"))
        assertConversionFails(folder, naming: folder.path, ["tokenizer.model"])
    }

    func testOutputFolderMissing() throws {
        var options = ConversionOptions()
        options.type = .bf16
        let out = dir.appendingPathComponent("no/such/dir/out.gguf").path
        XCTAssertThrowsError(try Converter(checkpoint: try openCheckpoint(TestPaths.fixture.path), options: options).run(to: out)) { e in
            XCTAssertTrue("\(e)".contains(out), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
