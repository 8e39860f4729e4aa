import Dispatch
import Engine
import Foundation
import Generation
import Hummingbird
import Kernels
import Tokenizer
#if canImport(Glibc)
import Glibc
#endif

/// How `octet serve` runs.
public struct ServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// When set, every request but `GET /health` needs `Authorization: Bearer <apiKey>`.
    public var apiKey: String?
    /// Context length in tokens (default: the model's, at most 4096).
    public var contextLength: Int?
    /// Requests allowed to wait behind the running one; more get 429.
    public var maxQueue = 16
    public var threads = WorkerPool.onlineCPUs
    public var kvType: KVType = .f16
    /// Largest request body accepted (413 above).
    public var maxBodyBytes = 1 << 20
    /// At SIGTERM/SIGINT, how long the running generation may go on before it is cancelled.
    public var shutdownGrace = 10.0
    /// Sampling used for fields a request leaves out (OpenAI's `temperature`, `top_p` …).
    public var defaultSampling = SamplingOptions()
    /// The id `/v1/models` reports (default: the model's file or folder name without `.gguf`).
    public var modelID: String?
    public init() {}
}

/// An OpenAI-compatible HTTP API over one model and one `Session`.
///
/// `makeRouter()` / `makeApplication()` build the Hummingbird routes (testable in-process);
/// `run()` serves until SIGTERM/SIGINT. Generation happens on the `worker`'s own thread, one
/// request at a time, in arrival order.
public final class OpenAIServer: @unchecked Sendable {
    public let model: Model
    public let options: ServerOptions
    public let worker: GenerationWorker
    public let modelID: String
    public let contextLength: Int
    let tokenizer: Tokenizer
    let template: ChatTemplate
    let pool: WorkerPool
    let created = Int(Date().timeIntervalSince1970)
    /// Names a request's `model` may use for this model.
    let acceptedModelNames: Set<String>

    public init(model: Model, options: ServerOptions = ServerOptions()) throws {
        self.model = model
        self.options = options
        pool = WorkerPool(threads: max(1, options.threads))
        let ctx = options.contextLength ?? min(model.config.contextLength, 4096)
        let session = try Session(model: model, pool: pool, kvType: options.kvType, contextLength: ctx,
                                  sampling: options.defaultSampling)
        tokenizer = session.tokenizer
        template = session.template
        contextLength = session.contextLength
        var path = model.path
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        let file = (path as NSString).lastPathComponent
        let stem = file.hasSuffix(".gguf") ? String(file.dropLast(5)) : file
        modelID = options.modelID ?? stem
        acceptedModelNames = [modelID, stem, file, path, model.path, "default"]
        worker = GenerationWorker(session: session, maxQueue: options.maxQueue)
        worker.start()
    }

    /// Stops the generation thread once its queue is empty (tests; `run()` does it itself).
    public func close() {
        worker.beginShutdown(grace: 0)
        worker.stop()
    }

    // MARK: - Router

    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: OpenAIErrorMiddleware())
        if let key = options.apiKey, !key.isEmpty {
            router.add(middleware: BearerAuthMiddleware(key: key))
        }
        router.get("/health") { [self] _, _ in health() }
        router.get("/v1/models") { [self] _, _ in
            jsonResponse(["object": "list", "data": [modelObject]])
        }
        router.get("/v1/models/{id}") { [self] _, context in
            let id = context.parameters.get("id") ?? ""
            guard acceptedModelNames.contains(id) else {
                throw APIError(status: 404, message: "The model '\(id)' does not exist; this server serves '\(modelID)'", code: "model_not_found")
            }
            return jsonResponse(modelObject)
        }
        router.post("/v1/chat/completions") { [self] request, _ in try await complete(request, chat: true) }
        router.post("/v1/completions") { [self] request, _ in try await complete(request, chat: false) }
        return router
    }

    public func makeApplication(onServerRunning: @escaping @Sendable (Int?) async -> Void = { _ in })
        -> Application<RouterResponder<BasicRequestContext>> {
        Application(router: makeRouter(),
                    configuration: .init(address: .hostname(options.host, port: options.port), serverName: "octet"),
                    onServerRunning: { channel in await onServerRunning(channel.localAddress?.port) })
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting connections, fails queued requests
    /// with 503, lets the running generation finish (cancelling it after `shutdownGrace`
    /// seconds), and returns once every response is done.
    public func run(onListening: @escaping @Sendable (Int?) -> Void = { _ in }) async throws {
        let app = makeApplication { port in onListening(port) }
        let grace = options.shutdownGrace
        let signals = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [worker] in worker.beginShutdown(grace: grace) }
            source.resume()
            return source
        }
        defer { for s in signals { s.cancel() } }
        try await app.runService()
        worker.beginShutdown(grace: 0)
        worker.stop(timeout: 30)
    }

    // MARK: - Endpoints

    var modelObject: [String: Any] {
        ["id": modelID, "object": "model", "created": created, "owned_by": "octet",
         "context_length": contextLength, "format": model.formatDescription]
    }

    func health() -> Response {
        let s = worker.stats
        let down = worker.isShuttingDown
        return jsonResponse(["status": down ? "shutting_down" : "ok", "model": modelID,
                             "queue": ["running": s.running, "waiting": s.waiting, "max_waiting": worker.maxQueue],
                             "completed": s.completed, "cancelled": s.cancelled, "rejected": s.rejected, "failed": s.failed],
                            status: down ? .serviceUnavailable : .ok)
    }

    /// A validated request, ready to queue.
    struct Prepared {
        var prompt: [Int32]
        var maxTokens: Int
        var sampling: SamplingOptions
        var stop: [String]
        var stream: Bool
        var includeUsage: Bool
    }

    func prepare(_ data: Data, chat: Bool) throws -> Prepared {
        let decoder = JSONDecoder()
        let common: CommonFields
        var prompt: [Int32]
        do {
            common = try decoder.decode(CommonFields.self, from: data)
            if let name = common.model, !acceptedModelNames.contains(name) {
                throw APIError(status: 400, message: "The model '\(name)' does not exist; this server serves '\(modelID)'",
                               code: "model_not_found", param: "model")
            }
            if chat {
                prompt = try chatPrompt(decoder.decode(ChatRequest.self, from: data).messages)
            } else {
                prompt = try completionPrompt(decoder.decode(CompletionRequest.self, from: data).prompt)
            }
        } catch let e as DecodingError {
            let (message, param) = describe(e)
            throw APIError.invalid(message, code: param == nil ? "invalid_json" : "invalid_type", param: param)
        }
        if let n = common.n, n != 1 { throw APIError.invalid("only n = 1 is supported", param: "n") }
        guard prompt.count < contextLength else {
            throw APIError.invalid("the prompt is \(prompt.count) tokens; this server's context is \(contextLength) tokens",
                                   code: "context_length_exceeded", param: chat ? "messages" : "prompt")
        }
        let requested = common.max_completion_tokens ?? common.max_tokens
        if let r = requested {
            guard r >= 1 else { throw APIError.invalid("max_tokens must be at least 1", param: "max_tokens") }
            guard r <= contextLength else {
                throw APIError.invalid("max_tokens (\(r)) exceeds the context length (\(contextLength) tokens)",
                                       code: "context_length_exceeded", param: "max_tokens")
            }
        }
        let maxTokens = min(requested ?? contextLength, contextLength - prompt.count)

        var s = options.defaultSampling
        if let t = common.temperature {
            guard (0...2).contains(t) else { throw APIError.invalid("temperature must be between 0 and 2", param: "temperature") }
            s.temperature = Float(t)
        }
        if let p = common.top_p {
            guard (0...1).contains(p) else { throw APIError.invalid("top_p must be between 0 and 1", param: "top_p") }
            s.topP = Float(p)
        }
        if let k = common.top_k {
            guard k >= 0 else { throw APIError.invalid("top_k must be ≥ 0", param: "top_k") }
            s.topK = k
        }
        if let m = common.min_p {
            guard (0...1).contains(m) else { throw APIError.invalid("min_p must be between 0 and 1", param: "min_p") }
            s.minP = Float(m)
        }
        if let r = common.repeat_penalty {
            guard r > 0 else { throw APIError.invalid("repeat_penalty must be > 0", param: "repeat_penalty") }
            s.repeatPenalty = Float(r)
        }
        if let bias = common.logit_bias {
            guard bias.count <= 300 else { throw APIError.invalid("logit_bias takes at most 300 tokens", param: "logit_bias") }
            for (key, value) in bias {
                guard let id = Int32(key), id >= 0, Int(id) < tokenizer.vocabularySize else {
                    throw APIError.invalid("logit_bias keys must be token ids in 0..<\(tokenizer.vocabularySize), got \"\(key)\"", param: "logit_bias")
                }
                guard (-100...100).contains(value) else {
                    throw APIError.invalid("logit_bias values must be between -100 and 100", param: "logit_bias")
                }
                s.logitBias[id] = Float(value)
            }
        }
        s.seed = common.seed.map { UInt64(bitPattern: $0) } ?? UInt64.random(in: 0...UInt64.max)
        let stop = (common.stop?.values ?? []).filter { !$0.isEmpty }
        guard stop.count <= 16 else { throw APIError.invalid("at most 16 stop strings are supported", param: "stop") }
        // Each token is checked against every stop string's prefixes: keep that cheap.
        guard stop.allSatisfy({ $0.count <= 256 }) else { throw APIError.invalid("stop strings are limited to 256 characters", param: "stop") }
        return Prepared(prompt: prompt, maxTokens: maxTokens, sampling: s, stop: stop,
                        stream: common.stream ?? false, includeUsage: common.stream_options?.include_usage ?? false)
    }

    func chatPrompt(_ wire: [WireMessage]) throws -> [Int32] {
        guard !wire.isEmpty else { throw APIError.invalid("'messages' must not be empty", code: "empty_messages", param: "messages") }
        var messages: [ChatMessage] = []
        var systems: [String] = []
        for (i, m) in wire.enumerated() {
            let text = m.content?.text ?? ""
            switch m.role {
            case "system", "developer":
                guard messages.isEmpty else {
                    throw APIError.invalid("messages[\(i)]: a system message may only come first", code: "invalid_messages", param: "messages")
                }
                systems.append(text)
            case "user": messages.append(ChatMessage(role: .user, content: text))
            case "assistant": messages.append(ChatMessage(role: .assistant, content: text))
            default:
                throw APIError.invalid("messages[\(i)]: unsupported role '\(m.role)' (system, user and assistant are)",
                                       code: "invalid_messages", param: "messages")
            }
        }
        guard let last = messages.last, last.role == .user else {
            throw APIError.invalid("the last message must be from the user", code: "invalid_messages", param: "messages")
        }
        if !systems.isEmpty { messages.insert(ChatMessage(role: .system, content: systems.joined(separator: "\n\n")), at: 0) }
        do {
            return try template.tokens(messages, tokenizer: tokenizer)
        } catch {
            throw APIError.invalid("\(error)", code: "invalid_messages", param: "messages")
        }
    }

    func completionPrompt(_ p: PromptField) throws -> [Int32] {
        let v = tokenizer.vocabulary
        var ids: [Int32]
        switch p {
        case .text(let text):
            ids = (v.addBOS && v.bosID >= 0 ? [v.bosID] : []) + tokenizer.encode(text)
        case .tokens(let t):
            guard t.allSatisfy({ $0 >= 0 && $0 < tokenizer.vocabularySize }) else {
                throw APIError.invalid("token ids must be in 0..<\(tokenizer.vocabularySize)", param: "prompt")
            }
            ids = t.map { Int32($0) }
        }
        guard !ids.isEmpty else { throw APIError.invalid("'prompt' must not be empty", param: "prompt") }
        return ids
    }

    func complete(_ request: Request, chat: Bool) async throws -> Response {
        var request = request
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > options.maxBodyBytes {
            throw bodyTooLarge
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: options.maxBodyBytes)
        } catch let e as any HTTPResponseError where e.status == .contentTooLarge {
            throw bodyTooLarge
        } catch {
            // Truncated or otherwise unreadable (the client hung up mid-body): the client's fault.
            throw APIError.invalid("could not read the request body: \(error)", code: "invalid_body")
        }
        let p = try prepare(Data(body.readableBytesView), chat: chat)
        let job = GenerationJob(prompt: p.prompt, maxTokens: p.maxTokens, sampling: p.sampling, stop: p.stop)
        do {
            try worker.submit(job)
        } catch WorkerError.queueFull(let waiting) {
            throw APIError(status: 429, message: "the server is busy: \(waiting) request\(waiting == 1 ? " is" : "s are") already waiting; retry later",
                           code: "queue_full")
        } catch {
            throw shuttingDown
        }
        let meta = ResponseMeta(id: (chat ? "chatcmpl-" : "cmpl-") + Self.randomID(), chat: chat, created: Int(Date().timeIntervalSince1970),
                                model: modelID, promptTokens: p.prompt.count, seed: p.sampling.seed, includeUsage: p.includeUsage)
        if p.stream { return streamingResponse(request, job: job, meta: meta) }

        // Wait for the whole answer; a client that hangs up meanwhile cancels the job.
        let outcome: Result<GenerationResult, GenerationFailure>
        do {
            outcome = try await withTaskCancellationHandler {
                try await request.body.consumeWithInboundCloseHandler { _ in
                    await job.result()
                } onInboundClosed: {
                    job.cancel()
                }
            } onCancel: {
                job.cancel()
            }
        } catch {
            job.cancel()
            throw error
        }
        switch outcome {
        case .failure(let f):
            if job.serverCancelReason != nil { throw shuttingDown }
            throw APIError(status: 500, message: "generation failed: \(f.message)", code: "generation_failed")
        case .success(let r):
            if r.finishReason == .cancelled { throw job.serverCancelReason != nil ? shuttingDown : APIError(status: 499, message: "cancelled", code: "cancelled") }
            var object = meta.header(object: chat ? "chat.completion" : "text_completion")
            let finish = r.finishReason == .stop ? "stop" : "length"
            object["choices"] = [chat
                ? ["index": 0, "message": ["role": "assistant", "content": r.text], "logprobs": NSNull(), "finish_reason": finish]
                : ["index": 0, "text": r.text, "logprobs": NSNull(), "finish_reason": finish]]
            object["usage"] = meta.usage(r)
            object["x_octet"] = meta.extra(r)
            var headers: HTTPFields = [.contentType: "application/json", .connection: "close"]
            headers[.init("x-octet-reused-tokens")!] = String(r.stats.reusedTokens)
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: jsonData(object))))
        }
    }

    func streamingResponse(_ request: Request, job: GenerationJob, meta: ResponseMeta) -> Response {
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "close"]
        let shuttingDown = self.shuttingDown
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            do {
                try await request.body.consumeWithInboundCloseHandler { _ in
                    func send(_ object: Any) async throws {
                        var b = ByteBuffer(string: "data: ")
                        b.writeBytes(jsonData(object))
                        b.writeString("\n\n")
                        try await writer.write(b)
                    }
                    func chunk(_ content: String?, finish: String?) -> [String: Any] {
                        var o = meta.header(object: meta.chat ? "chat.completion.chunk" : "text_completion")
                        var choice: [String: Any] = ["index": 0, "logprobs": NSNull(), "finish_reason": finish as Any? ?? NSNull()]
                        if meta.chat {
                            var delta: [String: Any] = [:]
                            if let content { delta["content"] = content }
                            choice["delta"] = delta
                        } else {
                            choice["text"] = content ?? ""
                        }
                        o["choices"] = [choice]
                        return o
                    }
                    if meta.chat {
                        var first = chunk(nil, finish: nil)
                        first["choices"] = [["index": 0, "delta": ["role": "assistant", "content": ""], "logprobs": NSNull(), "finish_reason": NSNull()]]
                        try await send(first)
                    }
                    for await event in job.events {
                        switch event {
                        case .text(let piece):
                            try await send(chunk(piece, finish: nil))
                        case .finished(let r):
                            if r.finishReason == .cancelled {
                                if job.serverCancelReason != nil { try await send(shuttingDown.json) }
                                break
                            }
                            var last = chunk(nil, finish: r.finishReason == .stop ? "stop" : "length")
                            last["x_octet"] = meta.extra(r)
                            try await send(last)
                            if meta.includeUsage {
                                var u = meta.header(object: meta.chat ? "chat.completion.chunk" : "text_completion")
                                u["choices"] = [Any]()
                                u["usage"] = meta.usage(r)
                                try await send(u)
                            }
                        case .failed(let m):
                            let e = job.serverCancelReason != nil ? shuttingDown
                                : APIError(status: 500, message: "generation failed: \(m)", code: "generation_failed")
                            try await send(e.json)
                        }
                    }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                } onInboundClosed: {
                    job.cancel()
                }
                try await writer.finish(nil)
            } catch {
                job.cancel()   // the client went away: stop generating for it
                throw error
            }
        })
    }

    var bodyTooLarge: APIError {
        APIError(status: 413, message: "the request body is larger than \(options.maxBodyBytes) bytes", code: "request_too_large")
    }
    var shuttingDown: APIError {
        APIError(status: 503, message: "the server is shutting down", code: "shutting_down")
    }

    static func randomID() -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String((0..<24).map { _ in chars.randomElement()! })
    }
}

/// What every response of one request shares.
struct ResponseMeta: Sendable {
    let id: String
    let chat: Bool
    let created: Int
    let model: String
    let promptTokens: Int
    let seed: UInt64
    let includeUsage: Bool

    func header(object: String) -> [String: Any] {
        ["id": id, "object": object, "created": created, "model": model, "system_fingerprint": "octet"]
    }
    func usage(_ r: GenerationResult) -> [String: Any] {
        ["prompt_tokens": promptTokens, "completion_tokens": r.tokens.count, "total_tokens": promptTokens + r.tokens.count]
    }
    /// Octet's own numbers: how much of the prompt came from the KV cache, speeds, the seed used.
    func extra(_ r: GenerationResult) -> [String: Any] {
        let s = r.stats
        return ["reused_tokens": s.reusedTokens, "evaluated_prompt_tokens": s.promptTokens, "seed": String(seed),
                "prompt_seconds": s.promptSeconds, "decode_seconds": s.decodeSeconds,
                "time_to_first_token": s.timeToFirstToken, "decode_tokens_per_second": s.decodeTokensPerSecond]
    }
}

func jsonResponse(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
    let buffer = ByteBuffer(bytes: jsonData(object))
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
}

extension APIError {
    var response: Response {
        var r = jsonResponse(json, status: HTTPResponse.Status(code: status))
        if status == 401 { r.headers[.wwwAuthenticate] = "Bearer" }
        if status == 429 || status == 503 { r.headers[.retryAfter] = "1" }
        return r
    }
}

/// Turns every error (ours, Hummingbird's 404/405/413, anything else) into OpenAI's error JSON.
struct OpenAIErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return e.response
        } catch let e as any HTTPResponseError {
            let code = Int(e.status.code)
            let message: String
            switch code {
            case 404: message = "no route for \(request.method) \(request.uri.path)"
            case 405: message = "method \(request.method) is not allowed for \(request.uri.path)"
            case 413: message = "the request body is too large"
            default: message = e.status.reasonPhrase.isEmpty ? "HTTP \(code)" : e.status.reasonPhrase
            }
            return APIError(status: code, message: message, code: code == 404 ? "not_found" : nil).response
        } catch {
            context.logger.error("unhandled error: \(error)")
            return APIError(status: 500, message: "internal error: \(error)", code: "internal_error").response
        }
    }
}

/// `Authorization: Bearer KEY` on everything but `GET /health`.
struct BearerAuthMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let key: String
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/health" { return try await next(request, context) }
        let given = request.headers[.authorization] ?? ""
        let expected = "Bearer " + key
        // Constant-time comparison: the time taken does not reveal how much of the key matched.
        let a = Array(given.utf8), b = Array(expected.utf8)
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<b.count { diff |= (i < a.count ? a[i] : 0) ^ b[i] }
        guard diff == 0 else {
            throw APIError(status: 401, message: given.isEmpty ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key",
                           code: "invalid_api_key")
        }
        return try await next(request, context)
    }
}
