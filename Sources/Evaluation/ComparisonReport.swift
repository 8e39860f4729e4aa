import Foundation

/// Every figure of a comparison; encodes to the `--json` output (keys as written here).
///
/// Agreements are fractions in 0…1. KL divergences are in nats. `kl.method` is "exact" (both
/// models ran in this process, full vocabulary) or "top-K+rest" (base read from a base-logits
/// file; then the exact mean lies in [kl.mean, kl.mean + kl.bound_mean], see ``TopKBaseRow``).
public struct ComparisonReport: Codable, Sendable, Equatable {
    public struct ModelScore: Codable, Sendable, Equatable {
        public var model: String
        public var format: String
        /// exp(mean_nll).
        public var perplexity: Double
        /// Mean of −log p(next token), nats.
        public var mean_nll: Double
        /// Standard error of mean_nll.
        public var nll_stderr: Double
    }

    public struct KLSummary: Codable, Sendable, Equatable {
        public var mean: Double
        public var mean_stderr: Double
        public var median: Double
        public var p99: Double
        public var max: Double
        /// "exact" or "top-64+rest".
        public var method: String
        /// For "top-K+rest": mean and max over tokens of the bound B on (exact − estimate).
        public var bound_mean: Double?
        public var bound_max: Double?
    }

    public struct Routing: Codable, Sendable, Equatable {
        /// Share of (token, layer) pairs where both models chose the same set of experts.
        public var overall: Double
        public var per_layer: [Double]
        public var experts_used: Int
    }

    public struct ChunkSeries: Codable, Sendable, Equatable {
        public var base: [Double]
        public var quant: [Double]
        public var kl_mean: [Double]
    }

    public var text: String
    public var text_fnv1a64: String
    public var text_tokens: Int
    public var ctx: Int
    public var kv_type: String
    /// "int8" when Q8_0 matrices multiplied int8-quantized activations (the default), "f32" with
    /// --float-activations; absent in reports of older versions.
    public var activations: String?
    public var chunks: Int
    public var tokens_scored: Int
    public var base: ModelScore
    public var quant: ModelScore
    /// (perplexity_quant / perplexity_base − 1) × 100.
    public var delta_ppl_percent: Double
    public var kl: KLSummary
    public var top1_agreement: Double
    /// √ mean (p_quant(t*) − p_base(t*))², t* the base's top token.
    public var rms_delta_p: Double
    /// nil for dense models, or when the two models differ in layers or experts.
    public var routing_agreement: Routing?
    public var kl_histogram: LogHistogram
    /// Perplexity of each window for both models, and the mean KL per window.
    public var chunk_perplexity: ChunkSeries

    /// The figures as (label, value) rows, for the terminal and the HTML table.
    public func tableRows() -> [(String, String)] {
        func g(_ v: Double) -> String { String(format: "%.6g", v) }
        func pct(_ v: Double) -> String { String(format: "%.2f %%", v * 100) }
        var rows: [(String, String)] = [
            ("tokens scored", "\(tokens_scored) (\(chunks) windows of \(ctx), \(kv_type) KV cache\(activations == "f32" ? ", float activations" : ""))"),
            ("perplexity, base", String(format: "%.4f ± %.4f", base.perplexity, base.perplexity * base.nll_stderr)),
            ("perplexity, quantized", String(format: "%.4f ± %.4f", quant.perplexity, quant.perplexity * quant.nll_stderr)),
            ("Δ perplexity", String(format: "%+.3f %%", delta_ppl_percent)),
            ("KL divergence, mean", "\(g(kl.mean)) ± \(g(kl.mean_stderr))" + (kl.method == "exact" ? "" : " (\(kl.method))")),
        ]
        if let b = kl.bound_mean {
            rows.append(("KL mean, upper bound", "\(g(kl.mean + b)) (worst case of the top-k estimate)"))
        }
        rows += [
            ("KL divergence, median", g(kl.median)),
            ("KL divergence, p99", g(kl.p99)),
            ("KL divergence, max", g(kl.max)),
            ("top-1 agreement", pct(top1_agreement)),
            ("RMS Δp (base's top token)", pct(rms_delta_p)),
        ]
        if let r = routing_agreement {
            rows.append(("routing agreement", pct(r.overall)))
            rows.append(("routing per layer", r.per_layer.map { String(format: "%.1f", $0 * 100) }.joined(separator: " ") + " %"))
        }
        return rows
    }

    /// The terminal table.
    public func textTable() -> String {
        var out = "base   \(base.model) (\(base.format))\nquant  \(quant.model) (\(quant.format))\ntext   \(text)\n\n"
        let width = tableRows().map { $0.0.count }.max() ?? 0
        for (k, v) in tableRows() { out += k.padding(toLength: width + 2, withPad: " ", startingAt: 0) + v + "\n" }
        return out
    }
}

/// Adds up scored positions and expert choices into a ``ComparisonReport``.
public struct ComparisonAccumulator: Sendable {
    public private(set) var nllBase: [Double] = []
    public private(set) var nllQuant: [Double] = []
    public private(set) var kl: [Double] = []
    public private(set) var klBound: [Double] = []
    public private(set) var top1 = 0
    public private(set) var sumDeltaP2 = 0.0
    /// Per layer: positions compared, and positions with the same expert set.
    public private(set) var routingSame: [Int]
    public private(set) var routingTotal: [Int]
    public let expertsUsed: Int
    private var chunkStarts: [Int] = [0]

    /// `layers` = 0 (or `expertsUsed` = 0) when routing is not compared.
    public init(layers: Int, expertsUsed: Int) {
        routingSame = Array(repeating: 0, count: layers)
        routingTotal = Array(repeating: 0, count: layers)
        self.expertsUsed = expertsUsed
    }

    public mutating func add(_ p: PositionComparison) {
        nllBase.append(p.nllBase); nllQuant.append(p.nllQuant)
        kl.append(p.kl); klBound.append(p.klBound)
        if p.top1Match { top1 += 1 }
        sumDeltaP2 += p.deltaP * p.deltaP
    }

    /// Expert choices of one position: `layers × expertsUsed` ids each, every layer's ids sorted.
    public mutating func addRouting(base: ArraySlice<UInt8>, quant: ArraySlice<UInt8>) {
        let k = expertsUsed
        guard k > 0 else { return }
        for l in 0..<routingSame.count {
            let b = base[(base.startIndex + l * k)..<(base.startIndex + (l + 1) * k)]
            let q = quant[(quant.startIndex + l * k)..<(quant.startIndex + (l + 1) * k)]
            routingTotal[l] += 1
            if b.elementsEqual(q) { routingSame[l] += 1 }
        }
    }

    /// Marks the end of a window (for the per-window series).
    public mutating func endChunk() { chunkStarts.append(kl.count) }

    public var count: Int { kl.count }

    /// Mean and standard error of the mean.
    static func meanAndStderr(_ v: [Double]) -> (Double, Double) {
        let s = KLStats(v)
        return (s.mean, s.meanStderr)
    }

    public func report(text: EvaluationText, plan: ScoringPlan, kvType: String,
                       base: (model: String, format: String), quant: (model: String, format: String),
                       klMethod: String) -> ComparisonReport {
        let (mb, sb) = Self.meanAndStderr(nllBase), (mq, sq) = Self.meanAndStderr(nllQuant)
        let s = KLStats(kl)
        let n = Double(Swift.max(count, 1))
        let exact = klMethod == "exact"
        var routing: ComparisonReport.Routing?
        if expertsUsed > 0, !routingTotal.isEmpty, routingTotal.allSatisfy({ $0 > 0 }) {
            routing = ComparisonReport.Routing(
                overall: Double(routingSame.reduce(0, +)) / Double(routingTotal.reduce(0, +)),
                per_layer: zip(routingSame, routingTotal).map { Double($0) / Double($1) },
                experts_used: expertsUsed)
        }
        var series = ComparisonReport.ChunkSeries(base: [], quant: [], kl_mean: [])
        for c in 0..<(chunkStarts.count - 1) where chunkStarts[c + 1] > chunkStarts[c] {
            let r = chunkStarts[c]..<chunkStarts[c + 1]
            let m = Double(r.count)
            series.base.append(exp(nllBase[r].reduce(0, +) / m))
            series.quant.append(exp(nllQuant[r].reduce(0, +) / m))
            series.kl_mean.append(kl[r].reduce(0, +) / m)
        }
        let pplB = exp(mb), pplQ = exp(mq)
        return ComparisonReport(
            text: text.name, text_fnv1a64: FNV1a64.hex(text.hash), text_tokens: plan.tokens.count,
            ctx: plan.ctx, kv_type: kvType, activations: nil, chunks: plan.chunkCount, tokens_scored: count,
            base: .init(model: base.model, format: base.format, perplexity: pplB, mean_nll: mb, nll_stderr: sb),
            quant: .init(model: quant.model, format: quant.format, perplexity: pplQ, mean_nll: mq, nll_stderr: sq),
            delta_ppl_percent: (pplQ / pplB - 1) * 100,
            kl: .init(mean: s.mean, mean_stderr: s.meanStderr, median: s.median, p99: s.p99, max: s.max, method: klMethod,
                      bound_mean: exact ? nil : klBound.reduce(0, +) / n, bound_max: exact ? nil : (klBound.max() ?? 0)),
            top1_agreement: Double(top1) / n,
            rms_delta_p: (sumDeltaP2 / n).squareRoot(),
            routing_agreement: routing,
            kl_histogram: LogHistogram(kl),
            chunk_perplexity: series)
    }
}
