import Engine
import Foundation
import Kernels
import Tokenizer

/// Runs one model over the windows of a ``ScoringPlan``.
public final class WindowRunner {
    public let model: Model
    public let transformer: Transformer
    let vocab: Int

    public init(model: Model, pool: WorkerPool, kvType: KVType, ctx: Int, maxBatch: Int = 512, int8Activations: Bool = true) throws {
        guard ctx <= model.config.contextLength else {
            throw EvaluationError("--ctx \(ctx) exceeds the context length of \(model.path) (\(model.config.contextLength) tokens)")
        }
        self.model = model
        vocab = model.config.nVocab
        transformer = try Transformer(weights: model.weights, pool: pool, kvType: kvType, contextLength: ctx,
                                      maxBatch: max(1, min(ctx, maxBatch)))
        transformer.int8Activations = int8Activations
    }

    /// Whether expert choices are recorded (a mixture of experts with at most 256 experts).
    public var routesExperts: Bool {
        let c = model.config
        return c.nExperts > 1 && c.nExpertsUsed > 0 && c.nExperts <= 256
    }
    /// Expert ids recorded per position: layers × experts used.
    public var routeWidth: Int { routesExperts ? model.config.nLayers * model.config.nExpertsUsed : 0 }

    /// Runs `window` from an empty KV cache in batches of `maxBatch` tokens — the whole window, so
    /// that every batch holds the same tokens as in `octet logits` over the window (batched kernels
    /// group tokens in fours, so a token's last bits depend on its batch). Batches holding no scored
    /// position produce no logits. Calls `row(i, logits)` for every position i in `scored`, in order,
    /// and returns their expert choices: ``routeWidth`` ids per position, each layer's ids ascending.
    /// `progress(n)` is told of every batch of n tokens.
    public func run(_ window: [Int32], scored: Range<Int>, progress: (Int) -> Void = { _ in },
                    row: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws -> [UInt8] {
        precondition(scored.lowerBound >= 0 && scored.upperBound <= window.count)
        let tf = transformer
        tf.reset()
        tf.traceExperts = routesExperts
        defer { tf.traceExperts = false }
        var i = 0
        try window.withUnsafeBufferPointer { w in
            while i < w.count {
                let n = min(tf.maxBatch, w.count - i)
                let wanted = i..<(i + n)
                let rows = wanted.clamped(to: scored)
                try tf.forward(UnsafeBufferPointer(rebasing: w[wanted]), logits: rows.isEmpty ? .none : .all)
                for p in rows { try row(p, UnsafeBufferPointer(start: tf.logits + (p - i) * vocab, count: vocab)) }
                i += n; progress(n)
            }
        }
        guard routesExperts else { return [] }
        let trace = tf.expertTrace
        precondition(trace.count == window.count)
        var out: [UInt8] = []
        out.reserveCapacity(scored.count * routeWidth)
        for p in scored {
            for choice in trace[p] { out += choice.experts.sorted().map { UInt8($0) } }
        }
        return out
    }
}

/// Settings of a comparison.
public struct CompareOptions: Sendable {
    public var ctx: Int
    public var kvType: KVType
    /// Tokens per forward pass (at most ctx). 512 is what `octet logits` uses, which makes the
    /// logits of the two bit-identical (see ``WindowRunner/run(_:scored:progress:row:)``).
    public var maxBatch = 512
    /// Tokens kept per position in a base-logits file.
    public var topK = 64
    /// Score at most this many windows (the first ones); nil: every whole window of the text.
    public var maxChunks: Int?
    /// Q8_0 matrices multiply int8-quantized activations (what `octet chat` does); false: float
    /// activations, so only the weights' quantization is measured.
    public var int8Activations = true
    public init(ctx: Int = 512, kvType: KVType = .f16) { self.ctx = ctx; self.kvType = kvType }
}

/// A comparison's report, with the per-token values behind it and, when asked, the base's side
/// as a base-logits file.
public struct ComparisonOutcome: Sendable {
    public var report: ComparisonReport
    public var perToken: ComparisonAccumulator
    public var baseFile: BaseLogitsFile?
}

/// The three ways to run `octet compare`: both models at once (exact KL), the base alone into a
/// ``BaseLogitsFile``, and the quantized model against such a file.
public enum QualityComparison {
    /// Called with (tokens run so far, tokens to run in all).
    public typealias Progress = (Int, Int) -> Void

    static func describe(_ m: Model) -> (model: String, format: String) { (m.path, m.formatDescription) }

    static func header(base: Model, runner: WindowRunner, text: EvaluationText, plan: ScoringPlan, options: CompareOptions) -> BaseLogitsHeader {
        let c = base.config
        return BaseLogitsHeader(
            text: text.name, text_fnv1a64: FNV1a64.hex(text.hash), text_bytes: text.byteCount, text_tokens: plan.tokens.count,
            vocab_size: base.vocabulary.count, tokenizer_fnv1a64: FNV1a64.hex(TokenizerFingerprint.hash(base.vocabulary)),
            ctx: plan.ctx, kv_type: options.kvType.rawValue, top_k: min(options.topK, c.nVocab),
            chunks: plan.chunkCount, positions_per_chunk: plan.positionsPerChunk,
            layers: runner.routesExperts ? c.nLayers : 0, experts: runner.routesExperts ? c.nExperts : 0,
            experts_used: runner.routesExperts ? c.nExpertsUsed : 0,
            base_model: base.path, base_format: base.formatDescription)
    }

    /// Whether expert choices of the two can be compared: same layers, experts and experts per token.
    static func sameRouting(_ a: Model, _ b: Model) -> Bool {
        let x = a.config, y = b.config
        return x.nLayers == y.nLayers && x.nExperts == y.nExperts && x.nExpertsUsed == y.nExpertsUsed
    }

    /// Runs both models over every window and compares them with the exact, full-vocabulary KL.
    /// With `saveBase`, also returns what a base-logits file needs.
    public static func compare(base: Model, quant: Model, text: EvaluationText, options: CompareOptions, pool: WorkerPool,
                               saveBase: Bool = false, progress: Progress? = nil) throws -> ComparisonOutcome {
        try TokenizerFingerprint.checkSame(base: base.vocabulary, quant: quant.vocabulary)
        let plan = try ScoringPlan(text: text, tokenizer: Tokenizer(vocabulary: base.vocabulary), ctx: options.ctx, maxChunks: options.maxChunks)
        let rb = try WindowRunner(model: base, pool: pool, kvType: options.kvType, ctx: plan.ctx, maxBatch: options.maxBatch, int8Activations: options.int8Activations)
        let rq = try WindowRunner(model: quant, pool: pool, kvType: options.kvType, ctx: plan.ctx, maxBatch: options.maxBatch, int8Activations: options.int8Activations)
        let routing = rb.routesExperts && rq.routesExperts && sameRouting(base, quant)
        var acc = ComparisonAccumulator(layers: routing ? base.config.nLayers : 0, expertsUsed: routing ? base.config.nExpertsUsed : 0)
        var file = saveBase ? BaseLogitsFile(header: header(base: base, runner: rb, text: text, plan: plan, options: options)) : nil
        let V = base.config.nVocab, scored = plan.scoredPositions, first = scored.lowerBound
        var baseRows = [Float](repeating: 0, count: scored.count * V)
        var scratch = [Bool](repeating: false, count: V)
        let total = plan.chunkCount * plan.ctx * 2
        var done = 0
        let tick: (Int) -> Void = { n in done += n; progress?(done, total) }
        for c in 0..<plan.chunkCount {
            let window = plan.chunk(c)
            let be = try rb.run(window, scored: scored, progress: tick) { i, row in
                baseRows.withUnsafeMutableBufferPointer { dst in
                    (dst.baseAddress! + (i - first) * V).update(from: row.baseAddress!, count: V)
                }
                if file != nil {
                    let r = try TopKBaseRow(row: row, target: Int(plan.target(chunk: c, position: i)), k: options.topK, scratch: &scratch)
                    file!.append(r, target: plan.target(chunk: c, position: i))
                }
            }
            file?.appendExperts(be)
            let qe = try rq.run(window, scored: scored, progress: tick) { i, row in
                try baseRows.withUnsafeBufferPointer { all in
                    let b = UnsafeBufferPointer(rebasing: all[((i - first) * V)..<((i - first + 1) * V)])
                    acc.add(try PositionComparison.exact(base: b, quant: row, target: Int(plan.target(chunk: c, position: i))))
                }
            }
            if routing {
                let w = rb.routeWidth
                for j in 0..<scored.count { acc.addRouting(base: be[(j * w)..<((j + 1) * w)], quant: qe[(j * w)..<((j + 1) * w)]) }
            }
            acc.endChunk()
        }
        var report = acc.report(text: text, plan: plan, kvType: options.kvType.rawValue, base: describe(base), quant: describe(quant), klMethod: "exact")
        report.activations = options.int8Activations ? "int8" : "f32"
        return ComparisonOutcome(report: report, perToken: acc, baseFile: file)
    }

    /// Runs only the base and keeps what a later comparison needs. Also returns the base's score.
    public static func saveBase(base: Model, text: EvaluationText, options: CompareOptions, pool: WorkerPool,
                                progress: Progress? = nil) throws -> (BaseLogitsFile, ComparisonReport.ModelScore) {
        let plan = try ScoringPlan(text: text, tokenizer: Tokenizer(vocabulary: base.vocabulary), ctx: options.ctx, maxChunks: options.maxChunks)
        let rb = try WindowRunner(model: base, pool: pool, kvType: options.kvType, ctx: plan.ctx, maxBatch: options.maxBatch, int8Activations: options.int8Activations)
        var file = BaseLogitsFile(header: header(base: base, runner: rb, text: text, plan: plan, options: options))
        var scratch = [Bool](repeating: false, count: base.config.nVocab)
        var nll: [Double] = []
        let total = plan.chunkCount * plan.ctx
        var done = 0
        for c in 0..<plan.chunkCount {
            let e = try rb.run(plan.chunk(c), scored: plan.scoredPositions, progress: { done += $0; progress?(done, total) }) { i, row in
                let t = plan.target(chunk: c, position: i)
                let r = try TopKBaseRow(row: row, target: Int(t), k: options.topK, scratch: &scratch)
                file.append(r, target: t)
                nll.append(r.logSumExp - Double(r.targetLogit))
            }
            file.appendExperts(e)
        }
        let s = KLStats(nll)
        return (file, .init(model: base.path, format: base.formatDescription, perplexity: exp(s.mean), mean_nll: s.mean, nll_stderr: s.meanStderr))
    }

    /// Runs the quantized model against a base-logits file (checked against this text, tokenizer,
    /// ctx and KV type); KL is the top-k + rest estimate with its bound.
    public static func compare(baseFile: BaseLogitsFile, path: String, quant: Model, text: EvaluationText,
                               options: CompareOptions, pool: WorkerPool, progress: Progress? = nil) throws -> ComparisonOutcome {
        try baseFile.check(text: text, vocabulary: quant.vocabulary, ctx: options.ctx, kvType: options.kvType.rawValue, path: path)
        let plan = try ScoringPlan(text: text, tokenizer: Tokenizer(vocabulary: quant.vocabulary), ctx: options.ctx, maxChunks: options.maxChunks)
        try baseFile.check(plan: plan, path: path)
        let h = baseFile.header
        let rq = try WindowRunner(model: quant, pool: pool, kvType: options.kvType, ctx: plan.ctx, maxBatch: options.maxBatch, int8Activations: options.int8Activations)
        let qc = quant.config
        let routing = rq.routesExperts && h.experts_used > 0
            && h.layers == qc.nLayers && h.experts == qc.nExperts && h.experts_used == qc.nExpertsUsed
        var acc = ComparisonAccumulator(layers: routing ? qc.nLayers : 0, expertsUsed: routing ? qc.nExpertsUsed : 0)
        var scratch = [Bool](repeating: false, count: qc.nVocab)
        let scored = plan.scoredPositions
        let total = plan.chunkCount * plan.ctx
        var done = 0
        for c in 0..<plan.chunkCount {
            let base0 = c * scored.count
            let qe = try rq.run(plan.chunk(c), scored: scored, progress: { done += $0; progress?(done, total) }) { i, row in
                let j = base0 + i - scored.lowerBound
                acc.add(try PositionComparison.topK(base: baseFile.row(j), quant: row, target: Int(plan.target(chunk: c, position: i)), scratch: &scratch))
            }
            if routing {
                let w = rq.routeWidth
                for j in 0..<scored.count { acc.addRouting(base: baseFile.expertChoices(base0 + j), quant: qe[(j * w)..<((j + 1) * w)]) }
            }
            acc.endChunk()
        }
        var report = acc.report(text: text, plan: plan, kvType: options.kvType.rawValue,
                                base: (h.base_model, h.base_format + ", from a base-logits file"), quant: describe(quant),
                                klMethod: "top-\(h.top_k)+rest")
        report.activations = options.int8Activations ? "int8" : "f32"
        return ComparisonOutcome(report: report, perToken: acc, baseFile: nil)
    }
}
