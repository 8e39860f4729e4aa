import ArgumentParser
import Engine
import Foundation
import Generation
import Kernels

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prompt and decode speed, bytes read per token, and the fraction of memory bandwidth reached.",
        discussion: """
        Runs random tokens: a prompt of --prompt tokens, then --gen greedy tokens, --repeat times \
        (medians reported), and probes this machine's streaming-read bandwidth in the same run.
        The kernels run on the widest instruction set the CPU has (printed as "kernels"); every \
        route gives the same results, and OCTET_KERNELS=avx2, avx-vnni or avx512 picks one to \
        compare speeds.
        Example: octet bench mixtral-q8_0.gguf --prompt 512 --gen 64 --threads 2 --json
        """)

    @Argument(help: "GGUF file or checkpoint folder.")
    var model: String
    @Option(help: "Prompt tokens.")
    var prompt: Int = 512
    @Option(help: "Generated tokens.")
    var gen: Int = 64
    @Option(help: "Repeats (medians are reported).")
    var `repeat`: Int = 3
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = WorkerPool.onlineCPUs
    @Option(help: "KV cache type.")
    var kvType: KVType = .f16
    @Flag(help: "Multiply Q8_0 weights with float activations instead of 8-bit ones (for comparison).")
    var floatActivations = false
    @Flag(help: "Also measure a cold start: drop the file from the page cache, run 16 tokens, compare bytes read from disk with bytes needed.")
    var cold = false
    @Option(help: "MiB of memory the bandwidth probe streams through, and the matrix-vector product alone (for the experts' weight type) after it (0 skips both).")
    var probeMb: Int = 512
    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        if prompt < 1 || gen < 1 || `repeat` < 1 || threads < 1 { throw ValidationError("--prompt, --gen, --repeat and --threads must be ≥ 1") }
    }

    func run() throws {
        try reportingErrors {
            let m = try Model(path: model)
            var b = Benchmark(model: m, pool: WorkerPool(threads: threads))
            b.floatActivations = floatActivations
            b.probeBytes = probeMb << 20
            let coldStart = cold ? try b.coldStart(tokens: 16) : nil
            let r = try b.run(promptTokens: prompt, genTokens: gen, repeats: `repeat`, kvType: kvType)
            if json {
                let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
                var obj = try JSONSerialization.jsonObject(with: try enc.encode(r)) as! [String: Any]
                if let cs = coldStart { obj["cold_start"] = try JSONSerialization.jsonObject(with: try enc.encode(cs)) }
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print("model            \(model) (\(m.formatDescription))")
                print("threads          \(r.threads)")
                print("kernels          \(r.kernels)")
                print(String(format: "prompt           %d tokens: %.1f tok/s", r.prompt_tokens, r.prompt_tokens_per_s))
                print(String(format: "time to first    %.3f s", r.ttft_s))
                print(String(format: "decode           %d tokens: %.2f tok/s", r.gen_tokens, r.decode_tokens_per_s))
                print(String(format: "bytes per token  %.1f MB of weights", r.bytes_per_token / 1e6))
                if r.probe_gbps > 0 {
                    print(String(format: "effective        %.1f GB/s  (probe: %.1f GB/s streaming read, %.0f%% of the limit)",
                                 r.effective_gbps, r.probe_gbps, r.fraction_of_limit * 100))
                } else {
                    print(String(format: "effective        %.1f GB/s  (probe skipped: --probe-mb 0)", r.effective_gbps))
                }
                if r.disk_bytes_per_token > 0 {
                    print(String(format: "from disk        %.1f MB per decoded token (/proc/self/io: pages that were not in memory)", r.disk_bytes_per_token / 1e6))
                }
                if r.kernel_gbps > 0 {
                    print("\(r.kernel_type) kernel".padding(toLength: 17, withPad: " ", startingAt: 0)
                          + String(format: "%.1f GB/s  (matrix-vector product alone, %.0f%% of the probe)",
                                   r.kernel_gbps, r.probe_gbps > 0 ? r.kernel_gbps / r.probe_gbps * 100 : 0))
                }
                if let cs = coldStart {
                    print(String(format: "cold start       %d tokens in %.2f s: read %.1f MB from disk, needed %.1f MB (%.2f×)",
                                 cs.tokens, cs.seconds, cs.bytes_read / 1e6, cs.bytes_needed / 1e6, cs.ratio))
                }
            }
        }
    }
}
