import ArgumentParser
import Engine
import Evaluation
import Foundation
import Kernels

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what quantization costs: perplexity, KL divergence, top-1 and routing agreement against the 16-bit original.",
        discussion: """
        The text is scored as llama-perplexity does: its tokens are cut into windows of --ctx tokens \
        (BOS first, each from an empty KV cache) and the next-token predictions of the second half of \
        every window are scored. BASE is the 16-bit original (checkpoint folder or GGUF), QUANT a GGUF.

        Big models in two passes, so the two are never resident together:
          octet compare BASE --text wiki.txt --save-base base.octbl        (base only)
          octet compare QUANT --text wiki.txt --base-logits base.octbl     (quantized only)
        The file keeps the base's top --top-k log-probabilities per token; KL is then a lower bound \
        whose worst-case gap is reported (kl.bound_mean). Perplexity, top-1 and routing stay exact.

        Example: octet compare Mixtral-8x7B-v0.1 mixtral-q8_0.gguf --text wiki.txt --json q8.json --html q8.html
        """)

    @Argument(help: ArgumentHelp("BASE QUANT; only BASE with --save-base; only QUANT with --base-logits.", valueName: "model"))
    var models: [String] = []

    @Option(help: "The text to score (a UTF-8 file).")
    var text: String

    @Option(help: "Tokens per window (default: 512, or the --base-logits file's).")
    var ctx: Int?

    @Option(help: "KV cache type, f16 or f32 (default: f16, or the --base-logits file's).")
    var kvType: KVType?

    @Option(help: ArgumentHelp("Write every figure as JSON to this file ('-' for stdout).", valueName: "out.json"))
    var json: String?

    @Option(help: ArgumentHelp("Write a self-contained HTML report (plots as inline SVG).", valueName: "out.html"))
    var html: String?

    @Option(help: ArgumentHelp("Store what the base produced (top-k log-probabilities, expert choices; zstd) for a later --base-logits run.", valueName: "file"))
    var saveBase: String?

    @Option(help: ArgumentHelp("Compare QUANT against a file made by --save-base instead of running BASE.", valueName: "file"))
    var baseLogits: String?

    @Option(help: "Tokens per position kept by --save-base.")
    var topK: Int = 64

    @Option(help: "Score only the first N windows (like llama-perplexity's --chunks; default: all).")
    var chunks: Int?

    @Flag(help: "Multiply Q8_0 weights by float activations instead of int8-quantized ones, to measure the weights' quantization alone.")
    var floatActivations = false

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = WorkerPool.onlineCPUs

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if topK < 1 { throw ValidationError("--top-k must be at least 1") }
        if let ctx, ctx < 3 { throw ValidationError("--ctx must be at least 3") }
        if let chunks, chunks < 1 { throw ValidationError("--chunks must be at least 1") }
        if saveBase != nil && baseLogits != nil { throw ValidationError("--save-base and --base-logits exclude each other") }
        if baseLogits != nil {
            if models.isEmpty || models.count > 2 { throw ValidationError("with --base-logits, give QUANT (BASE may be omitted)") }
        } else if saveBase != nil {
            if models.isEmpty || models.count > 2 { throw ValidationError("with --save-base, give BASE (and QUANT to compare in the same run)") }
            if models.count == 1 && (json != nil || html != nil) {
                throw ValidationError("--json and --html need QUANT: with --save-base alone only the base runs")
            }
        } else if models.count != 2 {
            throw ValidationError("give BASE and QUANT (or BASE with --save-base, or QUANT with --base-logits)")
        }
    }

    func run() throws {
        try reportingErrors {
            let t = try EvaluationText(path: text)
            let pool = WorkerPool(threads: threads)
            let bar = ProgressLine("scoring", unit: "tok")
            let progress: QualityComparison.Progress = { done, total in bar.update(done: done, total: total) }
            let report: ComparisonReport

            if let baseLogits {
                if models.count == 2 { fputs("notice: BASE (\(models[0])) is not run: its side comes from \(baseLogits)\n", stderr) }
                let file = try BaseLogitsFile.read(path: baseLogits)
                let h = file.header
                var options = CompareOptions(ctx: ctx ?? h.ctx, kvType: kvType ?? KVType(rawValue: h.kv_type) ?? .f16)
                options.topK = h.top_k
                options.maxChunks = chunks ?? h.chunks
                options.int8Activations = !floatActivations
                let quant = try Model(path: models[models.count - 1])
                report = try QualityComparison.compare(baseFile: file, path: baseLogits, quant: quant, text: t,
                                                       options: options, pool: pool, progress: progress).report
            } else if let saveBase, models.count == 1 {
                var options = CompareOptions(ctx: ctx ?? 512, kvType: kvType ?? .f16)
                options.topK = topK
                options.maxChunks = chunks
                options.int8Activations = !floatActivations
                let base = try Model(path: models[0])
                let (file, score) = try QualityComparison.saveBase(base: base, text: t, options: options, pool: pool, progress: progress)
                try file.write(to: saveBase)
                let size = (try? FileManager.default.attributesOfItem(atPath: saveBase)[.size] as? Int) ?? 0
                print(String(format: "base perplexity %.4f ± %.4f over %d tokens (%d windows of %d, %@ KV cache)",
                             score.perplexity, score.perplexity * score.nll_stderr, file.count, file.header.chunks,
                             options.ctx, options.kvType.rawValue))
                print(String(format: "wrote %@ (top-%d per token, %.1f MB)", saveBase, file.header.top_k, Double(size) / 1e6))
                return
            } else {
                var options = CompareOptions(ctx: ctx ?? 512, kvType: kvType ?? .f16)
                options.topK = topK
                options.maxChunks = chunks
                options.int8Activations = !floatActivations
                let base = try Model(path: models[0]), quant = try Model(path: models[1])
                let outcome = try QualityComparison.compare(base: base, quant: quant, text: t, options: options, pool: pool,
                                                            saveBase: saveBase != nil, progress: progress)
                if let saveBase, let file = outcome.baseFile {
                    try file.write(to: saveBase)
                    fputs("wrote \(saveBase) (top-\(file.header.top_k) base log-probabilities of \(file.count) tokens)\n", stderr)
                }
                report = outcome.report
            }

            let table = report.textTable()
            if json == "-" { fputs(table, stderr) } else { print(table, terminator: "") }
            if let json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys, .prettyPrinted]
                let data = try enc.encode(report)
                if json == "-" { print(String(decoding: data, as: UTF8.self)) } else { try data.write(to: URL(fileURLWithPath: json)) }
            }
            if let html {
                try Data(HTMLReport.render(report).utf8).write(to: URL(fileURLWithPath: html))
                fputs("wrote \(html)\n", stderr)
            }
        }
    }
}
