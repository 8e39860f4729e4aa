import Foundation

/// Log-softmax pieces of one row of logits, computed in Double.
public enum LogSoftmax {
    /// log Σᵢ exp(zᵢ) = m + log Σᵢ exp(zᵢ − m) with m = max zᵢ, summed in index order.
    /// Throws if a logit is NaN or infinite.
    public static func logSumExp(_ row: UnsafeBufferPointer<Float>) throws -> Double {
        var m = -Double.infinity
        for z in row {
            guard z.isFinite else { throw EvaluationError("the model produced a non-finite logit (\(z))") }
            m = Swift.max(m, Double(z))
        }
        var s = 0.0
        for z in row { s += exp(Double(z) - m) }
        return m + log(s)
    }

    /// Index of the largest logit (the lowest index among equals).
    public static func argmax(_ row: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1..<row.count where row[i] > row[best] { best = i }
        return best
    }

    /// The `k` largest logits, largest first, ties to the lower index (so the first is ``argmax(_:)``).
    public static func topK(_ row: UnsafeBufferPointer<Float>, k: Int) -> (ids: [Int32], logits: [Float]) {
        let k = Swift.min(k, row.count)
        var ids = [Int32](), vals = [Float]()
        ids.reserveCapacity(k + 1); vals.reserveCapacity(k + 1)
        for i in 0..<row.count {
            let z = row[i]
            if vals.count == k, !(z > vals[k - 1]) { continue }
            // Insert after every value ≥ z (keeps index order among equals).
            var pos = vals.count
            while pos > 0 && vals[pos - 1] < z { pos -= 1 }
            vals.insert(z, at: pos); ids.insert(Int32(i), at: pos)
            if vals.count > k { vals.removeLast(); ids.removeLast() }
        }
        return (ids, vals)
    }
}

/// What one scored position contributes to a comparison.
public struct PositionComparison: Sendable, Equatable {
    /// −log p_base(next token), −log p_quant(next token).
    public var nllBase: Double
    public var nllQuant: Double
    /// KL(base ‖ quant) in nats: exact over the vocabulary, or the top-k + rest estimate
    /// (a lower bound of the exact value, see ``TopKBaseRow``).
    public var kl: Double
    /// How much larger the exact KL can be than `kl` (0 when `kl` is exact).
    public var klBound: Double
    /// Whether both models put the same token first.
    public var top1Match: Bool
    /// p_quant(t*) − p_base(t*) for the base's top token t*.
    public var deltaP: Double

    public init(nllBase: Double, nllQuant: Double, kl: Double, klBound: Double, top1Match: Bool, deltaP: Double) {
        self.nllBase = nllBase; self.nllQuant = nllQuant; self.kl = kl; self.klBound = klBound
        self.top1Match = top1Match; self.deltaP = deltaP
    }

    /// Both full rows at hand: KL(P‖Q) = Σᵢ pᵢ (log pᵢ − log qᵢ) over the whole vocabulary, with
    /// log pᵢ = zᵢ − logsumexp(z) in Double. A result below 0 (rounding, only when P = Q to the last
    /// bit or nearly) is reported as 0.
    public static func exact(base: UnsafeBufferPointer<Float>, quant: UnsafeBufferPointer<Float>, target: Int) throws -> PositionComparison {
        precondition(base.count == quant.count && target >= 0 && target < base.count)
        let lseP = try LogSoftmax.logSumExp(base), lseQ = try LogSoftmax.logSumExp(quant)
        var kl = 0.0
        for i in 0..<base.count {
            let lp = Double(base[i]) - lseP, lq = Double(quant[i]) - lseQ
            kl += exp(lp) * (lp - lq)
        }
        let top = LogSoftmax.argmax(base)
        return PositionComparison(
            nllBase: lseP - Double(base[target]), nllQuant: lseQ - Double(quant[target]),
            kl: Swift.max(kl, 0), klBound: 0,
            top1Match: LogSoftmax.argmax(quant) == top,
            deltaP: exp(Double(quant[top]) - lseQ) - exp(Double(base[top]) - lseP))
    }

    /// The base known only through its saved top-k (``TopKBaseRow``), the quantized row in full.
    /// See ``TopKBaseRow`` for the estimate and its bound. `inTop` is scratch of vocabulary
    /// size, all false on entry and on return.
    public static func topK(base b: TopKBaseRow, quant: UnsafeBufferPointer<Float>, target: Int,
                            scratch inTop: inout [Bool]) throws -> PositionComparison {
        precondition(target >= 0 && target < quant.count && inTop.count == quant.count)
        let lseQ = try LogSoftmax.logSumExp(quant)
        var klTop = 0.0
        for j in 0..<b.ids.count {
            let lp = Double(b.logits[j]) - b.logSumExp, lq = Double(quant[Int(b.ids[j])]) - lseQ
            klTop += exp(lp) * (lp - lq)
            inTop[Int(b.ids[j])] = true
        }
        // Mass of the quantized model outside the base's top k, summed directly (no 1 − Σ).
        var restQ = 0.0
        for i in 0..<quant.count where !inTop[i] { restQ += exp(Double(quant[i]) - lseQ) }
        var kl = klTop, bound = 0.0
        let restP = exp(b.logRestMass)
        if restP > 0 {
            let logRestQ = log(Swift.max(restQ, Double.leastNonzeroMagnitude))
            kl += restP * (b.logRestMass - logRestQ)
            let logPk = Double(b.logits[b.ids.count - 1]) - b.logSumExp
            bound = TopKBaseRow.worstCaseGap(restMass: restP, logSmallestTop: logPk, logRestQ: logRestQ, quant: quant,
                                             lseQ: lseQ, excluded: inTop)
        }
        for id in b.ids { inTop[Int(id)] = false }
        let top = Int(b.ids[0])
        return PositionComparison(
            nllBase: b.logSumExp - Double(b.targetLogit), nllQuant: lseQ - Double(quant[target]),
            kl: Swift.max(kl, 0), klBound: bound,
            top1Match: LogSoftmax.argmax(quant) == top,
            deltaP: exp(Double(quant[top]) - lseQ) - exp(Double(b.logits[0]) - b.logSumExp))
    }
}

/// What a base-logits file keeps of one scored position of the base model.
///
/// **The estimate.** With S the base's k most likely tokens, P_R = Σ_{i∉S} pᵢ and
/// Q_R = Σ_{i∉S} qᵢ, the KL divergence is estimated over S plus one "rest" bucket:
///
///     KL̂ = Σ_{i∈S} pᵢ log(pᵢ/qᵢ) + P_R log(P_R/Q_R).
///
/// **Lower bound.** By the log-sum inequality, Σ_{i∉S} pᵢ log(pᵢ/qᵢ) ≥ P_R log(P_R/Q_R), so
/// KL̂ ≤ KL, and the gap is G = KL − KL̂ = P_R · KL(p_R ‖ q_R) ≥ 0, where p_R and q_R are the two
/// distributions restricted to the rest and renormalized. G = 0 when the rest is empty (k ≥ vocabulary)
/// or when quantization leaves the tail's shape unchanged.
///
/// **Upper bound.** The file does not know how the base spreads P_R over the rest, only that every
/// pᵢ (i ∉ S) lies in [0, p_k], p_k being the smallest of the top k. The quantized row is known in full.
/// G is a convex function of those pᵢ, so its largest value over {0 ≤ pᵢ ≤ p_k, Σ pᵢ = P_R} is at a
/// vertex: n = ⌊P_R/p_k⌋ of them equal to p_k, one equal to r = P_R − n·p_k, the rest 0; and by the
/// rearrangement inequality the worst vertex puts them on the quantized model's least likely rest
/// tokens q₍₀₎ ≤ q₍₁₎ ≤ …:
///
///     G ≤ B = Σ_{j<n} p_k log(p_k/q₍ⱼ₎) + r log(r/q₍ₙ₎) − P_R log(P_R/Q_R).
///
/// So KL̂ ≤ KL ≤ KL̂ + B for every token, and the mean KL lies in [mean KL̂, mean KL̂ + mean B].
/// (A looser closed form: B ≤ P_R (log(p_k / q_min) − log(P_R/Q_R)), q_min the smallest rest qᵢ.)
/// B is a worst case; the true gap is usually far smaller, since it needs the quantized model to
/// move the tail's mass around, not just its total.
///
/// Everything else — the true token's log-probability, the top token, Δp and the expert choices — is
/// stored exactly: logits are kept as the Float the model produced and the log-sum-exp as a Double,
/// so log-probabilities are recomputed to the last bit.
public struct TopKBaseRow: Sendable, Equatable {
    /// The top-k token ids, most likely first (ties to the lower id), and their logits.
    public var ids: [Int32]
    public var logits: [Float]
    /// log Σ exp(z) over the whole vocabulary.
    public var logSumExp: Double
    /// log P_R: log of the probability outside the top k (−∞ when there is none).
    public var logRestMass: Double
    /// The logit of the token that followed.
    public var targetLogit: Float

    public init(ids: [Int32], logits: [Float], logSumExp: Double, logRestMass: Double, targetLogit: Float) {
        self.ids = ids; self.logits = logits; self.logSumExp = logSumExp; self.logRestMass = logRestMass
        self.targetLogit = targetLogit
    }

    /// Summarizes a full row. `inTop` is scratch of vocabulary size, all false on entry and on return.
    public init(row: UnsafeBufferPointer<Float>, target: Int, k: Int, scratch inTop: inout [Bool]) throws {
        let lse = try LogSoftmax.logSumExp(row)
        let (ids, vals) = LogSoftmax.topK(row, k: k)
        for id in ids { inTop[Int(id)] = true }
        var rest = 0.0
        for i in 0..<row.count where !inTop[i] { rest += exp(Double(row[i]) - lse) }
        for id in ids { inTop[Int(id)] = false }
        self.init(ids: ids, logits: vals, logSumExp: lse, logRestMass: log(rest), targetLogit: row[target])
    }

    /// B above. `excluded` marks S; `logRestQ` = log Q_R; `logSmallestTop` = log p_k.
    static func worstCaseGap(restMass pR: Double, logSmallestTop lpk: Double, logRestQ: Double,
                             quant: UnsafeBufferPointer<Float>, lseQ: Double, excluded: [Bool]) -> Double {
        let pk = exp(lpk)
        guard pk > 0 else { return .infinity }
        let nFull = Int((pR / pk).rounded(.down))
        let r = Swift.max(pR - Double(nFull) * pk, 0)
        let needed = nFull + 1
        // The `needed` smallest log qᵢ over the rest, ascending.
        var smallest: [Double] = []
        if needed <= 64 {
            smallest.reserveCapacity(needed + 1)
            for i in 0..<quant.count where !excluded[i] {
                let lq = Double(quant[i]) - lseQ
                if smallest.count == needed, lq >= smallest[needed - 1] { continue }
                var pos = smallest.count
                while pos > 0 && smallest[pos - 1] > lq { pos -= 1 }
                smallest.insert(lq, at: pos)
                if smallest.count > needed { smallest.removeLast() }
            }
        } else {
            for i in 0..<quant.count where !excluded[i] { smallest.append(Double(quant[i]) - lseQ) }
            smallest.sort()
        }
        guard !smallest.isEmpty else { return 0 }
        var worst = 0.0
        for j in 0..<Swift.min(nFull, smallest.count) { worst += pk * (lpk - smallest[j]) }
        if r > 0 { worst += r * (log(r) - smallest[Swift.min(nFull, smallest.count - 1)]) }
        return Swift.max(worst - pR * (log(pR) - logRestQ), 0)
    }
}
