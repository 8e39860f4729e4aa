import Foundation

/// Mistral's original layout: `params.json` and `consolidated.safetensors` with Mistral's names
/// (`tok_embeddings`, `layers.N.attention.wq`, `layers.N.feed_forward.experts.E.w1` …). Q/K rows are
/// in the interleaved RoPE order (``RopeLayout/interleaved``), as GGUF stores them.
public final class ConsolidatedCheckpoint: Checkpoint, @unchecked Sendable {
    public let path: String
    public let config: ModelConfig
    public let ropeLayout = RopeLayout.interleaved
    public let tokenizerModelPath: String?
    public let chatTemplate: String? = nil
    public let bosID: Int32 = 1
    public let eosID: Int32 = 2
    public let layoutName = "Mistral consolidated safetensors"
    /// Mixtral's context length, used when params.json does not say (it usually does not).
    public static let fallbackContextLength = 32768
    public let contextLengthWasDefaulted: Bool
    let set: SafeTensorsSet

    public init(folder: String, singleFile: String? = nil) throws {
        path = folder
        let cfgPath = folder + "/params.json"
        let j = JSONFields(dict: try readJSONObject(cfgPath), path: cfgPath)
        guard let moe = j.sub("moe") else { throw CheckpointError(cfgPath, "no 'moe' section: this reader handles Mixtral (MoE) checkpoints") }
        let dim = try j.int("dim"), nHeads = try j.int("n_heads")
        let headDim = j.optInt("head_dim") ?? dim / max(nHeads, 1)
        let ctx = j.optInt("max_seq_len") ?? j.optInt("max_position_embeddings")
        contextLengthWasDefaulted = ctx == nil
        config = ModelConfig(
            nVocab: try j.int("vocab_size"), nEmbd: dim, nLayers: try j.int("n_layers"), nHeads: nHeads,
            nKVHeads: try j.int("n_kv_heads"), headDim: headDim, nFF: try j.int("hidden_dim"),
            nExperts: try moe.int("num_experts"), nExpertsUsed: try moe.int("num_experts_per_tok"),
            ropeTheta: Float(try j.double("rope_theta")), ropeDim: headDim, normEps: Float(try j.double("norm_eps")),
            contextLength: ctx ?? ConsolidatedCheckpoint.fallbackContextLength)
        try config.validate(source: cfgPath)
        let fm = FileManager.default
        var files = singleFile.map { [$0] } ?? []
        if files.isEmpty {
            files = ((try? fm.contentsOfDirectory(atPath: folder)) ?? [])
                .filter { $0.hasPrefix("consolidated") && $0.hasSuffix(".safetensors") }.sorted().map { folder + "/" + $0 }
        }
        if files.isEmpty {
            let pth = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".pth") }
            throw CheckpointError(folder, pth.isEmpty ? "no consolidated*.safetensors file"
                                  : "only PyTorch .pth files (\(pth.joined(separator: ", "))); Octet reads consolidated.safetensors")
        }
        set = try SafeTensorsSet(paths: files)
        tokenizerModelPath = fm.fileExists(atPath: folder + "/tokenizer.model") ? folder + "/tokenizer.model" : nil
    }

    public func tensor(_ role: TensorRole) throws -> CheckpointTensor {
        let shape = role.expectedShape(config)
        func named(_ n: String) throws -> CheckpointTensor { try set.tensor(n, role: role, expected: shape, folder: path) }
        switch role {
        case .tokenEmbedding: return try named("tok_embeddings.weight")
        case .output: return try named("output.weight")
        case .outputNorm: return try named("norm.weight")
        case .attnNorm(let l): return try named("layers.\(l).attention_norm.weight")
        case .ffnNorm(let l): return try named("layers.\(l).ffn_norm.weight")
        case .attnQ(let l): return try named("layers.\(l).attention.wq.weight")
        case .attnK(let l): return try named("layers.\(l).attention.wk.weight")
        case .attnV(let l): return try named("layers.\(l).attention.wv.weight")
        case .attnOutput(let l): return try named("layers.\(l).attention.wo.weight")
        case .router(let l): return try named("layers.\(l).feed_forward.gate.weight")
        case .expertGate(let l, let e): return try named("layers.\(l).feed_forward.experts.\(e).w1.weight")
        case .expertUp(let l, let e): return try named("layers.\(l).feed_forward.experts.\(e).w3.weight")
        case .expertDown(let l, let e): return try named("layers.\(l).feed_forward.experts.\(e).w2.weight")
        }
    }
}
