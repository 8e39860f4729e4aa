import Foundation
import Tokenizer

/// The text a comparison scores, with the fingerprint a base-logits file records.
public struct EvaluationText: Sendable {
    /// Where it came from (for messages and reports).
    public let name: String
    public let string: String
    /// FNV-1a 64 of the UTF-8 bytes exactly as read.
    public let hash: UInt64
    public let byteCount: Int

    /// Reads a UTF-8 file. Throws for a missing, empty or non-UTF-8 file.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EvaluationError("\(path): cannot read the text file")
        }
        guard !data.isEmpty else { throw EvaluationError("\(path): the text is empty") }
        guard let s = String(data: data, encoding: .utf8) else { throw EvaluationError("\(path): the text is not UTF-8") }
        self.init(string: s, name: path)
    }

    /// A text given in memory.
    public init(string: String, name: String) {
        self.name = name
        self.string = string
        hash = FNV1a64.hash(string.utf8)
        byteCount = string.utf8.count
    }
}

/// How the text is cut and scored, the way llama.cpp's `llama-perplexity` does it.
///
/// The text is tokenized without BOS and cut into `chunkCount` consecutive windows of `ctx`
/// tokens (a shorter remainder is dropped). The first token of every window is replaced by BOS
/// and each window runs from an empty KV cache. Position `i` of a window predicts token `i + 1`;
/// the positions scored are `ctx/2 ..< ctx−1` (the first half only gives context), so every
/// window scores `ctx − 1 − ctx/2` tokens. Expert choices are compared at the same positions.
public struct ScoringPlan: Sendable {
    public let ctx: Int
    /// Tokens of the whole text (no BOS).
    public let tokens: [Int32]
    public let bos: Int32
    public let chunkCount: Int

    /// Positions of a window whose next-token prediction is scored.
    public var scoredPositions: Range<Int> { (ctx / 2)..<(ctx - 1) }
    public var positionsPerChunk: Int { scoredPositions.count }
    public var tokensScored: Int { chunkCount * positionsPerChunk }

    /// The smallest window that scores at least one token.
    public static let minimumContext = 3

    /// - Throws: when `ctx` is below ``minimumContext``, the text gives no tokens, or fewer
    ///   than `ctx` (naming how many it has).
    /// - Parameter maxChunks: score at most this many windows (the first ones), as
    ///   llama-perplexity's `--chunks`.
    public init(tokens: [Int32], ctx: Int, bos: Int32, textName: String = "the text", maxChunks: Int? = nil) throws {
        guard ctx >= Self.minimumContext else {
            throw EvaluationError("--ctx \(ctx) is too small: a window must have at least \(Self.minimumContext) tokens")
        }
        guard !tokens.isEmpty else { throw EvaluationError("\(textName): the text is empty (no tokens)") }
        guard tokens.count >= ctx else {
            throw EvaluationError("\(textName) has only \(tokens.count) tokens, fewer than one window of --ctx \(ctx); use a longer text or --ctx ≤ \(tokens.count)")
        }
        self.ctx = ctx
        self.tokens = tokens
        self.bos = bos
        chunkCount = min(tokens.count / ctx, max(1, maxChunks ?? .max))
    }

    public init(text: EvaluationText, tokenizer: Tokenizer, ctx: Int, maxChunks: Int? = nil) throws {
        try self.init(tokens: tokenizer.encode(text.string), ctx: ctx, bos: tokenizer.vocabulary.bosID, textName: text.name, maxChunks: maxChunks)
    }

    /// The `ctx` tokens window `c` runs, BOS first (when the vocabulary has one).
    public func chunk(_ c: Int) -> [Int32] {
        var w = Array(tokens[(c * ctx)..<((c + 1) * ctx)])
        if bos >= 0 { w[0] = bos }
        return w
    }

    /// The token that position `i` of window `c` should predict.
    public func target(chunk c: Int, position i: Int) -> Int32 { tokens[c * ctx + i + 1] }
}
