import Dispatch
import Foundation
import Engine
import Kernels

/// Measures prompt processing, time to first token and decoding on random tokens, and the
/// machine's streaming-read bandwidth in the same run, so speed can be read as a fraction of the
/// physical limit (decoding a batch of one is bound by memory bandwidth).
public struct Benchmark {
    public struct Result: Sendable, Codable {
        public var threads: Int
        public var prompt_tokens: Int
        public var gen_tokens: Int
        public var prompt_tokens_per_s: Double
        public var decode_tokens_per_s: Double
        public var ttft_s: Double
        /// Bytes of weights read per decoded token (shared weights + the chosen experts).
        public var bytes_per_token: Double
        public var effective_gbps: Double
        public var probe_gbps: Double
        /// The matrix-vector product alone for the experts' weight type (``kernel_type``; Q8_0
        /// with 8-bit activations unless float activations were asked for; the pool's threads)
        /// over a matrix as large as the probe's buffer, GB/s of weights: what decoding could
        /// reach if the rest of a token cost nothing. 0 when the probe is skipped.
        public var kernel_gbps: Double = 0
        public var kernel_type: String = ""

        /// Which instruction set the products ran on: "avx512", "avx-vnni" or "avx2" (see
        /// ``CPUFeatures/route``).
        public var kernels: String = CPUFeatures.route.rawValue

        public var fraction_of_limit: Double
        public var repeats: Int
        /// Bytes read from disk per decoded token (`/proc/self/io` read_bytes over the decode
        /// phase): 0 when the model is in memory; what a memory cap costs.
        public var disk_bytes_per_token: Double = 0
    }

    public let model: Model
    public let pool: WorkerPool
    /// Use float activations with Q8_0 weights instead of 8-bit ones (to measure the difference).
    public var floatActivations = false
    /// Size of the bandwidth probe's buffer; 0 skips the probe (e.g. under a tight memory cap).
    public var probeBytes = 512 << 20

    public init(model: Model, pool: WorkerPool) { self.model = model; self.pool = pool }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Streaming-read bandwidth of this machine with the pool's threads, GB/s (best of 5 passes
    /// over a 512 MiB buffer, each thread summing its share).
    public func probeBandwidth(bytes: Int = 512 << 20) -> Double {
        let n = bytes / 32
        let buf = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: n)
        defer { buf.deallocate() }
        pool.parallelFor(n) { r in for i in r { buf[i] = SIMD8(repeating: Float(i & 7)) } }
        var best = 0.0
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: pool.threads)
        sums.initialize(repeating: 0, count: pool.threads)
        defer { sums.deallocate() }
        for _ in 0..<5 {
            let t0 = Benchmark.now()
            pool.parallelFor(n, granularity: 1 << 16) { (r: Range<Int>, w: Int) in
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                var i = r.lowerBound
                while i + 4 <= r.upperBound { a0 += buf[i]; a1 += buf[i + 1]; a2 += buf[i + 2]; a3 += buf[i + 3]; i += 4 }
                sums[w] += (a0 + a1 + a2 + a3).sum()
            }
            let s = Double(Benchmark.now() - t0) / 1e9
            best = max(best, Double(bytes) / s / 1e9)
        }
        return best
    }

    /// GB/s of weights through the matrix-vector product of one `type` (the decode hot path,
    /// rows split across the pool; Q8_0 with 8-bit activations unless ``floatActivations``) on
    /// a random matrix of about `bytes` bytes, 4096 columns; best of 5 passes, like
    /// ``probeBandwidth(bytes:)``.
    public func kernelBandwidth(type: TensorType = .q8_0, bytes: Int = 512 << 20) -> Double {
        let cols = 4096, rowBytes = type.rowBytes(cols)!
        let rows = max(1, bytes / rowBytes)
        let base = UnsafeMutableRawPointer.allocate(byteCount: rows * rowBytes, alignment: 64)
        defer { base.deallocate() }
        pool.parallelFor(rows) { r in
            var rng = SplitMix64(seed: UInt64(r.lowerBound))
            for row in r {
                let p = base + row * rowBytes
                switch type {
                case .q8_0, .fp8_e4m3:
                    for b in 0..<(cols / 32) {
                        let blk = p + b * 34
                        blk.storeBytes(of: UInt16(0x2000 + (rng.next() & 0x3FF)), as: UInt16.self)  // scales 2⁻⁷…2⁻⁶
                        // FP8: bit 3 clear in every byte, so no byte is E4M3's NaN (S.1111.111), and
                        // bit 6 set, so none is a subnormal, which the converter never writes
                        // (magnitudes 2…448 before the scale).
                        let (mask, set): (UInt64, UInt64) = type == .q8_0 ? (~0, 0) : (0xF7F7_F7F7_F7F7_F7F7, 0x4040_4040_4040_4040)
                        for i in stride(from: 0, to: 32, by: 8) { blk.storeBytes(of: rng.next() & mask | set, toByteOffset: 2 + i, as: UInt64.self) }
                    }
                case .f16, .bf16:
                    // Magnitudes 2⁻³…2⁻² (f16) or 2⁻³…2⁻² (bf16), either sign.
                    let (bias, mantissa): (UInt16, UInt16) = type == .f16 ? (0x3000, 0x3FF) : (0x3E00, 0x7F)
                    for c in 0..<cols {
                        let r = rng.next()
                        p.storeBytes(of: bias + UInt16(r & UInt64(mantissa)) | UInt16((r >> 32) & 1) << 15, toByteOffset: 2 * c, as: UInt16.self)
                    }
                case .f32:
                    for c in 0..<cols { p.storeBytes(of: Float(Int(rng.next() % 2001) - 1000) / 4000, toByteOffset: 4 * c, as: Float.self) }
                }
            }
        }
        let w = WeightMatrix(base: base, type: type, cols: cols, rows: rows)
        var x = [Float](repeating: 0, count: cols)
        var rng = SplitMix64(seed: 7)
        for i in 0..<cols { x[i] = Float(Int(rng.next() % 2001) - 1000) / 1000 }
        let xq = QuantizedActivations(capacity: cols)
        x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: cols, count: 1, rowLength: cols) }
        let y = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        defer { y.deallocate() }
        var best = 0.0
        for _ in 0..<5 {
            let t0 = Benchmark.now()
            if type == .q8_0 && !floatActivations {
                pool.matMul(w, xq, y, yStride: rows)
            } else {
                x.withUnsafeBufferPointer { pool.matMul(w, $0.baseAddress!, xStride: cols, count: 1, y, yStride: rows) }
            }
            let s = Double(Benchmark.now() - t0) / 1e9
            best = max(best, Double(rows * rowBytes) / s / 1e9)
        }
        return best
    }

    public func run(promptTokens: Int, genTokens: Int, repeats: Int, kvType: KVType = .f16) throws -> Result {
        let c = model.config
        var rng = SplitMix64(seed: 42)
        let prompt = (0..<max(promptTokens, 1)).map { _ in Int32(3 + Int(rng.next() % UInt64(c.nVocab - 3))) }
        let tf = try Transformer(weights: model.weights, pool: pool, kvType: kvType,
                                 contextLength: promptTokens + genTokens + 1, maxBatch: min(max(promptTokens, 1), 512))
        tf.traceExperts = true
        tf.int8Activations = !floatActivations
        var pp: [Double] = [], tg: [Double] = [], ttft: [Double] = [], bytes: [Double] = [], disk: [Double] = []
        let shared = model.weights.bytesPerToken()
        for _ in 0..<max(repeats, 1) {
            tf.reset()
            let t0 = Benchmark.now()
            var i = 0
            while i < prompt.count {
                let n = min(tf.maxBatch, prompt.count - i)
                try prompt[i..<(i + n)].withUnsafeBufferPointer { try tf.forward($0, logits: i + n == prompt.count ? .last : .none) }
                i += n
            }
            let tPrompt = Double(Benchmark.now() - t0) / 1e9
            var next: [Int32] = [argmax(tf.logits, c.nVocab)]
            ttft.append(Double(Benchmark.now() - t0) / 1e9)
            pp.append(Double(prompt.count) / tPrompt)
            let traceStart = tf.expertTrace.count
            let t1 = Benchmark.now()
            let read0 = Benchmark.readBytes()
            for _ in 0..<genTokens {
                try next.withUnsafeBufferPointer { try tf.forward($0, logits: .last) }
                next[0] = argmax(tf.logits, c.nVocab)
            }
            let tGen = Double(Benchmark.now() - t1) / 1e9
            tg.append(Double(genTokens) / tGen)
            disk.append(Double(Benchmark.readBytes() - read0) / Double(max(genTokens, 1)))
            // Bytes per decoded token: shared weights + the distinct experts chosen in each layer.
            let perExpert = model.weights.layers.first.map { l in Double(l.experts[0].gate.byteCount + l.experts[0].up.byteCount + l.experts[0].down.byteCount) } ?? 0
            let expertsAssumed = Double(max(c.nExpertsUsed, 1) * c.nLayers)
            var total = 0.0
            for t in tf.expertTrace[traceStart...] {
                let distinct = t.reduce(0) { $0 + Set($1.experts).count }
                total += Double(shared) - expertsAssumed * perExpert + Double(distinct) * perExpert
            }
            bytes.append(total / Double(max(tf.expertTrace.count - traceStart, 1)))
        }
        func median(_ a: [Double]) -> Double { let s = a.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
        let probe = probeBytes > 0 ? probeBandwidth(bytes: probeBytes) : 0
        let kernelType = model.weights.layers.first?.experts.first?.gate.type ?? .q8_0
        let kernel = probeBytes > 0 ? kernelBandwidth(type: kernelType, bytes: probeBytes) : 0
        let bpt = median(bytes), decode = median(tg)
        let eff = bpt * decode / 1e9
        return Result(threads: pool.threads, prompt_tokens: promptTokens, gen_tokens: genTokens,
                      prompt_tokens_per_s: median(pp), decode_tokens_per_s: decode, ttft_s: median(ttft),
                      bytes_per_token: bpt, effective_gbps: eff, probe_gbps: probe,
                      kernel_gbps: kernel, kernel_type: kernelType.name, fraction_of_limit: probe > 0 ? eff / probe : 0,
                      repeats: max(repeats, 1), disk_bytes_per_token: median(disk))
    }

    /// Cold start: with the model file dropped from the page cache, the bytes actually read from
    /// disk (`/proc/self/io` read_bytes) while running `tokens` tokens, against the bytes those tokens
    /// need: every shared matrix, the embedding rows used, and each expert chosen at least once.
    public struct ColdStart: Sendable, Codable {
        public var tokens: Int
        public var bytes_read: Double
        public var bytes_needed: Double
        public var ratio: Double
        public var seconds: Double
    }

    public func coldStart(tokens: Int = 16) throws -> ColdStart {
        let c = model.config
        guard let file = model.weights.expertFiles.first else { throw EngineError("cold start needs a MoE model") }
        let tf = try Transformer(weights: model.weights, pool: pool, kvType: .f16, contextLength: tokens + 1, maxBatch: 1)
        tf.traceExperts = true
        file.dropFromPageCache()
        let before = Benchmark.readBytes()
        let t0 = Benchmark.now()
        var next: [Int32] = [model.vocabulary.bosID]
        var used = Set<Int32>()
        for _ in 0..<tokens {
            used.insert(next[0])
            try next.withUnsafeBufferPointer { try tf.forward($0, logits: .last) }
            next[0] = argmax(tf.logits, c.nVocab)
        }
        let secs = Double(Benchmark.now() - t0) / 1e9
        let read = Double(Benchmark.readBytes() - before)
        var needed = 0.0
        for m in model.weights.sharedMatrices where m.base != model.weights.tokenEmbedding.base { needed += Double(m.byteCount) }
        needed += Double(used.count * model.weights.tokenEmbedding.rowBytes)
        var chosen = Set<Int>()
        for t in tf.expertTrace { for (l, choice) in t.enumerated() { for e in choice.experts { chosen.insert(l * c.nExperts + e) } } }
        for key in chosen {
            let x = model.weights.layers[key / c.nExperts].experts[key % c.nExperts]
            needed += Double(x.gate.byteCount + x.up.byteCount + x.down.byteCount)
        }
        return ColdStart(tokens: tokens, bytes_read: read, bytes_needed: needed, ratio: read / needed, seconds: secs)
    }

    /// Bytes this process caused to be read from storage so far.
    static func readBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("read_bytes:") {
            return Int(line.split(separator: " ").last ?? "0") ?? 0
        }
        return 0
    }

    func argmax(_ p: UnsafePointer<Float>, _ n: Int) -> Int32 {
        var b = 0
        for i in 1..<n where p[i] > p[b] { b = i }
        return Int32(b)
    }
}
