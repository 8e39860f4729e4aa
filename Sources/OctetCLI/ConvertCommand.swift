import ArgumentParser
import Checkpoint
import Converter
import GGUF
import Kernels
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension TensorType: ExpressibleByArgument {
    public init?(argument: String) { self.init(userName: argument) }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a 16-bit checkpoint into one memory-mapped GGUF file.",
        discussion: """
        SRC is a Hugging Face folder (config.json + *.safetensors, sharded or not), a Mistral \
        consolidated folder (params.json + consolidated.safetensors), or one .safetensors file \
        beside its config. The checkpoint is streamed, never loaded whole; the output appears \
        under its name only when complete.

        Types: q8_0 (int8, ggml's Q8_0, ~8.5 bits/weight), fp8 (Octet's FP8 E4M3 blocks), \
        bf16, f16. Norms are kept in F32 and routers in F32 whatever the type.
        Example: octet convert Mixtral-8x7B-v0.1 -o mixtral.gguf --type q8_0 --override 'output.weight=f16'
        """)

    @Argument(help: "Checkpoint folder or .safetensors file.")
    var source: String

    @Option(name: .shortAndLong, help: "Output .gguf path.")
    var output: String

    @Option(help: "Tensor type: q8_0, fp8, bf16 or f16.")
    var type: TensorType = .q8_0

    @Option(name: .customLong("override"), parsing: .singleValue,
            help: ArgumentHelp("Per-tensor type, PATTERN=TYPE with a glob on GGUF names (repeatable).", valueName: "pattern=type"))
    var overrides: [String] = []

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = WorkerPool.onlineCPUs

    @Flag(help: "Print per-tensor RMSE and max abs error against the 16-bit source.")
    var report = false

    func validate() throws {
        if type == .f32 { throw ValidationError("--type f32 is not offered; use bf16 or f16 for a lossless file") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        for o in overrides where o.split(separator: "=").count != 2 || TensorType(userName: String(o.split(separator: "=").last ?? "")) == nil {
            throw ValidationError("--override '\(o)' must be PATTERN=TYPE with TYPE one of q8_0, fp8, bf16, f16, f32")
        }
    }

    func run() throws {
        try reportingErrors {
            installCleanupHandlers()
            var options = ConversionOptions()
            options.type = type
            options.threads = threads
            options.report = report
            options.overrides = overrides.map { o in
                let p = o.split(separator: "=")
                return (String(p[0]), TensorType(userName: String(p[1]))!)
            }
            let checkpoint = try openCheckpoint(source)
            let c = checkpoint.config
            fputs("\(checkpoint.layoutName): \(c.nLayers) layers, dim \(c.nEmbd), \(c.nExperts) experts (top-\(c.nExpertsUsed)), vocab \(c.nVocab)\n", stderr)
            if let cc = checkpoint as? ConsolidatedCheckpoint, cc.contextLengthWasDefaulted {
                fputs("notice: params.json gives no context length; writing \(c.contextLength) (Mixtral's)\n", stderr)
            }
            let converter = try Converter(checkpoint: checkpoint, options: options)
            for n in converter.plan.notices { fputs("notice: \(n)\n", stderr) }
            let bar = ProgressLine("converting")
            let start = Date()
            let reports = try converter.run(to: output) { p in bar.update(done: p.bytesDone, total: p.bytesTotal) }
            let secs = Date().timeIntervalSince(start)
            let size = converter.plan.layout.fileSize
            fputs(String(format: "wrote %@ (%@, %.2f GB) in %.1f s, %.2f GB/s of checkpoint read\n", output, type.name,
                         Double(size) / 1e9, secs, Double(converter.plan.sourceBytes) / 1e9 / max(secs, 1e-9)), stderr)
            if report {
                print("tensor".padding(toLength: 34, withPad: " ", startingAt: 0) + " type       rmse        max|err|    rms(src)   rel")
                for r in reports {
                    print(r.name.padding(toLength: 34, withPad: " ", startingAt: 0)
                          + " " + r.type.name.padding(toLength: 9, withPad: " ", startingAt: 0)
                          + String(format: " %.4e  %.4e  %.4e  %.2e", r.rmse, r.maxAbsError, r.sourceRMS, r.sourceRMS > 0 ? r.rmse / r.sourceRMS : 0))
                }
            }
        }
    }
}

/// Ctrl-C, SIGTERM and fatal signals (SIGBUS from a source file truncated under the mapping among
/// them) delete the uncommitted output before the process ends.
func installCleanupHandlers() {
    signal(SIGINT) { _ in AtomicOutputFile.removeAllPending(); _exit(130) }
    signal(SIGTERM) { _ in AtomicOutputFile.removeAllPending(); _exit(143) }
    for sig in [SIGBUS, SIGSEGV, SIGILL, SIGTRAP] {
        signal(sig) { s in AtomicOutputFile.removeAllPending(); signal(s, SIG_DFL); raise(s) }
    }
}
