import Dispatch
import Engine
import Kernels
import Tokenizer

/// Why generation ended.
public enum FinishReason: String, Sendable { case stop, length, cancelled }

/// Timing and counts of one generation.
public struct GenerationStats: Sendable {
    /// Prompt tokens evaluated (not counting ones reused from the KV cache).
    public var promptTokens = 0
    /// Prompt tokens found already in the KV cache.
    public var reusedTokens = 0
    public var promptSeconds = 0.0
    public var generatedTokens = 0
    public var decodeSeconds = 0.0
    /// From the call to the first generated token.
    public var timeToFirstToken = 0.0
    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(max(generatedTokens - 1, 0)) / decodeSeconds : 0 }
}

/// The outcome of one generation.
public struct GenerationResult: Sendable {
    public var text: String
    public var tokens: [Int32]
    public var finishReason: FinishReason
    public var stats: GenerationStats
}

/// A conversation with a model: the KV cache stays filled between calls, so each call evaluates
/// only the tokens that are new since the last one (the longest common prefix is reused).
public final class Session: @unchecked Sendable {
    public let model: Model
    public let tokenizer: Tokenizer
    public let transformer: Transformer
    public let template: ChatTemplate
    public var sampling: SamplingOptions
    /// Tokens whose keys and values are in the cache, in order.
    public private(set) var cachedTokens: [Int32] = []
    /// The chat so far (for `respond`), with the token ids of each turn as evaluated.
    public private(set) var messages: [ChatMessage] = []
    /// The conversation's token ids (BOS, turns, answers with EOS) — what `cachedTokens` holds
    /// after a completed turn.
    public private(set) var history: [Int32] = []
    private let sampler: Sampler

    public init(model: Model, pool: WorkerPool, kvType: KVType = .f16, contextLength: Int? = nil,
                sampling: SamplingOptions = SamplingOptions(), maxBatch: Int = 64) throws {
        self.model = model
        tokenizer = try Tokenizer(vocabulary: model.vocabulary)
        transformer = try Transformer(weights: model.weights, pool: pool, kvType: kvType,
                                      contextLength: contextLength, maxBatch: maxBatch)
        template = ChatTemplate(modelTemplate: model.chatTemplate)
        self.sampling = sampling
        sampler = Sampler(vocabularySize: model.config.nVocab, options: sampling)
    }

    public var contextLength: Int { transformer.cache.contextLength }

    func restoreConversation(cached: [Int32], history: [Int32], messages: [ChatMessage]) {
        cachedTokens = cached; self.history = history; self.messages = messages
    }

    /// Forgets the conversation and the cache.
    public func reset() {
        transformer.reset(); cachedTokens = []; messages = []; history = []
    }

    /// Evaluates `prompt` (reusing the cached prefix), then samples up to `maxTokens` tokens,
    /// calling `onText` with each piece of text as soon as it is complete UTF-8 and cannot be the
    /// start of a stop string. `shouldContinue` is polled before every token.
    public func generate(prompt: [Int32], maxTokens: Int, stop: [String] = [],
                         shouldContinue: () -> Bool = { true },
                         onText: (String) -> Void = { _ in }) throws -> GenerationResult {
        precondition(!prompt.isEmpty)
        var stats = GenerationStats()
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds(since t: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 }
        guard prompt.count < contextLength else {
            throw EngineError("the prompt (\(prompt.count) tokens) does not fit the context of \(contextLength) tokens")
        }

        // Reuse the longest common prefix; at least the last prompt token is evaluated to get logits.
        var keep = 0
        while keep < min(cachedTokens.count, prompt.count - 1) && cachedTokens[keep] == prompt[keep] { keep += 1 }
        transformer.rewind(to: keep)
        cachedTokens.removeSubrange(keep...)
        stats.reusedTokens = keep
        var i = keep
        while i < prompt.count {
            let n = min(transformer.maxBatch, prompt.count - i)
            try prompt[i..<(i + n)].withUnsafeBufferPointer {
                try transformer.forward($0, logits: i + n == prompt.count ? .last : .none)
            }
            i += n
        }
        cachedTokens += prompt[keep...]
        stats.promptTokens = prompt.count - keep
        stats.promptSeconds = seconds(since: start)

        sampler.options = sampling
        sampler.reseed(sampling.seed)
        var decoder = StreamingDecoder(tokenizer: tokenizer, isFirst: true)
        var generated: [Int32] = []
        generated.reserveCapacity(maxTokens)
        var text = ""
        var emitted = 0   // characters of `text` already passed to onText
        var finish = FinishReason.length
        let eos = tokenizer.vocabulary.eosID
        let decodeStart = DispatchTime.now().uptimeNanoseconds
        var one: [Int32] = [0]
        while generated.count < maxTokens {
            if !shouldContinue() { finish = .cancelled; break }
            let recent = (cachedTokens.count > sampling.repeatLastN ? cachedTokens.suffix(sampling.repeatLastN) : cachedTokens[...])
            let next = sampler.sample(transformer.logits, recent: recent)
            if generated.isEmpty { stats.timeToFirstToken = seconds(since: start) }
            generated.append(next)
            if next == eos { finish = .stop; break }
            text += decoder.append(next)
            if let r = stop.compactMap({ text.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
                text = String(text[..<r.lowerBound])
                finish = .stop
                break
            }
            // Emit all but a tail that could still become a stop string.
            let holdBack = stop.map { s in (1..<max(s.count, 1)).reversed().first { text.hasSuffix(s.prefix($0)) } ?? 0 }.max() ?? 0
            let safe = text.count - holdBack
            if safe > emitted {
                let a = text.index(text.startIndex, offsetBy: emitted), b = text.index(text.startIndex, offsetBy: safe)
                onText(String(text[a..<b])); emitted = safe
            }
            if generated.count == maxTokens { break }
            if transformer.position + 1 > contextLength { finish = .length; break }
            one[0] = next
            try one.withUnsafeBufferPointer { try transformer.forward($0, logits: .last) }
            cachedTokens.append(next)
        }
        if finish != .stop || !stop.isEmpty {
            text += finish == .stop ? "" : decoder.flush()
        }
        if text.count > emitted {
            onText(String(text[text.index(text.startIndex, offsetBy: emitted)...]))
        }
        stats.generatedTokens = generated.count
        stats.decodeSeconds = seconds(since: decodeStart)
        return GenerationResult(text: text, tokens: generated, finishReason: finish, stats: stats)
    }

    /// Notices the chat gives the user (e.g. that old turns were dropped to fit the context).
    public var onNotice: (String) -> Void = { _ in }

    /// One chat turn: adds the user's message, answers it, and keeps both in the conversation.
    /// Only the new turn's tokens are evaluated; when the context would overflow, the oldest
    /// turns are dropped (with a notice) and the rest re-evaluated.
    public func respond(to user: String, system: String? = nil, maxTokens: Int = 512,
                        shouldContinue: () -> Bool = { true }, onText: (String) -> Void = { _ in }) throws -> GenerationResult {
        if messages.isEmpty, let system, !system.isEmpty { messages.append(ChatMessage(role: .system, content: system)) }
        var prompt: [Int32]
        if history.isEmpty {
            prompt = try template.tokens(messages + [ChatMessage(role: .user, content: user)], tokenizer: tokenizer)
        } else {
            prompt = history + tokenizer.encode("[INST] " + user + " [/INST]")
        }
        let budget = min(maxTokens, contextLength / 2)
        if prompt.count + budget > contextLength {
            // Drop the oldest user/assistant pairs until the conversation fits, then re-template.
            var kept = messages.filter { $0.role != .system }
            let sys = messages.first { $0.role == .system }
            var dropped = 0
            repeat {
                if kept.count >= 2 { kept.removeFirst(2); dropped += 1 } else { break }
                prompt = try template.tokens((sys.map { [$0] } ?? []) + kept + [ChatMessage(role: .user, content: user)], tokenizer: tokenizer)
            } while prompt.count + budget > contextLength
            if prompt.count + 1 >= contextLength {
                throw EngineError("this message alone (\(prompt.count) tokens) does not fit the context of \(contextLength) tokens")
            }
            messages = (sys.map { [$0] } ?? []) + kept
            onNotice("context full: dropped the \(dropped) oldest turn\(dropped == 1 ? "" : "s") to make room")
        }
        let result = try generate(prompt: prompt, maxTokens: min(maxTokens, contextLength - prompt.count),
                                  shouldContinue: shouldContinue, onText: onText)
        messages.append(ChatMessage(role: .user, content: user))
        messages.append(ChatMessage(role: .assistant, content: result.text))
        // The answer's ids as generated, closed by EOS, so the next turn reuses the cache as is.
        var answer = result.tokens
        if answer.last != tokenizer.vocabulary.eosID { answer.append(tokenizer.vocabulary.eosID) }
        history = prompt + answer
        return result
    }

    /// Streams the answer to `user` as pieces of text.
    public func respond(to user: String, maxTokens: Int = 512) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            do {
                _ = try self.respond(to: user, maxTokens: maxTokens) { continuation.yield($0) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }
}
