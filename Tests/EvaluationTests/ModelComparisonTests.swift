import Checkpoint
import Converter
import Engine
import Foundation
import Kernels
import XCTest
@testable import Evaluation

/// `octet compare` end to end on the tiny Mixtral fixture (bf16 folder read directly) and its Q8_0
/// conversion, with windows of 32 tokens and a short text: in a debug build the output head costs
/// about half a second per scored token, so the tests score 2 × 15 positions per model run.
final class ModelComparisonTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixture = root.appendingPathComponent("Fixtures/tiny-mixtral").path
    static let evalText = root.deletingLastPathComponent().appendingPathComponent("shared/reference/text/eval-fr.txt").path
    static let ctx = 32

    /// 300 characters (93 tokens, two windows): the start of eval-fr.txt when present, otherwise a built-in paragraph.
    static let text: EvaluationText = {
        if let s = try? String(contentsOfFile: evalText, encoding: .utf8), s.count > 300 {
            return EvaluationText(string: String(s.prefix(300)), name: "eval-fr.txt (first 300 characters)")
        }
        let p = """
        La Loire est le plus long fleuve de France. Elle prend sa source au mont Gerbier-de-Jonc, dans le Massif central, \
        et se jette dans l'océan Atlantique à Saint-Nazaire. Son bassin couvre plus d'un cinquième du territoire. \
        Les châteaux de la Loire, bâtis pour la plupart à la Renaissance, attirent chaque année des millions de visiteurs. \
        Le fleuve est réputé pour ses crues soudaines et ses bancs de sable qui se déplacent au fil des saisons. 
        """
        return EvaluationText(string: p, name: "built-in French text")
    }()

    nonisolated(unsafe) static var cache: [String: Any] = [:]
    static func cached<T>(_ key: String, _ make: () throws -> T) rethrows -> T {
        if let v = cache[key] as? T { return v }
        let v = try make(); cache[key] = v; return v
    }

    static func base() throws -> Model { try cached("base") { try Model(path: fixture) } }
    static let pool = WorkerPool(threads: 2)

    /// The fixture converted to Q8_0 once per run, in a temporary folder.
    static func q8() throws -> Model {
        try cached("q8") {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("octet-eval-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let out = dir.appendingPathComponent("tiny-q8_0.gguf").path
            var o = ConversionOptions(); o.type = .q8_0; o.threads = 2
            try Converter(checkpoint: openCheckpoint(fixture), options: o).run(to: out)
            return try Model(path: out)
        }
    }

    static var options: CompareOptions { var o = CompareOptions(ctx: ctx, kvType: .f32); o.maxBatch = 8; return o }

    static func selfComparison() throws -> ComparisonOutcome {
        try cached("self") { try QualityComparison.compare(base: base(), quant: base(), text: text, options: options, pool: pool, saveBase: true) }
    }
    static func q8Comparison() throws -> ComparisonOutcome {
        try cached("q8cmp") { try QualityComparison.compare(base: base(), quant: q8(), text: text, options: options, pool: pool, saveBase: true) }
    }

    func testBaseAgainstItselfIsPerfect() throws {
        let r = try Self.selfComparison().report
        XCTAssertGreaterThanOrEqual(r.chunks, 2)
        XCTAssertEqual(r.tokens_scored, r.chunks * (Self.ctx - 1 - Self.ctx / 2))
        XCTAssertLessThanOrEqual(r.kl.max, 1e-12)
        XCTAssertLessThanOrEqual(r.kl.mean, 1e-12)
        XCTAssertEqual(r.top1_agreement, 1)
        XCTAssertEqual(r.rms_delta_p, 0)
        XCTAssertEqual(r.base.perplexity, r.quant.perplexity)
        XCTAssertEqual(r.delta_ppl_percent, 0)
        XCTAssertEqual(r.routing_agreement?.overall, 1)
        XCTAssertEqual(r.routing_agreement?.per_layer, [1, 1, 1, 1])
        XCTAssertEqual(r.kl.method, "exact")
        XCTAssertGreaterThan(r.base.perplexity, 1)
    }

    func testQ8_0CostsLittle() throws {
        let r = try Self.q8Comparison().report
        XCTAssertGreaterThan(r.kl.mean, 0)
        XCTAssertLessThan(r.kl.mean, 0.05, "Q8_0 should be close to bf16")
        XCTAssertGreaterThanOrEqual(r.top1_agreement, 0.9)
        XCTAssertLessThan(abs(r.delta_ppl_percent), 5)
        XCTAssertGreaterThan(r.routing_agreement!.overall, 0.8)
        XCTAssertLessThanOrEqual(r.kl.median, r.kl.p99)
        XCTAssertLessThanOrEqual(r.kl.p99, r.kl.max)
    }

    /// Saving the base, then comparing against the file: exact figures stay exact, KL is bracketed.
    func testBaseLogitsFileReproducesTheOnePassRun() throws {
        for (name, one) in [("self", try Self.selfComparison()), ("q8_0", try Self.q8Comparison())] {
            let quant = name == "self" ? try Self.base() : try Self.q8()
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("octet-eval-\(UUID().uuidString).octbl").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            try one.baseFile!.write(to: path)
            let file = try BaseLogitsFile.read(path: path)
            XCTAssertEqual(file.header, one.baseFile!.header)
            XCTAssertEqual(file.topLogits, one.baseFile!.topLogits)
            XCTAssertEqual(file.experts, one.baseFile!.experts)
            let two = try QualityComparison.compare(baseFile: file, path: path, quant: quant, text: Self.text, options: Self.options, pool: Self.pool)
            let a = one.report, b = two.report
            XCTAssertEqual(b.base.perplexity, a.base.perplexity, name)
            XCTAssertEqual(b.quant.perplexity, a.quant.perplexity, name)
            XCTAssertEqual(b.top1_agreement, a.top1_agreement, name)
            XCTAssertEqual(b.rms_delta_p, a.rms_delta_p, name)
            XCTAssertEqual(b.routing_agreement, a.routing_agreement, name)
            XCTAssertEqual(b.kl.method, "top-64+rest")
            // Per token: estimate ≤ exact ≤ estimate + bound.
            let est = two.perToken.kl, bound = two.perToken.klBound, exact = one.perToken.kl
            XCTAssertEqual(est.count, exact.count)
            for i in 0..<est.count {
                XCTAssertLessThanOrEqual(est[i], exact[i] + 1e-12, "\(name) token \(i)")
                XCTAssertGreaterThanOrEqual(est[i] + bound[i], exact[i] - 1e-12, "\(name) token \(i)")
            }
            XCTAssertLessThanOrEqual(b.kl.mean, a.kl.mean + 1e-12)
            XCTAssertGreaterThanOrEqual(b.kl.mean + b.kl.bound_mean!, a.kl.mean - 1e-12)
            if name == "self" {
                XCTAssertLessThanOrEqual(b.kl.max, 1e-12)
            }
        }
    }

    /// `--chunks 1` against a file saved over every window: the file's first window is used, and
    /// the figures equal a one-pass comparison of that window alone.
    func testBaseLogitsFileWithFewerChunks() throws {
        let one = try Self.q8Comparison()
        XCTAssertGreaterThanOrEqual(one.report.chunks, 2)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("octet-eval-\(UUID().uuidString).octbl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try one.baseFile!.write(to: path)
        var options = Self.options
        options.maxChunks = 1
        let fromFile = try QualityComparison.compare(baseFile: try BaseLogitsFile.read(path: path), path: path, quant: try Self.q8(),
                                                     text: Self.text, options: options, pool: Self.pool).report
        let direct = try QualityComparison.compare(base: try Self.base(), quant: try Self.q8(), text: Self.text,
                                                   options: options, pool: Self.pool).report
        XCTAssertEqual(fromFile.chunks, 1)
        XCTAssertEqual(fromFile.tokens_scored, direct.tokens_scored)
        XCTAssertEqual(fromFile.base.perplexity, direct.base.perplexity, accuracy: 1e-9 * direct.base.perplexity)
        XCTAssertEqual(fromFile.quant.perplexity, direct.quant.perplexity)
        XCTAssertEqual(fromFile.top1_agreement, direct.top1_agreement)
        XCTAssertEqual(fromFile.routing_agreement, direct.routing_agreement)
    }

    func testMismatchedBaseLogitsFileIsRefused() throws {
        let file = try Self.selfComparison().baseFile!
        let base = try Self.base()
        var o = Self.options
        o.ctx = 16
        XCTAssertThrowsError(try QualityComparison.compare(baseFile: file, path: "b.octbl", quant: base, text: Self.text, options: o, pool: Self.pool)) { e in
            XCTAssertEqual("\(e)", "b.octbl was saved with --ctx 32, not 16; use --ctx 32 or save the base again")
        }
        let other = EvaluationText(string: Self.text.string + " ", name: "other.txt")
        XCTAssertThrowsError(try QualityComparison.compare(baseFile: file, path: "b.octbl", quant: base, text: other, options: Self.options, pool: Self.pool)) { e in
            XCTAssertTrue("\(e)".hasPrefix("b.octbl was saved for a different text"), "\(e)")
        }
        o = Self.options
        o.kvType = .f16
        XCTAssertThrowsError(try QualityComparison.compare(baseFile: file, path: "b.octbl", quant: base, text: Self.text, options: o, pool: Self.pool)) { e in
            XCTAssertTrue("\(e)".contains("--kv-type f32, not f16"), "\(e)")
        }
        var wrongVocab = base.vocabulary
        wrongVocab.pieces[100] = "something else"
        XCTAssertThrowsError(try file.check(text: Self.text, vocabulary: wrongVocab, ctx: 32, kvType: "f32", path: "b.octbl")) { e in
            XCTAssertTrue("\(e)".contains("different tokenizer"), "\(e)")
        }
        let junk = FileManager.default.temporaryDirectory.appendingPathComponent("octet-eval-junk-\(UUID().uuidString)").path
        try Data("not a file".utf8).write(to: URL(fileURLWithPath: junk))
        defer { try? FileManager.default.removeItem(atPath: junk) }
        XCTAssertThrowsError(try BaseLogitsFile.read(path: junk)) { e in XCTAssertTrue("\(e)".contains("is not a base-logits file"), "\(e)") }
    }

    func testShortTextIsRefusedWithItsTokenCount() throws {
        let base = try Self.base()
        let t = EvaluationText(string: "Bonjour tout le monde.", name: "short.txt")
        XCTAssertThrowsError(try QualityComparison.compare(base: base, quant: base, text: t, options: Self.options, pool: Self.pool)) { e in
            XCTAssertTrue("\(e)".hasPrefix("short.txt has only "), "\(e)")
            XCTAssertTrue("\(e)".contains("--ctx ≤ "), "\(e)")
        }
        XCTAssertThrowsError(try QualityComparison.compare(base: base, quant: base, text: EvaluationText(string: "", name: "empty.txt"),
                                                           options: Self.options, pool: Self.pool)) { e in
            XCTAssertTrue("\(e)".contains("empty"), "\(e)")
        }
    }

    func testSaveBaseAloneMatchesTheOnePassFile() throws {
        let one = try Self.selfComparison()
        let (file, score) = try QualityComparison.saveBase(base: Self.base(), text: Self.text, options: Self.options, pool: Self.pool)
        XCTAssertEqual(file.header, one.baseFile!.header)
        XCTAssertEqual(file.targets, one.baseFile!.targets)
        XCTAssertEqual(file.topIDs, one.baseFile!.topIDs)
        XCTAssertEqual(file.logSumExp, one.baseFile!.logSumExp)
        XCTAssertEqual(file.experts, one.baseFile!.experts)
        XCTAssertEqual(score.perplexity, one.report.base.perplexity)
    }

    func testReportsEncodeAndRender() throws {
        let r = try Self.q8Comparison().report
        let data = try JSONEncoder().encode(r)
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        for key in ["tokens_scored", "base", "quant", "kl", "top1_agreement", "rms_delta_p", "routing_agreement", "delta_ppl_percent", "chunks", "ctx"] {
            XCTAssertNotNil(obj[key], key)
        }
        XCTAssertNotNil((obj["kl"] as! [String: Any])["mean_stderr"])
        XCTAssertEqual(try JSONDecoder().decode(ComparisonReport.self, from: data), r)
        let html = HTMLReport.render(r)
        XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 3)   // KL histogram, routing, windows
        XCTAssertFalse(html.contains("<script"))
        XCTAssertFalse(html.contains("src="))
        XCTAssertFalse(html.contains("href="))
        XCTAssertTrue(html.contains("Routing agreement per layer"))
        XCTAssertTrue(r.textTable().contains("top-1 agreement"))
    }
}
