#if canImport(Glibc)
import Glibc
#endif
import Checkpoint
import Kernels

/// The experts chosen for one token in one layer.
public struct ExpertChoice: Sendable, Equatable {
    public var experts: [Int]
    public var weights: [Float]
}

/// Runs a Mixtral (or dense Llama/Mistral) forward pass over mapped weights.
///
/// All scratch memory is allocated here, for up to `maxBatch` tokens at once; ``forward(_:logits:)``
/// allocates nothing (unless expert tracing is on). Shapes below: B = tokens in the batch.
public final class Transformer: @unchecked Sendable {
    public let weights: ModelWeights
    public let config: ModelConfig
    public let cache: KVCache
    public let pool: WorkerPool
    public let maxBatch: Int
    /// Positions already in the KV cache; the next token goes at this position.
    public private(set) var position = 0
    /// When set, every forward pass appends `[layer] → choice` per token.
    public var traceExperts = false
    public private(set) var expertTrace: [[ExpertChoice]] = []
    /// Advise the kernel about expert pages (RANDOM at load, WILLNEED once chosen).
    public let adviseExperts: Bool

    // Scratch, row-major.
    let x: UnsafeMutablePointer<Float>         // [B, nEmbd] residual stream
    let xb: UnsafeMutablePointer<Float>        // [B, nEmbd] normed input of a block
    let q: UnsafeMutablePointer<Float>         // [B, nHeads·headDim]
    let k: UnsafeMutablePointer<Float>         // [B, nKVHeads·headDim]
    let v: UnsafeMutablePointer<Float>         // [B, nKVHeads·headDim]
    let att: UnsafeMutablePointer<Float>       // [B, nHeads·headDim] attention output
    let proj: UnsafeMutablePointer<Float>      // [B, nEmbd]
    let scores: UnsafeMutablePointer<Float>    // [workers, nHeads/nKVHeads, contextLength]
    let routerLogits: UnsafeMutablePointer<Float> // [B, nExperts]
    let chosen: UnsafeMutablePointer<Int32>    // [B, nExpertsUsed]
    let chosenWeight: UnsafeMutablePointer<Float> // [B, nExpertsUsed]
    let expertTokens: UnsafeMutablePointer<Int32> // [nExperts, B] token indices per expert
    let expertTokenWeight: UnsafeMutablePointer<Float> // [nExperts, B]
    let expertCount: UnsafeMutablePointer<Int> // [nExperts]
    /// mincore's vector for ``MappedFile/prefetch(_:scratch:capacity:)``: one byte per page.
    let residency: UnsafeMutablePointer<UInt8>
    let residencyCapacity = 4096
    /// Tokens left in which the shared weights' residency is checked too, and the chosen experts'
    /// before their section rather than during it: reset to ``pressureTokens`` whenever a check
    /// finds pages missing (memory pressure, or a cold start). Without pressure nothing is evicted;
    /// with it the coldest pages (unchosen experts) go long before the shared weights, which every
    /// token touches, so a missing expert page is the first sign.
    var pressureLeft = Transformer.pressureTokens
    static let pressureTokens = 16
    /// The experts kept in memory when the model does not fit (see ``prefetchChosenExperts(layer:tokens:)``).
    var expertCache: ExpertCache
    let xe: UnsafeMutablePointer<Float>        // [B, nEmbd] gathered expert input
    let hg: UnsafeMutablePointer<Float>        // [B, nFF] gate
    let hu: UnsafeMutablePointer<Float>        // [B, nFF] up
    let ye: UnsafeMutablePointer<Float>        // [B, nEmbd] expert output
    let ropeCos: UnsafeMutablePointer<Float>   // [B, ropeDim/2]
    let ropeSin: UnsafeMutablePointer<Float>   // [B, ropeDim/2]
    let invFreq: [Float]                       // [ropeDim/2]
    let xq: QuantizedActivations               // [B, max row length] int8 activations for Q8_0 weights
    let xqExperts: QuantizedActivations        // [nExpertsUsed, nFF] the chosen experts' down inputs (decode)
    let tasks: UnsafeMutablePointer<LinearTask> // [max(3, 2·nExpertsUsed)] products of one fused section
    let taskCapacity: Int
    let chosenExperts: UnsafeMutablePointer<Int> // [nExpertsUsed] one token's experts, ascending
    /// Multiply Q8_0 weights with activations quantized to 8 bits (as ggml does); off = float activations.
    public var int8Activations = true
    /// Logits of the last forward pass: [B or 1, nVocab].
    public let logits: UnsafeMutablePointer<Float>
    private var allocations: [UnsafeMutableRawPointer] = []

    public init(weights: ModelWeights, pool: WorkerPool, kvType: KVType = .f16, contextLength: Int? = nil,
                maxBatch: Int = 64, adviseExperts: Bool = true) throws {
        self.weights = weights
        let c = weights.config
        config = c
        self.pool = pool
        self.maxBatch = maxBatch
        self.adviseExperts = adviseExperts
        let ctx = min(contextLength ?? c.contextLength, c.contextLength)
        guard c.headDim % 8 == 0, c.nKVHeads > 0, c.nHeads % c.nKVHeads == 0 else {
            throw EngineError("unsupported attention shape: head size \(c.headDim) (must be a multiple of 8), \(c.nHeads) heads over \(c.nKVHeads) KV heads")
        }
        cache = try KVCache(config: c, type: kvType, contextLength: ctx)
        var allocs: [UnsafeMutableRawPointer] = []
        func buf<T>(_ n: Int, _: T.Type = Float.self) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1) * MemoryLayout<T>.stride, alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0, count: max(n, 1) * MemoryLayout<T>.stride)
            allocs.append(p)
            return p.assumingMemoryBound(to: T.self)
        }
        let B = maxBatch, qDim = c.nHeads * c.headDim, kvDim = c.nKVHeads * c.headDim
        let nE = max(c.nExperts, 1), nK = max(c.nExpertsUsed, 1)
        x = buf(B * c.nEmbd); xb = buf(B * c.nEmbd); q = buf(B * qDim); k = buf(B * kvDim); v = buf(B * kvDim)
        att = buf(B * qDim); proj = buf(B * c.nEmbd); scores = buf(pool.threads * (c.nHeads / max(c.nKVHeads, 1)) * ctx)
        routerLogits = buf(B * nE); chosen = buf(B * nK, Int32.self); chosenWeight = buf(B * nK)
        expertTokens = buf(nE * B, Int32.self); expertTokenWeight = buf(nE * B); expertCount = buf(nE, Int.self)
        let BE = max(B, nK)   // decode puts each chosen expert's rows side by side
        xe = buf(B * c.nEmbd); hg = buf(BE * c.nFF); hu = buf(BE * c.nFF); ye = buf(BE * c.nEmbd)
        chosenExperts = buf(nK, Int.self)
        ropeCos = buf(B * c.ropeDim / 2); ropeSin = buf(B * c.ropeDim / 2)
        logits = buf(B * c.nVocab)
        xq = QuantizedActivations(capacity: B * max(c.nEmbd, c.nFF, qDim))
        xqExperts = QuantizedActivations(capacity: nK * c.nFF)
        taskCapacity = max(3, 2 * nK)
        tasks = .allocate(capacity: taskCapacity)
        invFreq = (0..<(c.ropeDim / 2)).map { 1 / powf(c.ropeTheta, Float(2 * $0) / Float(c.ropeDim)) }
        allocations = allocs
        residency = .allocate(capacity: residencyCapacity)
        expertCache = ExpertCache(layers: c.isMoE ? c.nLayers : 0, experts: nE)
        if adviseExperts {
            // No readahead anywhere in the mapped files: readahead around any touched page (8 MiB
            // here) would pull neighbouring experts in. The shared weights, needed for every token,
            // are then fetched whole with one WILLNEED each; an expert only once it is chosen.
            var seen = Set<ObjectIdentifier>()
            for file in weights.expertFiles where seen.insert(ObjectIdentifier(file)).inserted {
                file.advise(.random, 0..<file.size)
                for m in weights.sharedMatrices where m.base != weights.tokenEmbedding.base {
                    let o = m.base - file.base
                    if o >= 0 && o + m.byteCount <= file.size { file.advise(.willNeed, o..<(o + m.byteCount)) }
                }
            }
        }
    }

    deinit { for p in allocations { p.deallocate() }; residency.deallocate(); tasks.deallocate() }

    /// Forgets the KV cache contents (the next token goes at position 0).
    public func reset() { position = 0; expertTrace.removeAll(keepingCapacity: true) }

    /// Moves the cache cursor back to `position` (keeping positions before it), e.g. to reuse a
    /// shared prompt prefix.
    public func rewind(to position: Int) {
        precondition(position <= self.position)
        self.position = position
    }

    /// Restores the cursor after the cache was loaded from a saved session.
    public func setPosition(_ p: Int) { precondition(p <= cache.contextLength); position = p }

    public enum LogitsWanted { case none, last, all }

    /// Runs `tokens` (at most `maxBatch`) at positions `position…`, appending to the KV cache.
    /// Logits land in ``logits``: one row per token for `.all`, one row (the last token) for `.last`.
    public func forward(_ tokens: UnsafeBufferPointer<Int32>, logits wanted: LogitsWanted = .last) throws {
        let B = tokens.count
        let c = config
        precondition(B >= 1 && B <= maxBatch)
        guard position + B <= cache.contextLength else {
            throw EngineError("context full: \(position + B) tokens exceed the context length of \(cache.contextLength)")
        }
        for t in tokens where t < 0 || Int(t) >= c.nVocab {
            throw EngineError("token id \(t) is outside the vocabulary (0..<\(c.nVocab))")
        }
        let qDim = c.nHeads * c.headDim, kvDim = c.nKVHeads * c.headDim

        // Token embeddings: one dequantized row each.
        for t in 0..<B { weights.tokenEmbedding.dequantizeRow(Int(tokens[t]), into: x + t * c.nEmbd) }
        // RoPE angles for these positions, shared by every layer.
        let half = c.ropeDim / 2
        for t in 0..<B {
            let p = Float(position + t)
            for i in 0..<half {
                let a = p * invFreq[i]
                ropeCos[t * half + i] = cosf(a); ropeSin[t * half + i] = sinf(a)
            }
        }

        if adviseExperts { expertCache.beginPass { self.evictExpert($0, $1) } }
        for (l, layer) in weights.layers.enumerated() {
            var trace: [ExpertChoice] = []
            if adviseExperts && pressureLeft > 0 {
                // Shared weights were fetched at start-up; under memory pressure they may have been
                // evicted since, and with no readahead they would return a page at a time.
                prefetch(layer.wq, layer: l); prefetch(layer.wk, layer: l)
                prefetch(layer.wv, layer: l); prefetch(layer.wo, layer: l)
            }
            // Attention rmsnorm.
            rmsNorm(x, layer.attnNorm, into: xb, count: B)
            // Q, K, V projections: one section, the input quantized once.
            let qkvInt = quantizeIfNeeded(xb, stride: c.nEmbd, count: B, rowLength: c.nEmbd,
                                          anyQ8_0: layer.wq.type == .q8_0 || layer.wk.type == .q8_0 || layer.wv.type == .q8_0, into: xq)
            setTask(0, layer.wq, xb, xStride: c.nEmbd, count: B, q, yStride: qDim, xq: qkvInt)
            setTask(1, layer.wk, xb, xStride: c.nEmbd, count: B, k, yStride: kvDim, xq: qkvInt)
            setTask(2, layer.wv, xb, xStride: c.nEmbd, count: B, v, yStride: kvDim, xq: qkvInt)
            pool.run(UnsafeBufferPointer(start: tasks, count: 3))
            // RoPE on queries and keys, then keys and values into the cache.
            for t in 0..<B {
                rope(q + t * qDim, heads: c.nHeads, token: t)
                rope(k + t * kvDim, heads: c.nKVHeads, token: t)
                cache.store(layer: l, position: position + t, key: k + t * kvDim, value: v + t * kvDim)
            }
            // Causal grouped-query attention over the cache.
            attention(layer: l, count: B)
            // Output projection and residual connection.
            linear(layer.wo, att, xStride: qDim, count: B, proj, yStride: c.nEmbd)
            addInPlace(x, proj, B * c.nEmbd)

            // FFN rmsnorm.
            rmsNorm(x, layer.ffnNorm, into: xb, count: B)
            if let router = layer.router {
                // Router logits → top-k experts per token → group tokens by expert.
                linear(router, xb, xStride: c.nEmbd, count: B, routerLogits, yStride: c.nExperts)
                let nK = c.nExpertsUsed
                for e in 0..<c.nExperts { expertCount[e] = 0 }
                for t in 0..<B {
                    ExpertRouter.route(routerLogits + t * c.nExperts, count: c.nExperts, k: nK,
                                       experts: chosen + t * nK, weights: chosenWeight + t * nK)
                    for j in 0..<nK {
                        let e = Int(chosen[t * nK + j])
                        expertTokens[e * maxBatch + expertCount[e]] = Int32(t)
                        expertTokenWeight[e * maxBatch + expertCount[e]] = chosenWeight[t * nK + j]
                        expertCount[e] += 1
                    }
                    if traceExperts {
                        trace.append(ExpertChoice(experts: (0..<nK).map { Int(chosen[t * nK + $0]) },
                                                  weights: (0..<nK).map { chosenWeight[t * nK + $0] }))
                    }
                }
                if B == 1 && adviseExperts && pressureLeft == 0 {
                    // No pages were missing lately: check the chosen experts while the gate and up
                    // products already run.
                    singleTokenExperts(layer) { prefetchChosenExperts(layer: l, tokens: 1) }
                } else {
                    if adviseExperts { prefetchChosenExperts(layer: l, tokens: B) }
                    if B == 1 { singleTokenExperts(layer) } else { batchedExperts(layer) }
                }
            } else {
                // Dense model: one always-chosen FFN.
                xe.update(from: xb, count: B * c.nEmbd)
                expertFFN(layer.experts[0], count: B)
                addInPlace(x, ye, B * c.nEmbd)
            }
            if traceExperts && !trace.isEmpty {
                if l == 0 { expertTrace.append(contentsOf: repeatElement([], count: B)) }
                for t in 0..<B { expertTrace[expertTrace.count - B + t].append(trace[t]) }
            }
        }

        // Final rmsnorm and output head.
        if adviseExperts && pressureLeft > 0 && wanted != .none { prefetch(weights.output, layer: 0) }
        switch wanted {
        case .none: break
        case .last:
            rmsNorm(x + (B - 1) * c.nEmbd, weights.outputNorm, into: xb, count: 1)
            linear(weights.output, xb, xStride: c.nEmbd, count: 1, logits, yStride: c.nVocab)
        case .all:
            rmsNorm(x, weights.outputNorm, into: xb, count: B)
            linear(weights.output, xb, xStride: c.nEmbd, count: B, logits, yStride: c.nVocab)
        }
        position += B
        pressureLeft = max(0, pressureLeft - 1)
    }

    /// WILLNEED on the chosen experts' pages of layer `l` that are not resident (a pass of
    /// `tokens` tokens), after counting them in the expert cache, which may give back others to
    /// make room. A held expert found missing tells the cache that the kernel is reclaiming.
    func prefetchChosenExperts(layer l: Int, tokens: Int) {
        let nK = config.nExpertsUsed, last = chosen + (tokens - 1) * nK
        for e in 0..<config.nExperts where expertCount[e] > 0 {
            let held = expertCache.isHeld(layer: l, expert: e)
            var byLastToken = false
            for j in 0..<nK where last[j] == Int32(e) { byLastToken = true }
            expertCache.choose(layer: l, expert: e, byLastToken: byLastToken, chosenNow: { expertCount[$0] > 0 }) { self.evictExpert($0, $1) }
            var missing = false
            for r in weights.expertRanges[l][e] where weights.expertFiles[l].prefetch(r, scratch: residency, capacity: residencyCapacity) {
                missing = true
            }
            if missing {
                pressureLeft = Transformer.pressureTokens
                if held {
                    expertCache.reclaimed(singleToken: tokens == 1, chosenLayer: l, chosenNow: { expertCount[$0] > 0 }) { self.evictExpert($0, $1) }
                }
            }
        }
    }

    /// Gives expert `e` of layer `l` back to the kernel: unmapped and dropped from the page cache.
    func evictExpert(_ l: Int, _ e: Int) {
        for r in weights.expertRanges[l][e] { weights.expertFiles[l].evict(r) }
    }

    /// WILLNEED on `m`'s bytes unless they are all resident (a page-table check: cheap when they are).
    func prefetch(_ m: WeightMatrix, layer l: Int) {
        guard l < weights.expertFiles.count else { return }   // dense models: nothing advised
        let file = weights.expertFiles[l], o = m.base - file.base
        if o >= 0 && o + m.byteCount <= file.size {
            if file.prefetch(o..<(o + m.byteCount), scratch: residency, capacity: residencyCapacity) {
                pressureLeft = Transformer.pressureTokens
                // With eviction on, a shared weight found missing means the experts left too
                // little room: the kernel took pages that every token reads.
                if expertCache.isLimited {
                    expertCache.reclaimed(singleToken: true, chosenLayer: -1, chosenNow: { _ in false }) { self.evictExpert($0, $1) }
                }
            }
        }
    }

    /// y_t = W·x_t for `count` vectors; Q8_0 weights take the integer path on 8-bit activations.
    func linear(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int, count: Int,
                _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        let quantized = quantizeIfNeeded(x, stride: xStride, count: count, rowLength: w.cols, anyQ8_0: w.type == .q8_0, into: xq)
        setTask(0, w, x, xStride: xStride, count: count, y, yStride: yStride, xq: quantized)
        pool.run(UnsafeBufferPointer(start: tasks, count: 1))
    }

    /// Quantizes `count` vectors at `x` into `xq` when a Q8_0 matrix will take the integer path.
    func quantizeIfNeeded(_ x: UnsafePointer<Float>, stride: Int, count: Int, rowLength: Int, anyQ8_0: Bool,
                          into xq: QuantizedActivations) -> QuantizedActivations? {
        guard int8Activations && anyQ8_0 else { return nil }
        xq.quantize(x, stride: stride, count: count, rowLength: rowLength, pool: pool)
        return xq
    }

    /// tasks[i] = y = W·x, on the integer path when `w` is Q8_0 and `xq` holds x quantized.
    func setTask(_ i: Int, _ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int, count: Int,
                 _ y: UnsafeMutablePointer<Float>, yStride: Int, xq: QuantizedActivations?, first: Int = 0) {
        precondition(i < taskCapacity)
        if let xq, w.type == .q8_0 {
            (tasks + i).initialize(to: LinearTask(w, xq, first: first, count: count, y, yStride: yStride))
        } else {
            (tasks + i).initialize(to: LinearTask(w, x, xStride: xStride, count: count, y, yStride: yStride))
        }
    }

    /// Each chosen expert runs once over all its tokens (gathered from xb); outputs are added to
    /// x weighted, in ascending expert order.
    func batchedExperts(_ layer: LayerWeights) {
        let c = config
        for e in 0..<c.nExperts where expertCount[e] > 0 {
            let n = expertCount[e]
            for i in 0..<n {
                let t = Int(expertTokens[e * maxBatch + i])
                (xe + i * c.nEmbd).update(from: xb + t * c.nEmbd, count: c.nEmbd)
            }
            expertFFN(layer.experts[e], count: n)
            for i in 0..<n {
                let t = Int(expertTokens[e * maxBatch + i])
                let w = expertTokenWeight[e * maxBatch + i]
                let dst = x + t * c.nEmbd, src = ye + i * c.nEmbd
                for d in 0..<c.nEmbd { dst[d] += w * src[d] }
            }
        }
    }

    /// The experts of a single token (xb): gate and up of every chosen expert in one section,
    /// down of every chosen expert in one section, then x += Σ weight·output in ascending
    /// expert order (the order the batched path adds them in, so results do not depend on B).
    /// The first section also applies the SiLU and quantizes the result for down, each chunk for
    /// its own rows, so nothing runs serially between the two. `first` runs on the calling
    /// thread while the workers start on gate and up.
    func singleTokenExperts(_ layer: LayerWeights, whileGateUpStarts first: () -> Void = {}) {
        let c = config
        var n = 0, gateUpQ8_0 = false, downQ8_0 = false
        for e in 0..<c.nExperts where expertCount[e] > 0 {
            chosenExperts[n] = e; n += 1
            let w = layer.experts[e]
            gateUpQ8_0 = gateUpQ8_0 || w.gate.type == .q8_0 || w.up.type == .q8_0
            downQ8_0 = downQ8_0 || w.down.type == .q8_0
        }
        let inInt = quantizeIfNeeded(xb, stride: c.nEmbd, count: 1, rowLength: c.nEmbd, anyQ8_0: gateUpQ8_0, into: xq)
        for j in 0..<n {
            let w = layer.experts[chosenExperts[j]]
            setTask(2 * j, w.gate, xb, xStride: c.nEmbd, count: 1, hg + j * c.nFF, yStride: c.nFF, xq: inInt)
            setTask(2 * j + 1, w.up, xb, xStride: c.nEmbd, count: 1, hu + j * c.nFF, yStride: c.nFF, xq: inInt)
        }
        let hInt = int8Activations && downQ8_0 ? xqExperts : nil
        hInt?.prepare(count: n, rowLength: c.nFF)
        // Rows of the experts' hidden vectors, expert after expert, in whole Q8_0 blocks.
        pool.parallelFor(n * c.nFF, granularity: 32, with: (self, hInt), { context, lo, hi, thread in
            let (me, hInt) = context.load(as: (Transformer, QuantizedActivations?).self)
            me.gateUpSiLU(rows: lo..<hi, thread: thread, quantizeInto: hInt)
        }, first: first)
        for j in 0..<n {
            setTask(j, layer.experts[chosenExperts[j]].down, hg + j * c.nFF, xStride: c.nFF, count: 1, ye + j * c.nEmbd, yStride: c.nEmbd,
                    xq: hInt, first: j)
        }
        pool.run(UnsafeBufferPointer(start: tasks, count: n))
        for j in 0..<n {
            let w = expertTokenWeight[chosenExperts[j] * maxBatch]
            let src = ye + j * c.nEmbd
            for d in 0..<c.nEmbd { x[d] += w * src[d] }
        }
    }

    /// Rows `rows` of the chosen experts' hidden vectors (row j·nFF + i is row i of expert j): the
    /// gate and up products of tasks 2j and 2j+1, the gated SiLU into hg, and with `quantizeInto`
    /// the Q8_0 blocks of those rows (rows come in whole blocks).
    func gateUpSiLU(rows: Range<Int>, thread: Int, quantizeInto hInt: QuantizedActivations?) {
        let nFF = config.nFF
        precondition(hInt == nil || nFF % 32 == 0, "Q8_0 down projections have whole blocks")
        let scratch = pool.scratch(thread), scratchBytes = pool.scratchBytes
        var r = rows.lowerBound
        while r < rows.upperBound {
            let j = r / nFF, a = r % nFF, b = min(nFF, a + rows.upperBound - r)
            tasks[2 * j].run(rows: a..<b, scratch: scratch, scratchBytes: scratchBytes)
            tasks[2 * j + 1].run(rows: a..<b, scratch: scratch, scratchBytes: scratchBytes)
            VectorMath.gatedSiLU(hg + j * nFF, hu + j * nFF, a..<b)
            hInt?.quantize(vector: j, blocks: (a / 32)..<(b / 32), from: hg + j * nFF)
            r += b - a
        }
    }

    /// down(silu(gate·xe) ⊙ up·xe) for `count` gathered tokens: xe → ye.
    func expertFFN(_ w: ExpertWeights, count n: Int) {
        let c = config
        linear(w.gate, xe, xStride: c.nEmbd, count: n, hg, yStride: c.nFF)
        linear(w.up, xe, xStride: c.nEmbd, count: n, hu, yStride: c.nFF)
        gatedSiLU(n * c.nFF)
        linear(w.down, hg, xStride: c.nFF, count: n, ye, yStride: c.nEmbd)
    }

    /// hg[i] = silu(hg[i]) · hu[i] for i < n, split across the pool when long (prompt processing).
    func gatedSiLU(_ n: Int) {
        if n < 1 << 16 { VectorMath.gatedSiLU(hg, hu, 0..<n); return }
        pool.parallelFor(n, granularity: 1024, with: (hg, hu)) { context, lo, hi, _ in
            let (g, u) = context.load(as: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>).self)
            VectorMath.gatedSiLU(g, u, lo..<hi)
        }
    }

    /// out[t] = x[t] / sqrt(mean(x[t]²) + eps) ⊙ weight, for `count` rows.
    func rmsNorm(_ x: UnsafePointer<Float>, _ weight: [Float], into out: UnsafeMutablePointer<Float>, count: Int) {
        let n = config.nEmbd
        for t in 0..<count {
            let row = x + t * n, o = out + t * n
            var ss: Float = 0
            for i in 0..<n { ss += row[i] * row[i] }
            let scale = 1 / (ss / Float(n) + config.normEps).squareRoot()
            for i in 0..<n { o[i] = row[i] * scale * weight[i] }
        }
    }

    /// Rotates each head's first ropeDim dimensions by the token's angles.
    func rope(_ v: UnsafeMutablePointer<Float>, heads: Int, token t: Int) {
        let hd = config.headDim, half = config.ropeDim / 2
        let cs = ropeCos + t * half, sn = ropeSin + t * half
        for h in 0..<heads {
            let p = v + h * hd
            for i in 0..<half {
                // Interleaved: pair (2i, 2i+1). Halves (Hugging Face rows): pair (i, i + ropeDim/2).
                let (a, b) = weights.ropeLayout == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                let x0 = p[a], x1 = p[b]
                p[a] = x0 * cs[i] - x1 * sn[i]
                p[b] = x0 * sn[i] + x1 * cs[i]
            }
        }
    }

    /// att[t, h] = Σ_j softmax_j(q[t,h]·k[j,kvh] / √headDim) v[j,kvh] over j ≤ position of t.
    func attention(layer l: Int, count B: Int) {
        let items = B * config.nKVHeads
        // Short work runs on the calling thread: waking the workers costs more than it saves.
        if B * config.nHeads * (position + B) * config.headDim < Transformer.parallelAttentionWork {
            attention(layer: l, items: 0..<items, worker: 0)
            return
        }
        pool.parallelFor(items, with: (self, l)) { context, lo, hi, worker in
            let (me, l) = context.load(as: (Transformer, Int).self)
            me.attention(layer: l, items: lo..<hi, worker: worker)
        }
    }

    /// Multiply-adds (tokens × heads × positions × head size) below which attention runs on the
    /// calling thread alone: about 30 µs of work, the order of a worker's wake-up.
    static let parallelAttentionWork = 1 << 18

    /// The (token, KV head) items `range` of ``attention(layer:count:)`` (item = token × nKVHeads +
    /// KV head), each one ``GroupedQueryAttention/attend(queries:group:headDim:keys:values:rowStride:f32:positions:scores:scoreStride:into:)``.
    private func attention(layer l: Int, items range: Range<Int>, worker: Int) {
        let c = config
        let hd = c.headDim, qDim = c.nHeads * hd
        let group = c.nHeads / c.nKVHeads
        let elementBytes = cache.type.bytes
        let keys = cache.keys(l), values = cache.values(l)
        let ctx = cache.contextLength
        let s = self.scores + worker * group * ctx     // [ctx, group]
        for item in range {
            let t = item / c.nKVHeads, kvh = item % c.nKVHeads
            GroupedQueryAttention.attend(
                queries: q + t * qDim + kvh * group * hd, group: group, headDim: hd,
                keys: keys + kvh * cache.headStride * elementBytes, values: values + kvh * cache.headStride * elementBytes,
                rowStride: hd, f32: cache.type == .f32, positions: position + t + 1,
                scores: s, into: att + t * qDim + kvh * group * hd)
        }
    }
}

@inline(__always)
func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n { a[i] += b[i] }
}
