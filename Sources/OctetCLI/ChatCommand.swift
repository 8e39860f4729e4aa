import ArgumentParser
import Engine
import Foundation
import Generation
import Kernels
#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT; the chat polls it between tokens.
nonisolated(unsafe) var interruptRequested: Int32 = 0
nonisolated(unsafe) var generating: Int32 = 0

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk with a model, offline and streaming.",
        discussion: """
        Type a message and press Enter. Ctrl-C stops the current answer (not the chat); Ctrl-D or \
        /exit leaves. Commands: /reset (new conversation), /stats, /save FILE and /load FILE (the \
        conversation with its KV cache, zstd-compressed), /help.
        With stdin not a terminal, each line is one message (for scripts).
        Example: octet chat mixtral.gguf --system "You are a concise assistant."
        """)

    @Argument(help: "GGUF file or checkpoint folder.")
    var model: String
    @Option(help: "System prompt (folded into the first user turn).")
    var system: String?
    @Option(help: "KV cache type: f16 (default) or f32.")
    var kvType: KVType = .f16
    @OptionGroup var sampling: SamplingFlags
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try reportingErrors {
            let m = try Model(path: model)
            let pool = WorkerPool(threads: runtime.threads)
            let ctx = runtime.ctx ?? min(m.config.contextLength, 4096)
            let session = try Session(model: m, pool: pool, kvType: kvType, contextLength: ctx, sampling: sampling.options)
            session.onNotice = { fputs("[\($0)]\n", stderr) }
            let interactive = isatty(0) != 0
            let out = FileHandle.standardOutput
            func say(_ s: String) { out.write(s.data(using: .utf8)!) }
            signal(SIGINT) { _ in
                interruptRequested = 1
                if generating == 0 {
                    let msg = "\n(Ctrl-D or /exit to quit)\n> "
                    _ = msg.withCString { write(1, $0, strlen($0)) }
                }
            }
            let c = m.config
            fputs("octet chat — \(m.formatDescription), \(c.nLayers) layers, \(c.nExperts) experts (top-\(c.nExpertsUsed)), context \(ctx)\n", stderr)
            if !session.template.recognised { fputs("[the model has no recognisable chat template; using the Mistral [INST] format]\n", stderr) }
            if interactive { fputs("Type a message. Ctrl-C stops an answer, Ctrl-D or /exit quits, /help lists commands.\n", stderr) }
            var last: GenerationStats?
            while true {
                if interactive { say("> ") }
                guard let line = readLine(strippingNewline: true) else { if interactive { say("\n") }; break }
                let text = line.trimmingCharacters(in: .whitespaces)
                if text.isEmpty { continue }
                if text.hasPrefix("/") {
                    let parts = text.split(separator: " ", maxSplits: 1).map(String.init)
                    let arg = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
                    switch parts[0] {
                    case "/exit", "/quit": return
                    case "/reset": session.reset(); say("[new conversation]\n")
                    case "/stats":
                        let used = session.transformer.position
                        var s = "[context: \(used)/\(session.contextLength) tokens, \(session.messages.filter { $0.role == .user }.count) turns"
                        if let l = last {
                            s += String(format: "; last answer: %d new prompt tokens (%d reused) at %.1f tok/s, %d generated at %.1f tok/s, first token after %.2f s",
                                        l.promptTokens, l.reusedTokens, l.promptTokensPerSecond, l.generatedTokens, l.decodeTokensPerSecond, l.timeToFirstToken)
                        }
                        say(s + "]\n")
                    case "/save":
                        if arg.isEmpty { say("[usage: /save FILE]\n"); continue }
                        do { try session.save(to: arg); say("[saved \(session.transformer.position) tokens to \(arg)]\n") }
                        catch { say("[error: \(error)]\n") }
                    case "/load":
                        if arg.isEmpty { say("[usage: /load FILE]\n"); continue }
                        do { try session.load(from: arg); say("[loaded \(session.messages.filter { $0.role == .user }.count) turns, \(session.transformer.position) tokens from \(arg)]\n") }
                        catch { say("[error: \(error)]\n") }
                    case "/help":
                        say("[/reset new conversation · /stats · /save FILE · /load FILE · /exit; Ctrl-C stops an answer, Ctrl-D quits]\n")
                    default: say("[unknown command \(parts[0]); /help lists them]\n")
                    }
                    continue
                }
                interruptRequested = 0
                generating = 1
                do {
                    let r = try session.respond(to: text, system: system, maxTokens: sampling.n,
                                                shouldContinue: { interruptRequested == 0 }) { say($0) }
                    generating = 0
                    if r.finishReason == .cancelled { say(" [stopped]\n") }
                    else if r.text.allSatisfy(\.isWhitespace) { say("[the model ended its answer without text]\n") }
                    else { say("\n") }
                    last = r.stats
                } catch {
                    generating = 0
                    say("\n[error: \(error)]\n")
                }
            }
        }
    }
}
