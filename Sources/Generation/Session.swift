import Dispatch
import Foundation
import Synchronization
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
        busy.lock(); defer { busy.unlock() }
        transformer.reset(); cachedTokens = []; messages = []; history = []
    }

    /// Held for the whole of every operation on the model (generate, respond, save, load, reset):
    /// the transformer, its KV cache and the worker pool serve one caller at a time. A streamed
    /// answer that was abandoned holds it until its thread has stopped (at the next token), so
    /// the next call waits for that instead of running beside it. Recursive: respond calls
    /// generate.
    let busy = NSRecursiveLock()

    /// Evaluates `prompt` (reusing the cached prefix), then samples up to `maxTokens` tokens,
    /// calling `onText` with each piece of text as soon as it is complete UTF-8 and cannot be the
    /// start of a stop string. `shouldContinue` is polled before every token.
    public func generate(prompt: [Int32], maxTokens: Int, stop: [String] = [],
                         shouldContinue: () -> Bool = { true },
                         onText: (String) -> Void = { _ in }) throws -> GenerationResult {
        busy.lock(); defer { busy.unlock() }
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
        generated.reserveCapacity(min(maxTokens, contextLength))
        // The answer as UTF-8 (whole characters only); `emitted` bytes of it went to onText.
        var text: [UInt8] = []
        text.reserveCapacity(min(maxTokens, contextLength) * 8)
        var emitted = 0
        let stops = stop.filter { !$0.isEmpty }.map { Array($0.utf8) }
        var finish = FinishReason.length
        let eos = tokenizer.vocabulary.eosID
        let decodeStart = DispatchTime.now().uptimeNanoseconds
        var one: [Int32] = [0]
        while generated.count < maxTokens {
            if !shouldContinue() { finish = .cancelled; break }
            // Through a buffer pointer: a slice of `cachedTokens` still alive at the append below
            // would make the append copy the whole array.
            let next = cachedTokens.withUnsafeBufferPointer { sampler.sample(transformer.logits, recent: $0) }
            if generated.isEmpty { stats.timeToFirstToken = seconds(since: start) }
            generated.append(next)
            if next == eos { finish = .stop; break }
            let before = text.count
            decoder.append(next, into: &text)
            if let cut = Self.firstStop(stops, in: text, newFrom: before) {
                text.removeSubrange(cut...)
                finish = .stop
                break
            }
            // Emit all but a tail that could still become a stop string.
            let safe = text.count - Self.stopPrefixLength(stops, endingAt: text)
            if safe > emitted {
                onText(String(decoding: text[emitted..<safe], as: UTF8.self)); emitted = safe
            }
            if generated.count == maxTokens { break }
            if transformer.position + 1 > contextLength { finish = .length; break }
            one[0] = next
            try one.withUnsafeBufferPointer { try transformer.forward($0, logits: .last) }
            cachedTokens.append(next)
        }
        if finish != .stop { decoder.flush(into: &text) }
        if text.count > emitted { onText(String(decoding: text[emitted...], as: UTF8.self)) }
        stats.generatedTokens = generated.count
        stats.decodeSeconds = seconds(since: decodeStart)
        return GenerationResult(text: String(decoding: text, as: UTF8.self), tokens: generated, finishReason: finish, stats: stats)
    }

    /// Where the earliest stop string starts in `text`, looking only at matches that end in the
    /// bytes from `newFrom` on (earlier ones were checked before).
    static func firstStop(_ stops: [[UInt8]], in text: [UInt8], newFrom: Int) -> Int? {
        var best: Int?
        for s in stops where s.count <= text.count {
            var i = max(0, newFrom - s.count + 1)
            while i + s.count <= text.count && i < (best ?? .max) {
                var k = 0
                while k < s.count && text[i + k] == s[k] { k += 1 }
                if k == s.count { best = i; break }
                i += 1
            }
        }
        return best
    }

    /// The length of the longest end of `text` that is a proper beginning of a stop string (held
    /// back until the next token shows whether the stop string follows). Stop strings begin with
    /// a UTF-8 lead byte, so what is emitted before it always ends on a whole character.
    static func stopPrefixLength(_ stops: [[UInt8]], endingAt text: [UInt8]) -> Int {
        var longest = 0
        for s in stops {
            var n = min(s.count - 1, text.count)
            while n > longest {
                var k = 0
                while k < n && text[text.count - n + k] == s[k] { k += 1 }
                if k == n { longest = n; break }
                n -= 1
            }
        }
        return longest
    }

    /// Notices the chat gives the user (e.g. that old turns were dropped to fit the context).
    public var onNotice: (String) -> Void = { _ in }

    /// One chat turn: adds the user's message, answers it, and keeps both in the conversation.
    /// Only the new turn's tokens are evaluated; when the context would overflow, the oldest
    /// turns are dropped (with a notice) and the rest re-evaluated.
    public func respond(to user: String, system: String? = nil, maxTokens: Int = 512,
                        shouldContinue: () -> Bool = { true }, onText: (String) -> Void = { _ in }) throws -> GenerationResult {
        busy.lock(); defer { busy.unlock() }
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
        try catchUpWithHistory()
        return result
    }

    /// Evaluates the end of the last answer that was sampled but never fed back (its last token
    /// and the closing EOS), so the next turn evaluates only its own tokens.
    func catchUpWithHistory() throws {
        guard cachedTokens.count < history.count, history.count < contextLength,
              Array(history.prefix(cachedTokens.count)) == cachedTokens else { return }
        let pending = Array(history[cachedTokens.count...])
        transformer.rewind(to: cachedTokens.count)
        var i = 0
        while i < pending.count {
            let n = min(transformer.maxBatch, pending.count - i)
            try pending[i..<(i + n)].withUnsafeBufferPointer { try transformer.forward($0, logits: .none) }
            i += n
        }
        cachedTokens += pending
    }

    /// Streams the answer to `user` as pieces of text, generated on a thread of its own while the
    /// caller consumes them. Ending the iteration early (or cancelling its task) stops the
    /// generation at the next token. One generation at a time per session.
    public func respond(to user: String, maxTokens: Int = 512) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            let stopped = StopFlag()
            continuation.onTermination = { _ in stopped.set() }
            let worker = Thread {
                self.busy.lock(); defer { self.busy.unlock() }
                // Abandoned before it started: leave the conversation as it is.
                if stopped.isSet { continuation.finish(); return }
                do {
                    _ = try self.respond(to: user, system: nil, maxTokens: maxTokens,
                                         shouldContinue: { !stopped.isSet }) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            worker.name = "octet-generate"
            worker.start()
        }
    }
}

/// A flag one thread sets and another polls.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
