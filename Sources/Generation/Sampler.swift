#if canImport(Glibc)
import Glibc
#endif
import Kernels

/// How the next token is picked from the logits.
public struct SamplingOptions: Sendable, Equatable {
    /// 0 means greedy (argmax).
    public var temperature: Float = 0.7
    /// Keep only the k most likely tokens (0 = off).
    public var topK: Int = 40
    /// Keep the smallest set of tokens whose probability reaches p (1 = off).
    public var topP: Float = 0.95
    /// Drop tokens less likely than minP × the most likely one (0 = off).
    public var minP: Float = 0.05
    /// Divide positive logits (multiply negative ones) of recently seen tokens by this (1 = off, the default).
    public var repeatPenalty: Float = 1.0
    /// How many recent tokens the repetition penalty looks at.
    public var repeatLastN: Int = 64
    /// Same seed, same model, same prompt ⇒ same text.
    public var seed: UInt64 = 0
    /// Added to a token's logit before anything else (OpenAI's `logit_bias`); −100 or less bans
    /// the token outright.
    public var logitBias: [Int32: Float] = [:]
    public init() {}

    /// Greedy decoding with no penalties: reproduces a reference greedy continuation.
    public static var greedy: SamplingOptions {
        var o = SamplingOptions(); o.temperature = 0; o.repeatPenalty = 1; o.topK = 0; o.topP = 1; o.minP = 0
        return o
    }
}

/// Picks tokens from logits. Owns its scratch (one candidate buffer of vocabulary size), so
/// sampling allocates nothing per token.
public final class Sampler {
    public var options: SamplingOptions
    private var rng: SplitMix64
    private let vocab: Int
    private var candidates: UnsafeMutablePointer<(id: Int32, p: Float)>
    /// Which tokens the penalty has already lowered in this call (all false between calls).
    private var penalised: UnsafeMutablePointer<Bool>

    public init(vocabularySize: Int, options: SamplingOptions) {
        self.options = options
        vocab = vocabularySize
        rng = SplitMix64(seed: options.seed)
        candidates = .allocate(capacity: vocabularySize)
        penalised = .allocate(capacity: vocabularySize)
        penalised.initialize(repeating: false, count: vocabularySize)
    }

    deinit { candidates.deallocate(); penalised.deallocate() }

    /// Restarts the random sequence from the options' seed.
    public func reseed(_ seed: UInt64) { options.seed = seed; rng = SplitMix64(seed: seed) }

    /// Samples one id from `logits` (`vocabularySize` floats; modified in place by the penalty).
    /// `recent` are the tokens so far; the repetition penalty looks at the last `repeatLastN`.
    public func sample(_ logits: UnsafeMutablePointer<Float>, recent: some BidirectionalCollection<Int32>) -> Int32 {
        let o = options
        for (t, b) in o.logitBias where t >= 0 && Int(t) < vocab {
            logits[Int(t)] = b <= -100 ? -.infinity : logits[Int(t)] + b
        }
        if o.repeatPenalty != 1 {
            // Once per distinct token, however often it occurs (as llama.cpp and transformers do).
            let window = recent.suffix(o.repeatLastN)
            for t in window where t >= 0 && Int(t) < vocab && !penalised[Int(t)] {
                penalised[Int(t)] = true
                let l = logits[Int(t)]
                logits[Int(t)] = l > 0 ? l / o.repeatPenalty : l * o.repeatPenalty
            }
            for t in window where t >= 0 && Int(t) < vocab { penalised[Int(t)] = false }
        }
        if o.temperature <= 0 {
            var best = 0
            for i in 1..<vocab where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        // Softmax at temperature over all tokens.
        var maxL = -Float.infinity
        for i in 0..<vocab { maxL = max(maxL, logits[i]) }
        var n = 0
        var sum: Float = 0
        for i in 0..<vocab {
            let p = expf((logits[i] - maxL) / o.temperature)
            candidates[n] = (Int32(i), p); sum += p; n += 1
        }
        // min-p: relative to the best token (whose unnormalised p is 1).
        if o.minP > 0 {
            var m = 0
            for i in 0..<n where candidates[i].p >= o.minP { candidates[m] = candidates[i]; m += 1 }
            n = m
        }
        // Sort the survivors by probability (top-k first, to sort fewer).
        var buf = UnsafeMutableBufferPointer(start: candidates, count: n)
        if o.topK > 0 && o.topK < n {
            partialSortDescending(buf, k: o.topK)
            n = o.topK
        } else if o.topP < 1 {
            buf.sort { $0.p > $1.p }  // only without top-k; otherwise the order does not matter
        }
        sum = 0
        for i in 0..<n { sum += candidates[i].p }
        if o.topP < 1 {
            var acc: Float = 0
            var m = 0
            while m < n { acc += candidates[m].p; m += 1; if acc >= o.topP * sum { break } }
            n = m
            sum = acc
        }
        let r = Float(Double(rng.next() >> 11) * 0x1p-53) * sum
        var acc: Float = 0
        for i in 0..<n { acc += candidates[i].p; if r < acc { return candidates[i].id } }
        return candidates[n - 1].id
    }

    /// Moves the k largest to the front, sorted descending.
    private func partialSortDescending(_ b: UnsafeMutableBufferPointer<(id: Int32, p: Float)>, k: Int) {
        // Selection by a bounded insertion into the first k slots: O(n·k) worst, fast for k ≤ 100.
        var filled = 0
        for i in 0..<b.count {
            let c = b[i]
            if filled < k {
                var j = filled; filled += 1
                while j > 0 && b[j - 1].p < c.p { b[j] = b[j - 1]; j -= 1 }
                b[j] = c
            } else if c.p > b[k - 1].p {
                var j = k - 1
                while j > 0 && b[j - 1].p < c.p { b[j] = b[j - 1]; j -= 1 }
                b[j] = c
            }
        }
    }
}
