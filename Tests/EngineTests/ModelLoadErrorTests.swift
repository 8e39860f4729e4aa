import Foundation
import XCTest
import Engine
import GGUF
import Kernels

/// GGUF files that disagree with themselves must be refused at load, naming the tensor or key.
final class ModelLoadErrorTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory("engine-load-errors") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    override class func tearDown() { ConvertedFixture.cleanUp(); super.tearDown() }

    /// Rewrites the converted BF16 file through GGUFLayout + AtomicOutputFile with edited metadata
    /// and tensor list (tensor data copied from the source, truncated or zero-padded to the new size).
    func rewrite(_ name: String, metadata editMetadata: (inout [(key: String, value: GGUFValue)]) -> Void = { _ in },
                 tensors editTensors: (inout [GGUFTensorInfo]) -> Void = { _ in }) throws -> String {
        let src = try GGUFFile(path: try ConvertedFixture.path(.bf16))
        var md = src.metadata
        editMetadata(&md)
        var infos = src.tensors
        editTensors(&infos)
        let layout = try GGUFLayout(metadata: md, tensors: infos, alignment: 4096)
        let path = dir.appendingPathComponent(name).path
        let out = try AtomicOutputFile(path: path, size: layout.fileSize)
        try out.write(layout.headerBytes(), at: 0)
        for t in layout.tensors {
            guard let s = src.tensorInfo(t.name) else { continue }
            let n = min(t.byteCount!, s.byteCount!)
            try out.write(src.data(of: s), count: n, at: layout.dataOffset + t.offset)
        }
        try out.commit()
        return path
    }

    func assertLoadFails(_ path: String, _ phrases: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Model(path: path), file: file, line: line) { e in
            let d = "\(e)"
            XCTAssertTrue(d.contains(path), "error does not name the file: \(d)", file: file, line: line)
            for p in phrases { XCTAssertTrue(d.contains(p), "error does not say '\(p)': \(d)", file: file, line: line) }
        }
    }

    func testUnmodifiedRewriteLoads() throws {
        // The control: the rewriting itself produces a loadable model.
        let path = try rewrite("same.gguf")
        let m = try Model(path: path)
        XCTAssertEqual(m.config.nExperts, 8)
        XCTAssertEqual(m.vocabulary.count, 32000)
    }

    func testWrongTensorShape() throws {
        let path = try rewrite("shape.gguf", tensors: { infos in
            let i = infos.firstIndex { $0.name == "blk.1.attn_k.weight" }!
            infos[i].shape = [128, 16]
        })
        assertLoadFails(path, ["blk.1.attn_k.weight", "[128, 16]", "[128, 32]"])
    }

    func testWrongExpertTensorShape() throws {
        let path = try rewrite("experts.gguf", tensors: { infos in
            let i = infos.firstIndex { $0.name == "blk.2.ffn_down_exps.weight" }!
            infos[i].shape = [384, 128, 7]
        })
        assertLoadFails(path, ["blk.2.ffn_down_exps.weight", "[384, 128, 7]"])
    }

    func testMissingTensor() throws {
        let path = try rewrite("missing.gguf", tensors: { $0.removeAll { $0.name == "blk.3.ffn_up_exps.weight" } })
        assertLoadFails(path, ["missing tensor", "blk.3.ffn_up_exps.weight"])
    }

    func testMissingNormTensor() throws {
        let path = try rewrite("missing-norm.gguf", tensors: { $0.removeAll { $0.name == "output_norm.weight" } })
        assertLoadFails(path, ["output_norm.weight"])
    }

    func testExpertCountMismatch() throws {
        let path = try rewrite("count.gguf", metadata: { md in
            let i = md.firstIndex { $0.key == "llama.expert_count" }!
            md[i].value = .uint32(4)
        })
        // The router and expert tensors hold 8 experts: the first one checked is named.
        assertLoadFails(path, ["blk.0.ffn_gate_inp.weight", "[128, 8]", "[128, 4]"])
    }

    func testExpertsUsedBeyondExpertCount() throws {
        let path = try rewrite("used.gguf", metadata: { md in
            let i = md.firstIndex { $0.key == "llama.expert_used_count" }!
            md[i].value = .uint32(9)
        })
        assertLoadFails(path, ["9 of 8 experts"])
    }

    func testMissingExpertUsedCount() throws {
        let path = try rewrite("no-used.gguf", metadata: { $0.removeAll { $0.key == "llama.expert_used_count" } })
        assertLoadFails(path, ["expert_used_count"])
    }

    func testMissingBlockCount() throws {
        let path = try rewrite("no-blocks.gguf", metadata: { $0.removeAll { $0.key == "llama.block_count" } })
        assertLoadFails(path, ["llama.block_count"])
    }

    func testNonIntegerKey() throws {
        let path = try rewrite("float-key.gguf", metadata: { md in
            let i = md.firstIndex { $0.key == "llama.embedding_length" }!
            md[i].value = .string("128")
        })
        assertLoadFails(path, ["llama.embedding_length"])
    }

    func testUnsupportedArchitecture() throws {
        let path = try rewrite("arch.gguf", metadata: { md in
            let i = md.firstIndex { $0.key == "general.architecture" }!
            md[i].value = .string("gpt2")
        })
        assertLoadFails(path, ["gpt2"])
    }

    func testTokenizerVocabularyMismatch() throws {
        let path = try rewrite("vocab.gguf", metadata: { md in
            for k in ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"] {
                let i = md.firstIndex { $0.key == k }!
                if case .array(let t, let items) = md[i].value { md[i].value = .array(t, Array(items.dropLast(10))) }
            }
        })
        assertLoadFails(path, ["31990", "32000"])
    }

    func testCorruptFileIsReportedWithItsPath() throws {
        let path = dir.appendingPathComponent("garbage.gguf").path
        try Data(repeating: 0x41, count: 100).write(to: URL(fileURLWithPath: path))
        assertLoadFails(path, ["bad magic"])
        assertLoadFails(dir.appendingPathComponent("nothing.gguf").path, ["no such file"])
    }
}
