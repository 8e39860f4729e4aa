import ArgumentParser
import Kernels
#if canImport(Glibc)
import Glibc
#endif

@main
enum Entry {
    static func main() {
        let missing = CPUFeatures.missing()
        if !missing.isEmpty {
            fputs("error: this CPU lacks \(missing.joined(separator: ", ")); octet is built for x86-64 with AVX2, FMA and F16C (Intel Haswell / AMD Zen or newer)\n", stderr)
            exit(1)
        }
        Octet.main()
    }
}

struct Octet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "octet",
        abstract: "Run Mixtral-class mixture-of-experts models on a laptop CPU, offline.",
        discussion: """
        Typical use:
          octet convert ~/models/Mixtral-8x7B-v0.1 -o mixtral-q8_0.gguf     (once)
          octet chat mixtral-q8_0.gguf
        A model is a GGUF file (ours or llama.cpp's) or a 16-bit checkpoint folder read directly.
        """,
        subcommands: [Convert.self, Chat.self, Generate.self, Inspect.self, Tokenize.self, Detokenize.self, Logits.self, Bench.self, Compare.self, Serve.self])
}

/// Prints `error: …` on one line and exits non-zero.
func fail(_ error: Error) -> ExitCode {
    fputs("error: \(error)\n", stderr)
    return ExitCode.failure
}

/// Runs `body`, turning any thrown error into the one-line `error: …` contract.
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch { throw fail(error) }
}

var stderrIsTerminal: Bool { isatty(2) != 0 }
