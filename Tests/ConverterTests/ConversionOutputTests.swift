import Foundation
import XCTest
import Checkpoint
@testable import Converter
import GGUF
import Kernels

/// One tensor llama.cpp expects in a Mixtral GGUF, and the Hugging Face tensors it comes from.
struct ExpectedTensor {
    var name: String
    /// GGUF order: ne0 (row length) first.
    var shape: [Int]
    /// Norms and routers stay F32 whatever type is asked for.
    var alwaysF32: Bool
    var hfSources: [String]
    /// Q/K: rows permuted from rotate-half to interleaved order, with this many heads.
    var permuteHeads: Int?
}

enum TinyMixtral {
    static let nEmbd = 128, nFF = 384, nLayers = 4, nExperts = 8, nVocab = 32000, headDim = 16, nHeads = 8, nKVHeads = 2

    static let tensors: [ExpectedTensor] = {
        var t = [ExpectedTensor(name: "token_embd.weight", shape: [128, 32000], alwaysF32: false, hfSources: ["model.embed_tokens.weight"])]
        for l in 0..<nLayers {
            let p = "model.layers.\(l)."
            func experts(_ w: String) -> [String] { (0..<nExperts).map { "\(p)block_sparse_moe.experts.\($0).\(w).weight" } }
            t += [
                ExpectedTensor(name: "blk.\(l).attn_norm.weight", shape: [128], alwaysF32: true, hfSources: [p + "input_layernorm.weight"]),
                ExpectedTensor(name: "blk.\(l).attn_q.weight", shape: [128, 128], alwaysF32: false, hfSources: [p + "self_attn.q_proj.weight"], permuteHeads: nHeads),
                ExpectedTensor(name: "blk.\(l).attn_k.weight", shape: [128, 32], alwaysF32: false, hfSources: [p + "self_attn.k_proj.weight"], permuteHeads: nKVHeads),
                ExpectedTensor(name: "blk.\(l).attn_v.weight", shape: [128, 32], alwaysF32: false, hfSources: [p + "self_attn.v_proj.weight"]),
                ExpectedTensor(name: "blk.\(l).attn_output.weight", shape: [128, 128], alwaysF32: false, hfSources: [p + "self_attn.o_proj.weight"]),
                ExpectedTensor(name: "blk.\(l).ffn_norm.weight", shape: [128], alwaysF32: true, hfSources: [p + "post_attention_layernorm.weight"]),
                ExpectedTensor(name: "blk.\(l).ffn_gate_inp.weight", shape: [128, 8], alwaysF32: true, hfSources: [p + "block_sparse_moe.gate.weight"]),
                ExpectedTensor(name: "blk.\(l).ffn_gate_exps.weight", shape: [128, 384, 8], alwaysF32: false, hfSources: experts("w1")),
                ExpectedTensor(name: "blk.\(l).ffn_up_exps.weight", shape: [128, 384, 8], alwaysF32: false, hfSources: experts("w3")),
                ExpectedTensor(name: "blk.\(l).ffn_down_exps.weight", shape: [384, 128, 8], alwaysF32: false, hfSources: experts("w2")),
            ]
        }
        t += [
            ExpectedTensor(name: "output_norm.weight", shape: [128], alwaysF32: true, hfSources: ["model.norm.weight"]),
            ExpectedTensor(name: "output.weight", shape: [128, 32000], alwaysF32: false, hfSources: ["lm_head.weight"]),
        ]
        return t
    }()

    /// The source values of a GGUF tensor, in GGUF row order.
    static func sourceFloats(_ t: ExpectedTensor, _ src: HFSource) throws -> [Float] {
        var v: [Float] = []
        for n in t.hfSources { v += try src.reader(n).floats(n) }
        if let h = t.permuteHeads { v = permuteQK(v, heads: h, headDim: headDim, cols: t.shape[0]) }
        return v
    }

    static func sourceWords(_ t: ExpectedTensor, _ src: HFSource) throws -> [UInt16] {
        var v: [UInt16] = []
        for n in t.hfSources { v += try src.reader(n).halfWords(n) }
        if let h = t.permuteHeads { v = permuteQK(v, heads: h, headDim: headDim, cols: t.shape[0]) }
        return v
    }
}

enum SourceLayout: String, CaseIterable {
    case hfBF16 = "hf-bf16", hfF16Sharded = "hf-f16-sharded", consolidated

    func folder() throws -> URL {
        switch self {
        case .hfBF16: return TestPaths.fixture
        case .hfF16Sharded: return try TestPaths.require(TestPaths.f16Sharded, "tiny-mixtral-f16-sharded", marker: "model.safetensors.index.json")
        case .consolidated: return try TestPaths.require(TestPaths.consolidated, "tiny-mixtral-consolidated", marker: "consolidated.safetensors")
        }
    }
}

final class ConversionOutputTests: XCTestCase {
    static var outputDir: URL?
    static var converted: [String: String] = [:]
    static let types: [TensorType] = [.q8_0, .fp8_e4m3, .bf16, .f16]

    override class func tearDown() {
        if let d = outputDir { try? FileManager.default.removeItem(at: d) }
        outputDir = nil
        converted = [:]
        super.tearDown()
    }

    /// Converts `layout` to `type` once per test run.
    func convert(_ layout: SourceLayout, _ type: TensorType) throws -> GGUFFile {
        let key = "\(layout.rawValue)-\(type.name)"
        if let p = Self.converted[key] { return try GGUFFile(path: p) }
        let folder = try layout.folder()
        if Self.outputDir == nil { Self.outputDir = try makeTemporaryDirectory("converter-tests") }
        let path = Self.outputDir!.appendingPathComponent("\(key).gguf").path
        var options = ConversionOptions()
        options.type = type
        options.threads = 2
        let converter = try Converter(checkpoint: try openCheckpoint(folder.path), options: options)
        try converter.run(to: path)
        Self.converted[key] = path
        return try GGUFFile(path: path)
    }

    func bytes(_ g: GGUFFile, _ name: String) throws -> [UInt8] {
        let t = try XCTUnwrap(g.tensorInfo(name), "\(name) missing")
        return Array(UnsafeRawBufferPointer(start: g.data(of: t), count: t.byteCount!))
    }

    // MARK: Tensor inventory

    func checkInventory(_ g: GGUFFile, type: TensorType, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(g.tensors.count, TinyMixtral.tensors.count, "tensor count", file: file, line: line)
        XCTAssertEqual(Set(g.tensors.map(\.name)), Set(TinyMixtral.tensors.map(\.name)), file: file, line: line)
        XCTAssertEqual(g.alignment, 4096, file: file, line: line)
        for e in TinyMixtral.tensors {
            guard let t = g.tensorInfo(e.name) else { XCTFail("missing \(e.name)", file: file, line: line); continue }
            XCTAssertEqual(t.shape, e.shape, "shape of \(e.name)", file: file, line: line)
            XCTAssertEqual(t.type, e.alwaysF32 ? .f32 : type, "type of \(e.name)", file: file, line: line)
            XCTAssertEqual((g.dataOffset + t.offset) % 4096, 0, "\(e.name) not page-aligned", file: file, line: line)
        }
    }

    func testInventoryAllTypesFromHF() throws {
        for type in Self.types { checkInventory(try convert(.hfBF16, type), type: type) }
    }

    func testInventoryAllTypesFromShardedF16() throws {
        for type in Self.types { checkInventory(try convert(.hfF16Sharded, type), type: type) }
    }

    func testInventoryAllTypesFromConsolidated() throws {
        for type in Self.types { checkInventory(try convert(.consolidated, type), type: type) }
    }

    // MARK: Tensor data against an independent encoding of the source

    func checkData(_ layout: SourceLayout, _ type: TensorType, bitExactWords: Bool) throws {
        let g = try convert(layout, type)
        let src = try HFSource(folder: try layout.folder())
        for e in TinyMixtral.tensors {
            let got = try bytes(g, e.name)
            let expected: [UInt8]
            if e.alwaysF32 {
                expected = littleEndianBytes(try TinyMixtral.sourceFloats(e, src))
            } else if bitExactWords {
                // 16-bit output of the same 16-bit type: the source bits, permuted, nothing else.
                expected = littleEndianBytes(try TinyMixtral.sourceWords(e, src))
            } else {
                expected = referenceEncode(try TinyMixtral.sourceFloats(e, src), as: type)
            }
            if got != expected {
                let i = firstDifference(got, expected)!
                let rowBytes = (e.alwaysF32 ? TensorType.f32 : type).rowBytes(e.shape[0])!
                XCTFail("\(layout.rawValue) → \(type): \(e.name) differs from the reference at byte \(i) (row \(i / rowBytes)) of \(expected.count)")
            }
        }
    }

    func testBF16FromBF16IsBitExact() throws {
        try checkData(.hfBF16, .bf16, bitExactWords: true)
    }

    func testF16FromBF16IsRoundedToF16() throws {
        try checkData(.hfBF16, .f16, bitExactWords: false)
    }

    func testQ8_0FromBF16MatchesReferenceQuantization() throws {
        try checkData(.hfBF16, .q8_0, bitExactWords: false)
    }

    func testFP8FromBF16MatchesReferenceQuantization() throws {
        try checkData(.hfBF16, .fp8_e4m3, bitExactWords: false)
    }

    func testF16FromF16ShardsIsBitExact() throws {
        try checkData(.hfF16Sharded, .f16, bitExactWords: true)
    }

    func testOtherTypesFromF16Shards() throws {
        for type: TensorType in [.bf16, .q8_0, .fp8_e4m3] { try checkData(.hfF16Sharded, type, bitExactWords: false) }
    }

    /// Sanity of the reference itself: the permutation really moves rows (it is not the identity).
    func testPermutationIsNotIdentity() throws {
        let src = try HFSource(folder: TestPaths.fixture)
        let q = TinyMixtral.tensors.first { $0.name == "blk.0.attn_q.weight" }!
        let raw = try src.reader(q.hfSources[0]).halfWords(q.hfSources[0])
        XCTAssertNotEqual(try TinyMixtral.sourceWords(q, src), raw)
        // Row 1 of GGUF head 0 is HF row d/2 = 8.
        XCTAssertEqual(Array(try TinyMixtral.sourceWords(q, src)[128..<256]), Array(raw[(8 * 128)..<(9 * 128)]))
    }

    // MARK: Consolidated layout == Hugging Face layout

    func testConsolidatedGivesIdenticalTensorBytes() throws {
        _ = try SourceLayout.consolidated.folder()
        for type in Self.types {
            let a = try convert(.consolidated, type), b = try convert(.hfBF16, type)
            for e in TinyMixtral.tensors {
                let x = try bytes(a, e.name), y = try bytes(b, e.name)
                XCTAssertTrue(x == y, "\(type): \(e.name) differs between consolidated and Hugging Face conversions (first at byte \(firstDifference(x, y) ?? -1))")
            }
        }
    }

    // MARK: Metadata

    func checkMetadata(_ g: GGUFFile, type: TensorType, contextLength: Int, chatTemplate: String?) {
        let u32: [(String, Int)] = [
            ("llama.vocab_size", 32000), ("llama.context_length", contextLength), ("llama.embedding_length", 128),
            ("llama.block_count", 4), ("llama.feed_forward_length", 384), ("llama.rope.dimension_count", 16),
            ("llama.attention.head_count", 8), ("llama.attention.head_count_kv", 2),
            ("llama.attention.key_length", 16), ("llama.attention.value_length", 16),
            ("llama.expert_count", 8), ("llama.expert_used_count", 2), ("general.alignment", 4096),
            ("tokenizer.ggml.bos_token_id", 1), ("tokenizer.ggml.eos_token_id", 2), ("tokenizer.ggml.unknown_token_id", 0),
        ]
        for (k, v) in u32 {
            XCTAssertEqual(g[k]?.int, v, k)
            XCTAssertEqual(g[k]?.type, .uint32, "type of \(k)")
        }
        XCTAssertEqual(g["general.architecture"], .string("llama"))
        XCTAssertEqual(g["llama.attention.layer_norm_rms_epsilon"], .float32(1e-5))
        XCTAssertEqual(g["llama.rope.freq_base"], .float32(1e6))
        let fileTypes: [TensorType: Int] = [.f16: 1, .q8_0: 7, .bf16: 32]
        XCTAssertEqual(g["general.file_type"]?.int, fileTypes[type], "general.file_type for \(type)")
        XCTAssertEqual(g["tokenizer.ggml.model"], .string("llama"))
        let tokens = g["tokenizer.ggml.tokens"]?.array ?? []
        XCTAssertEqual(tokens.count, 32000)
        if tokens.count == 32000 {
            XCTAssertEqual(tokens[0], .string("<unk>")); XCTAssertEqual(tokens[1], .string("<s>")); XCTAssertEqual(tokens[2], .string("</s>"))
            XCTAssertEqual(tokens[3], .string("<0x00>")); XCTAssertEqual(tokens[258], .string("<0xFF>"))
        }
        XCTAssertEqual(g["tokenizer.ggml.scores"]?.array?.count, 32000)
        XCTAssertEqual(g["tokenizer.ggml.scores"]?.array?.first?.type, .float32)
        let types = g["tokenizer.ggml.token_type"]?.array ?? []
        XCTAssertEqual(types.count, 32000)
        // SentencePiece types: 2 = unknown, 3 = control, 6 = byte, 1 = normal.
        if types.count == 32000 {
            XCTAssertEqual(types[0], .int32(2)); XCTAssertEqual(types[1], .int32(3)); XCTAssertEqual(types[3], .int32(6)); XCTAssertEqual(types[1000], .int32(1))
        }
        XCTAssertEqual(g["tokenizer.ggml.add_bos_token"], .bool(true))
        XCTAssertEqual(g["tokenizer.ggml.add_eos_token"], .bool(false))
        XCTAssertEqual(g["tokenizer.ggml.add_space_prefix"], .bool(true))
        XCTAssertEqual(g["tokenizer.chat_template"]?.string, chatTemplate)
    }

    func chatTemplate(_ folder: URL) throws -> String {
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("tokenizer_config.json"))) as! [String: Any]
        return try XCTUnwrap(j["chat_template"] as? String)
    }

    func testMetadataFromHF() throws {
        let template = try chatTemplate(TestPaths.fixture)
        XCTAssertTrue(template.contains("[INST]"))
        for type in Self.types {
            checkMetadata(try convert(.hfBF16, type), type: type, contextLength: 4096, chatTemplate: template)
        }
    }

    func testMetadataFromShardedF16() throws {
        let folder = try SourceLayout.hfF16Sharded.folder()
        checkMetadata(try convert(.hfF16Sharded, .q8_0), type: .q8_0, contextLength: 4096, chatTemplate: try chatTemplate(folder))
    }

    func testMetadataFromConsolidated() throws {
        _ = try SourceLayout.consolidated.folder()
        // params.json has no context length: the converter uses Mixtral's 32768; no tokenizer_config.json, no template.
        checkMetadata(try convert(.consolidated, .bf16), type: .bf16, contextLength: 32768, chatTemplate: nil)
    }

    func testOutputFolderHoldsOnlyTheOutputs() throws {
        _ = try convert(.hfBF16, .q8_0)
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.outputDir!.path)
        XCTAssertFalse(files.contains { $0.contains(".partial-") }, "temporary files left: \(files)")
    }
}
