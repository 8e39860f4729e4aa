import Checkpoint
import GGUF
import Kernels

/// One expert's SwiGLU feed-forward network: down(silu(gate·x) ⊙ up·x).
public struct ExpertWeights: @unchecked Sendable {
    public var gate: WeightMatrix  // [nFF rows × nEmbd]
    public var up: WeightMatrix    // [nFF rows × nEmbd]
    public var down: WeightMatrix  // [nEmbd rows × nFF]
}

/// One decoder layer's weights, all zero-copy views but the tiny norm vectors.
public struct LayerWeights: @unchecked Sendable {
    public var attnNorm: [Float]      // [nEmbd]
    public var wq: WeightMatrix       // [nHeads·headDim rows × nEmbd]
    public var wk: WeightMatrix       // [nKVHeads·headDim rows × nEmbd]
    public var wv: WeightMatrix       // [nKVHeads·headDim rows × nEmbd]
    public var wo: WeightMatrix       // [nEmbd rows × nHeads·headDim]
    public var ffnNorm: [Float]       // [nEmbd]
    /// The MoE router [nExperts rows × nEmbd]; nil for a dense model.
    public var router: WeightMatrix?
    /// nExperts experts (one, always chosen, for a dense model).
    public var experts: [ExpertWeights]
}

/// A model's weights in mapped memory, from a GGUF file or straight from a 16-bit checkpoint.
public struct ModelWeights: @unchecked Sendable {
    public var config: ModelConfig
    public var ropeLayout: RopeLayout
    public var tokenEmbedding: WeightMatrix  // [nVocab rows × nEmbd]
    public var layers: [LayerWeights]
    public var outputNorm: [Float]           // [nEmbd]
    public var output: WeightMatrix          // [nVocab rows × nEmbd]
    /// The mapped file holding each layer's experts, with each expert's byte ranges (for
    /// residency advice): `expertRanges[layer][expert]`.
    public var expertFiles: [MappedFile]
    public var expertRanges: [[[Range<Int>]]]

    /// Every matrix that is not an expert (attention, routers, embeddings, output), for residency
    /// control and accounting.
    public var sharedMatrices: [WeightMatrix] {
        var m = [tokenEmbedding, output]
        for l in layers {
            m += [l.wq, l.wk, l.wv, l.wo]
            if let r = l.router { m.append(r) }
            if l.router == nil { m += [l.experts[0].gate, l.experts[0].up, l.experts[0].down] }
        }
        return m
    }

    /// Bytes of weights read for one token when `expertsUsed` experts run in every layer.
    public func bytesPerToken() -> Int {
        var b = output.byteCount + tokenEmbedding.rowBytes
        for l in layers {
            b += l.wq.byteCount + l.wk.byteCount + l.wv.byteCount + l.wo.byteCount + (l.router?.byteCount ?? 0)
            b += (l.attnNorm.count + l.ffnNorm.count) * 4
            let e = l.experts[0]
            b += (e.gate.byteCount + e.up.byteCount + e.down.byteCount) * max(1, config.nExpertsUsed)
        }
        return b
    }
}

func floats(_ m: WeightMatrix) -> [Float] {
    var out = [Float](repeating: 0, count: m.cols * m.rows)
    out.withUnsafeMutableBufferPointer { p in
        for r in 0..<m.rows { m.dequantizeRow(r, into: p.baseAddress! + r * m.cols) }
    }
    return out
}

extension ModelWeights {
    /// Loads from a checkpoint (Hugging Face or consolidated), zero-copy: the 16-bit original runs
    /// without converting it.
    public init(checkpoint ck: any Checkpoint) throws {
        let c = ck.config
        config = c
        ropeLayout = ck.ropeLayout
        func m(_ r: TensorRole) throws -> WeightMatrix { try ck.tensor(r).matrix }
        tokenEmbedding = try m(.tokenEmbedding)
        output = try m(.output)
        outputNorm = floats(try m(.outputNorm))
        var layers: [LayerWeights] = []
        var files: [MappedFile] = []
        var ranges: [[[Range<Int>]]] = []
        for l in 0..<c.nLayers {
            var experts: [ExpertWeights] = []
            var er: [[Range<Int>]] = []
            for e in 0..<c.nExperts {
                let g = try ck.tensor(.expertGate(l, e)), u = try ck.tensor(.expertUp(l, e)), d = try ck.tensor(.expertDown(l, e))
                experts.append(ExpertWeights(gate: g.matrix, up: u.matrix, down: d.matrix))
                er.append([g.fileRange, u.fileRange, d.fileRange])
                if e == 0 { files.append(g.file) }
            }
            ranges.append(er)
            layers.append(LayerWeights(
                attnNorm: floats(try m(.attnNorm(l))), wq: try m(.attnQ(l)), wk: try m(.attnK(l)), wv: try m(.attnV(l)),
                wo: try m(.attnOutput(l)), ffnNorm: floats(try m(.ffnNorm(l))), router: try m(.router(l)), experts: experts))
        }
        self.layers = layers
        expertFiles = files
        expertRanges = ranges
    }

    /// Loads from a GGUF file (ours or llama.cpp's: `general.architecture` llama, MoE or dense).
    public init(gguf g: GGUFFile) throws {
        let c = try ModelConfig(gguf: g)
        config = c
        ropeLayout = .interleaved
        func t(_ name: String, _ shape: [Int]) throws -> WeightMatrix {
            guard let info = g.tensorInfo(name) else { throw EngineError("\(g.path): missing tensor '\(name)'") }
            guard info.shape == shape else {
                throw EngineError("\(g.path): tensor '\(name)' has shape \(info.shape), expected \(shape) from the metadata")
            }
            return WeightMatrix(base: g.data(of: info), type: info.type, cols: info.shape[0], rows: info.rowCount)
        }
        let qDim = c.nHeads * c.headDim, kvDim = c.nKVHeads * c.headDim
        tokenEmbedding = try t("token_embd.weight", [c.nEmbd, c.nVocab])
        output = g.tensorInfo("output.weight") == nil ? tokenEmbedding : try t("output.weight", [c.nEmbd, c.nVocab])
        outputNorm = floats(try t("output_norm.weight", [c.nEmbd]))
        var layers: [LayerWeights] = []
        var ranges: [[[Range<Int>]]] = []
        for l in 0..<c.nLayers {
            let p = "blk.\(l)."
            var experts: [ExpertWeights] = []
            var router: WeightMatrix?
            var er: [[Range<Int>]] = []
            if c.isMoE {
                router = try t(p + "ffn_gate_inp.weight", [c.nEmbd, c.nExperts])
                let gate = try t(p + "ffn_gate_exps.weight", [c.nEmbd, c.nFF, c.nExperts])
                let up = try t(p + "ffn_up_exps.weight", [c.nEmbd, c.nFF, c.nExperts])
                let down = try t(p + "ffn_down_exps.weight", [c.nFF, c.nEmbd, c.nExperts])
                for e in 0..<c.nExperts {
                    let ge = gate.rows(e * c.nFF..<(e + 1) * c.nFF), ue = up.rows(e * c.nFF..<(e + 1) * c.nFF)
                    let de = down.rows(e * c.nEmbd..<(e + 1) * c.nEmbd)
                    experts.append(ExpertWeights(gate: ge, up: ue, down: de))
                    er.append([ge, ue, de].map { let o = $0.base - g.file.base; return o..<(o + $0.byteCount) })
                }
            } else {
                experts = [ExpertWeights(gate: try t(p + "ffn_gate.weight", [c.nEmbd, c.nFF]),
                                         up: try t(p + "ffn_up.weight", [c.nEmbd, c.nFF]),
                                         down: try t(p + "ffn_down.weight", [c.nFF, c.nEmbd]))]
            }
            ranges.append(er)
            layers.append(LayerWeights(
                attnNorm: floats(try t(p + "attn_norm.weight", [c.nEmbd])),
                wq: try t(p + "attn_q.weight", [c.nEmbd, qDim]), wk: try t(p + "attn_k.weight", [c.nEmbd, kvDim]),
                wv: try t(p + "attn_v.weight", [c.nEmbd, kvDim]), wo: try t(p + "attn_output.weight", [qDim, c.nEmbd]),
                ffnNorm: floats(try t(p + "ffn_norm.weight", [c.nEmbd])), router: router, experts: experts))
        }
        self.layers = layers
        expertFiles = Array(repeating: g.file, count: c.isMoE ? c.nLayers : 0)
        expertRanges = ranges
    }
}

extension ModelConfig {
    /// Reads `llama.*` hyperparameters; a missing or inconsistent key is an error, never a default
    /// (but for the optional ones llama.cpp also derives: head dim, RoPE dim).
    public init(gguf g: GGUFFile) throws {
        guard let arch = g["general.architecture"]?.string else { throw EngineError("\(g.path): missing 'general.architecture'") }
        guard arch == "llama" || arch == "mistral" || arch == "mixtral" else {
            throw EngineError("\(g.path): architecture '\(arch)' is not supported (Octet runs llama-architecture Mixtral, Mistral and Llama models)")
        }
        func int(_ k: String) throws -> Int {
            guard let v = g["\(arch).\(k)"] else { throw EngineError("\(g.path): missing metadata '\(arch).\(k)'") }
            guard let i = v.int else { throw EngineError("\(g.path): metadata '\(arch).\(k)' is not an integer") }
            return i
        }
        func float(_ k: String) throws -> Float {
            guard let v = g["\(arch).\(k)"]?.double else { throw EngineError("\(g.path): missing metadata '\(arch).\(k)'") }
            return Float(v)
        }
        let nEmbd = try int("embedding_length"), nHeads = try int("attention.head_count")
        let headDim = (try? int("attention.key_length")) ?? nEmbd / max(nHeads, 1)
        let hasExperts = g["\(arch).expert_count"] != nil
        let nExperts = hasExperts ? try int("expert_count") : 0
        if hasExperts && g["\(arch).expert_used_count"] == nil { throw EngineError("\(g.path): 'expert_count' is set but 'expert_used_count' is missing") }
        let nVocab: Int
        if let v = g["\(arch).vocab_size"]?.int { nVocab = v }
        else if let toks = g["tokenizer.ggml.tokens"]?.array { nVocab = toks.count }
        else if let t = g.tensorInfo("token_embd.weight"), t.shape.count == 2 { nVocab = t.shape[1] }
        else { throw EngineError("\(g.path): cannot tell the vocabulary size") }
        self.init(nVocab: nVocab, nEmbd: nEmbd, nLayers: try int("block_count"), nHeads: nHeads,
                  nKVHeads: (try? int("attention.head_count_kv")) ?? nHeads, headDim: headDim,
                  nFF: try int("feed_forward_length"), nExperts: nExperts,
                  nExpertsUsed: hasExperts ? try int("expert_used_count") : 0,
                  ropeTheta: (try? float("rope.freq_base")) ?? 10000, ropeDim: (try? int("rope.dimension_count")) ?? headDim,
                  normEps: try float("attention.layer_norm_rms_epsilon"), contextLength: try int("context_length"))
        do { try validate(source: g.path) } catch let e as CheckpointError { throw EngineError(e.description) }
    }
}
