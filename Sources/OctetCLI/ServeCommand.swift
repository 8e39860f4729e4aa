import ArgumentParser
import Dispatch
import Engine
import Foundation
import Generation
import Server
#if canImport(Glibc)
import Glibc
#endif

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over an OpenAI-compatible HTTP API (chat, completions, streaming).",
        discussion: """
        Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions, POST /v1/completions \
        (max_tokens, temperature, top_p, seed, stop, stream; also top_k, min_p, repeat_penalty, logit_bias). \
        One request generates at a time, in arrival order; up to --max-queue wait, more get 429. \
        A chat that extends the previous conversation reuses its KV cache. SIGTERM or Ctrl-C stops \
        accepting work, lets the running answer finish (up to --shutdown-grace seconds) and exits.
        Listens on loopback unless --host says otherwise; --api-key (or OCTET_API_KEY) requires \
        'Authorization: Bearer KEY' on every route but /health.
        Example: octet serve mixtral-q8_0.gguf --port 8080, then point any OpenAI client at \
        http://127.0.0.1:8080/v1 (model: the file name without .gguf, or "default").
        """)

    @Argument(help: "GGUF file or checkpoint folder.")
    var model: String
    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 = any free port).")
    var port = 8080
    @Option(help: "Require 'Authorization: Bearer KEY' (default: $OCTET_API_KEY if set).")
    var apiKey: String?
    @Option(help: "Requests that may wait behind the running one before 429.")
    var maxQueue = 16
    @Option(help: "Largest request body in bytes.")
    var maxBody = 1 << 20
    @Option(help: "Seconds the running answer may continue after SIGTERM before it is cancelled.")
    var shutdownGrace = 10.0
    @Option(help: "KV cache type: f16 (default) or f32.")
    var kvType: KVType = .f16
    @Option(help: "Model id reported by /v1/models (default: the file name).")
    var modelID: String?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0…65535") }
        if maxQueue < 0 { throw ValidationError("--max-queue must be ≥ 0") }
        if maxBody < 1024 { throw ValidationError("--max-body must be at least 1024") }
        if shutdownGrace < 0 { throw ValidationError("--shutdown-grace must be ≥ 0") }
    }

    func run() throws {
        try reportingErrors {
            let m = try Model(path: model)
            var o = ServerOptions()
            o.host = host
            o.port = port
            o.apiKey = apiKey ?? ProcessInfo.processInfo.environment["OCTET_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
            o.maxQueue = maxQueue
            o.maxBodyBytes = maxBody
            o.shutdownGrace = shutdownGrace
            o.kvType = kvType
            o.threads = runtime.threads
            o.contextLength = runtime.ctx
            o.modelID = modelID
            let server = try OpenAIServer(model: m, options: o)
            let loopback = ["127.0.0.1", "localhost", "::1"].contains(host)
            if !loopback && o.apiKey == nil {
                fputs("warning: listening on \(host) without --api-key: anyone who can reach this port can use the model\n", stderr)
            }
            let c = m.config
            fputs("octet serve — \(server.modelID) (\(m.formatDescription)), \(c.nLayers) layers, \(c.nExperts) experts, context \(server.contextLength), \(o.threads) threads\n", stderr)

            // The command is synchronous; the server runs on Swift concurrency's threads (and the
            // generation on its own thread) while this one waits.
            final class Outcome: @unchecked Sendable { var error: Error? }
            let outcome = Outcome()
            let done = DispatchSemaphore(value: 0)
            let shownHost = host.contains(":") ? "[\(host)]" : host
            Task.detached {
                do {
                    try await server.run { port in
                        fputs("listening on http://\(shownHost):\(port ?? self.port)  (SIGTERM or Ctrl-C to stop)\n", stderr)
                    }
                } catch {
                    outcome.error = error
                }
                done.signal()
            }
            done.wait()
            if let e = outcome.error { throw e }
            fputs("octet serve: stopped\n", stderr)
        }
    }
}
