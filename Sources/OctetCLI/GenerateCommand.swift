import ArgumentParser
import Engine
import Foundation
import Generation
import Kernels
import Tokenizer

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streamed to stdout (stats on stderr).",
        discussion: """
        The prompt gets a BOS token and runs as is, or wrapped in the model's chat template with --chat.
        Examples:
          octet generate mixtral.gguf -p "The capital of France is" -n 32 --greedy
          octet generate mixtral.gguf --chat -p "Write a haiku about autumn." --temp 0.8 --seed 7
        """)

    @Argument(help: "GGUF file or checkpoint folder.")
    var model: String
    @Option(name: .shortAndLong, help: "The prompt text.")
    var prompt: String
    @Flag(help: "Wrap the prompt in the chat template ([INST] … [/INST]).")
    var chat = false
    @Option(help: "KV cache type: f16 (default) or f32.")
    var kvType: KVType = .f16
    @OptionGroup var sampling: SamplingFlags
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try reportingErrors {
            let m = try Model(path: model)
            let pool = WorkerPool(threads: runtime.threads)
            let session = try Session(model: m, pool: pool, kvType: kvType,
                                      contextLength: runtime.ctx ?? min(m.config.contextLength, 4096), sampling: sampling.options)
            let ids: [Int32]
            if chat {
                ids = try session.template.tokens([ChatMessage(role: .user, content: prompt)], tokenizer: session.tokenizer)
            } else {
                ids = (m.vocabulary.addBOS ? [m.vocabulary.bosID] : []) + session.tokenizer.encode(prompt)
            }
            let stdout = FileHandle.standardOutput
            let r = try session.generate(prompt: ids, maxTokens: sampling.n, stop: sampling.stop, onText: { piece in
                stdout.write(piece.data(using: .utf8)!)
            })
            print()
            let s = r.stats
            fputs(String(format: "\n[%d prompt tokens at %.1f tok/s, %d generated at %.1f tok/s, first token after %.3f s, finish: %@]\n",
                         s.promptTokens, s.promptTokensPerSecond, s.generatedTokens, s.decodeTokensPerSecond,
                         s.timeToFirstToken, r.finishReason.rawValue), stderr)
        }
    }
}

/// Opens a tokenizer from a GGUF file, a checkpoint folder, or a tokenizer.model file.
func openTokenizer(_ path: String) throws -> Tokenizer {
    if path.hasSuffix(".model") {
        guard let d = FileManager.default.contents(atPath: path) else { throw EngineError("\(path): cannot read") }
        return try Tokenizer(vocabulary: Vocabulary.fromSentencePieceModel(Array(d)))
    }
    return try Tokenizer(vocabulary: Model(path: path).vocabulary)
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids of a text (no BOS).",
        discussion: "Example: octet tokenize mixtral.gguf \"Hello world\" --json")
    @Argument(help: "GGUF file, checkpoint folder or tokenizer.model.")
    var model: String
    @Argument(help: "The text.")
    var text: String
    @Flag(help: "Print {\"ids\": […], \"pieces\": […]}.")
    var json = false

    func run() throws {
        try reportingErrors {
            let t = try openTokenizer(model)
            let ids = t.encode(text)
            if json {
                let obj: [String: Any] = ["ids": ids.map(Int.init), "pieces": ids.map { t.piece($0) }]
                let d = try JSONSerialization.data(withJSONObject: obj)
                print(String(decoding: d, as: UTF8.self))
            } else {
                print(ids.map(String.init).joined(separator: " "))
            }
        }
    }
}

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the text of token ids.",
        discussion: "Example: octet detokenize mixtral.gguf 1 22557 1526")
    @Argument(help: "GGUF file, checkpoint folder or tokenizer.model.")
    var model: String
    @Argument(help: "Token ids (space or comma separated).")
    var ids: [String]

    func run() throws {
        try reportingErrors {
            let t = try openTokenizer(model)
            let parsed = try ids.flatMap { $0.split(separator: ",") }.map { s -> Int32 in
                guard let v = Int32(s), v >= 0, Int(v) < t.vocabularySize else { throw ValidationError("'\(s)' is not a token id of this vocabulary") }
                return v
            }
            print(t.decode(parsed))
        }
    }
}
