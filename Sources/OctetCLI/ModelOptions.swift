import ArgumentParser
import Engine
import Kernels

extension KVType: ExpressibleByArgument {}

/// Options every command that runs a model shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = WorkerPool.onlineCPUs

    @Option(help: "Context length in tokens (default: the model's).")
    var ctx: Int?

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let ctx, ctx < 1 { throw ValidationError("--ctx must be at least 1") }
    }
}
