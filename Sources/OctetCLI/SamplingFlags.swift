import ArgumentParser
import Generation

/// Sampling flags shared by generate and chat.
struct SamplingFlags: ParsableArguments {
    @Option(name: .customLong("temp"), help: "Temperature; 0 is greedy.")
    var temperature: Float = 0.7
    @Flag(help: "Greedy decoding (same as --temp 0).")
    var greedy = false
    @Option(help: "Keep the K most likely tokens (0 = off).")
    var topK: Int = 40
    @Option(help: "Nucleus sampling: keep tokens up to this cumulative probability (1 = off).")
    var topP: Float = 0.95
    @Option(help: "Drop tokens less likely than this fraction of the best (0 = off).")
    var minP: Float = 0.05
    @Option(help: "Penalise recently seen tokens (1 = off).")
    var repeatPenalty: Float = 1.0
    @Option(help: "Random seed: the same seed gives the same text.")
    var seed: UInt64 = 0
    @Option(name: .shortAndLong, help: "Maximum tokens to generate.")
    var n: Int = 256
    @Option(parsing: .singleValue, help: "Stop when this text appears (repeatable).")
    var stop: [String] = []

    func validate() throws {
        if temperature < 0 { throw ValidationError("--temp must be ≥ 0") }
        if !(0...1).contains(topP) || !(0...1).contains(minP) { throw ValidationError("--top-p and --min-p must be in 0…1") }
        if topK < 0 || n < 1 { throw ValidationError("--top-k must be ≥ 0 and -n ≥ 1") }
        if repeatPenalty <= 0 { throw ValidationError("--repeat-penalty must be > 0") }
    }

    var options: SamplingOptions {
        var o = SamplingOptions()
        o.temperature = greedy ? 0 : temperature
        o.topK = topK; o.topP = topP; o.minP = minP; o.repeatPenalty = repeatPenalty; o.seed = seed
        return o
    }
}
