import Foundation
import XCTest
import Engine
import Generation
import Kernels
import Tokenizer
#if canImport(Glibc)
import Glibc
#endif

/// "Decoding allocates nothing per token", measured with a malloc call counter.
///
/// The counter is Tools/alloc_count/alloc_count.c, an LD_PRELOAD shim that counts every
/// malloc/calloc/realloc/posix_memalign/aligned_alloc/memalign call of the process (all threads).
/// When the test process runs without it, each test compiles the shim with `cc` and re-runs
/// itself (this test bundle, this one test) with LD_PRELOAD set; the child measures and asserts,
/// the parent reports the child's figures and its verdict.
final class AllocationTests: XCTestCase {
    private typealias Counter = @convention(c) () -> UInt64

    private static func counter() -> Counter? {
        guard let h = dlopen(nil, RTLD_NOW), let s = dlsym(h, "octet_alloc_count") else { return nil }
        return unsafeBitCast(s, to: Counter.self)
    }

    private typealias Tracer = @convention(c) (Int32) -> Void

    /// Prints the call stacks of the next n allocations (the shim's octet_alloc_trace).
    private static func tracer() -> Tracer? {
        guard let h = dlopen(nil, RTLD_NOW), let s = dlsym(h, "octet_alloc_trace") else { return nil }
        return unsafeBitCast(s, to: Tracer.self)
    }

    nonisolated(unsafe) private static var shimPath: String?

    /// Builds the shim once per process.
    private static func buildShim() throws -> String {
        if let p = shimPath { return p }
        guard FileManager.default.fileExists(atPath: GenPaths.allocShimSource.path) else {
            throw XCTSkip("no \(GenPaths.allocShimSource.path)")
        }
        let cc = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let cc else { throw XCTSkip("no C compiler to build the malloc counter shim") }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("octet-alloc-count-\(getpid()).so").path
        let r = try runProcess(cc, ["-O2", "-shared", "-fPIC", "-o", out, GenPaths.allocShimSource.path])
        guard r.status == 0 else { throw TestFailure("building the malloc counter failed: \(r.stderr)") }
        shimPath = out
        return out
    }

    override class func tearDown() {
        if let p = shimPath { unlink(p) }
        super.tearDown()
    }

    /// Runs `body` with the counter: here if the shim is loaded, else in a child process.
    private func withAllocationCounter(_ test: String, _ body: (() -> UInt64) throws -> Void) throws {
        if let c = Self.counter() {
            try body { c() }
            return
        }
        if ProcessInfo.processInfo.environment["OCTET_ALLOC_CHILD"] != nil {
            XCTFail("LD_PRELOAD of the malloc counter did not take effect in the child")
            return
        }
        let shim = try Self.buildShim()
        var env = ProcessInfo.processInfo.environment
        env["LD_PRELOAD"] = shim
        env["OCTET_ALLOC_CHILD"] = "1"
        let bundle = CommandLine.arguments[0]
        let r = try runProcess(bundle, ["GenerationTests.AllocationTests/\(test)"], environment: env)
        let figures = (r.stdout + r.stderr).split(separator: "\n").filter { $0.hasPrefix("ALLOC ") }
        for f in figures { print(f) }
        // Where the child's traced allocations come from (innermost frames of this bundle).
        let traced = r.stderr.components(separatedBy: "ALLOC-TRACE-BEGIN").dropFirst().map { $0.components(separatedBy: "ALLOC-TRACE-END")[0] }
        for t in traced {
            print("ALLOC where (innermost frames in the test bundle):")
            for line in Self.symbolise(t, binary: bundle) { print("    " + line) }
        }
        let failures = (r.stdout + r.stderr).split(separator: "\n").filter { $0.contains(": error: ") }
        XCTAssertEqual(r.status, 0, "the measuring child failed:\n" + failures.joined(separator: "\n") + (failures.isEmpty ? "\n" + r.stdout.suffix(3000) + r.stderr.suffix(2000) : ""))
        XCTAssertFalse(figures.isEmpty, "the child printed no figures:\n\(r.stdout.suffix(2000))\n\(r.stderr.suffix(2000))")
    }

    /// Condenses `backtrace_symbols_fd` stacks to their two innermost frames in `binary`, named
    /// with addr2line and swift-demangle when those are available.
    private static func symbolise(_ text: String, binary: String) -> [String] {
        let name = URL(fileURLWithPath: binary).lastPathComponent
        var stacks: [(size: String, addrs: [String])] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("alloc_count: allocation of ") {
                stacks.append((String(line.split(separator: " ")[3]), []))
            } else if var last = stacks.popLast() {
                if last.addrs.count < 2, line.contains(name + "(+0x"),
                   let a = line.range(of: "(+"), let b = line.range(of: ")", range: a.upperBound..<line.endIndex) {
                    last.addrs.append(String(line[a.upperBound..<b.lowerBound]))
                }
                stacks.append(last)
            }
        }
        let addrs = Array(Set(stacks.flatMap(\.addrs))).sorted()
        var names: [String: String] = [:]
        if !addrs.isEmpty, let r = try? runProcess("/usr/bin/addr2line", ["-f", "-e", binary] + addrs), r.status == 0 {
            var lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let demangler = ["/opt/swift/usr/bin/swift-demangle", "/usr/bin/swift-demangle"].first { FileManager.default.isExecutableFile(atPath: $0) }
            if let d = demangler, let dm = try? runProcess(d, ["--simplified", "--compact"] + lines.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)), dm.status == 0 {
                let demangled = dm.stdout.split(separator: "\n").map(String.init)
                for (i, n) in demangled.enumerated() where 2 * i < lines.count { lines[2 * i] = n }
            }
            for (i, a) in addrs.enumerated() where 2 * i + 1 < lines.count {
                names[a] = String(lines[2 * i].prefix(100)) + " @ " + (lines[2 * i + 1].split(separator: "/").last.map(String.init) ?? "?")
            }
        }
        var counts: [String: Int] = [:]
        var order: [String] = []
        for s in stacks {
            let key = "\(s.size) bytes: " + s.addrs.map { names[$0] ?? $0 }.joined(separator: "  <-  ")
            if counts[key] == nil { order.append(key) }
            counts[key, default: 0] += 1
        }
        return order.map { "\(counts[$0]!) x \($0)" }
    }

    /// 200 single-token forward passes (greedy argmax done here, no Session) allocate nothing.
    private func measureForward(_ model: Model, label: String, kvType: KVType, count: () -> UInt64) throws {
        let t = try Transformer(weights: model.weights, pool: Shared.pool, kvType: kvType, contextLength: 512)
        t.traceExperts = false
        let prompt = try Reference.prompts()[0].inputIDs
        try prompt.withUnsafeBufferPointer { try t.forward($0, logits: .last) }
        let one = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        defer { one.deallocate() }
        let vocab = model.config.nVocab
        func step() throws {
            var best = 0
            for i in 1..<vocab where t.logits[i] > t.logits[best] { best = i }
            one.pointee = Int32(best)
            try t.forward(UnsafeBufferPointer(start: one, count: 1), logits: .last)
        }
        for _ in 0..<5 { try step() }   // warm up (lazy one-time set-up, page faults)
        let before = count()
        for _ in 0..<200 { try step() }
        let allocations = count() - before
        print("ALLOC Transformer.forward [\(label), KV \(kvType.rawValue)]: \(allocations) allocation calls over 200 tokens")
        if allocations > 0, let trace = Self.tracer() {
            fputs("ALLOC-TRACE-BEGIN call stacks of the allocations of one more token (\(label)):\n", stderr)
            trace(12)
            try step()
            trace(0)
            fputs("ALLOC-TRACE-END\n", stderr)
        }
        XCTAssertEqual(allocations, 0, "Transformer.forward allocated \(allocations) times over 200 decoded tokens (\(label), \(kvType))")
        XCTAssertEqual(t.position, prompt.count + 205 + (allocations > 0 && Self.tracer() != nil ? 1 : 0))
    }

    func testTransformerForwardAllocatesNothingPerToken() throws {
        try withAllocationCounter("testTransformerForwardAllocatesNothingPerToken") { count in
            let m = try Shared.fixture()
            try measureForward(m, label: "safetensors bf16", kvType: .f16, count: count)
        }
    }

    func testTransformerForwardAllocatesNothingPerTokenQ8_0() throws {
        try withAllocationCounter("testTransformerForwardAllocatesNothingPerTokenQ8_0") { count in
            let m = try Shared.gguf(.q8_0)
            try measureForward(m, label: "GGUF Q8_0", kvType: .f16, count: count)
        }
    }

    /// Session.generate's per-token cost: allocations of a 220-token run minus a 20-token run,
    /// per extra token. Amortised growth of the text and token arrays is O(log n), far below 0.1
    /// per token; anything per token shows as ≥ 1.
    private func sessionPerToken(stop: [String], label: String, count: () -> UInt64) throws -> Double {
        let m = try Shared.fixture()
        let prompt = try Reference.prompts()[1].inputIDs   // its greedy continuation does not reach EOS in 230 tokens (p0 does at 38)
        let session = try greedySession(m, contextLength: 512)
        var sink = 0
        _ = try session.generate(prompt: prompt, maxTokens: 20, stop: stop, onText: { sink += $0.utf8.count })   // warm up
        func measure(_ n: Int) throws -> (UInt64, Int) {
            session.reset()
            let before = count()
            let r = try session.generate(prompt: prompt, maxTokens: n, stop: stop, onText: { sink += $0.utf8.count })
            return (count() - before, r.tokens.count)
        }
        let (a, na) = try measure(20)
        let (b, nb) = try measure(220)
        XCTAssertEqual(na, 20)
        XCTAssertEqual(nb, 220, "generation ended after \(nb) tokens (stop strings \(stop.map(\.debugDescription)))")
        let per = Double(Int64(b) - Int64(a)) / Double(nb - na)
        if per > 0.1, let trace = Self.tracer() {
            session.reset()
            fputs("ALLOC-TRACE-BEGIN call stacks of the allocations of a 40-token generation (\(label)):\n", stderr)
            trace(80)
            _ = try session.generate(prompt: prompt, maxTokens: 40, stop: stop, onText: { sink += $0.utf8.count })
            trace(0)
            fputs("ALLOC-TRACE-END\n", stderr)
        }
        print("ALLOC Session.generate [\(label)]: \(a) allocation calls for \(na) tokens, \(b) for \(nb) tokens → \(String(format: "%.3f", per)) per extra token")
        return per
    }

    func testSessionGenerateAllocatesNothingPerToken() throws {
        try withAllocationCounter("testSessionGenerateAllocatesNothingPerToken") { count in
            let per = try sessionPerToken(stop: [], label: "no stop strings", count: count)
            XCTAssertLessThan(per, 0.1, "Session.generate allocates per token (no stop strings)")
        }
    }

    func testSessionGenerateWithStopStringsAllocatesNothingPerToken() throws {
        try withAllocationCounter("testSessionGenerateWithStopStringsAllocatesNothingPerToken") { count in
            let per = try sessionPerToken(stop: ["never appears", "\u{1}"], label: "2 stop strings", count: count)
            XCTAssertLessThan(per, 0.1, "Session.generate allocates per token when stop strings are given (Session.swift: the stop-string search / hold-back)")
        }
    }
}
