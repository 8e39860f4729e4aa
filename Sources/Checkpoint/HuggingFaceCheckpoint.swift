import Foundation

/// A Hugging Face Mixtral checkpoint: `config.json` with `model.safetensors`, or shards listed in
/// `model.safetensors.index.json`. Expert weights may use the classic per-expert names
/// (`block_sparse_moe.experts.E.w1/w2/w3`) or the fused ones newer transformers write
/// (`mlp.experts.gate_up_proj` [E, 2·nFF, nEmbd], `mlp.experts.down_proj` [E, nEmbd, nFF]).
/// Q/K rows are in transformers' rotate-half order (``RopeLayout/halves``).
public final class HuggingFaceCheckpoint: Checkpoint, @unchecked Sendable {
    public let path: String
    public let config: ModelConfig
    public let ropeLayout = RopeLayout.halves
    public let tokenizerModelPath: String?
    public let chatTemplate: String?
    public let bosID: Int32
    public let eosID: Int32
    public let layoutName = "Hugging Face safetensors"
    let set: SafeTensorsSet
    let tiedEmbeddings: Bool

    public init(folder: String, singleFile: String? = nil) throws {
        path = folder
        let cfgPath = folder + "/config.json"
        let j = JSONFields(dict: try readJSONObject(cfgPath), path: cfgPath)
        let nEmbd = try j.int("hidden_size"), nHeads = try j.int("num_attention_heads")
        let headDim = j.optInt("head_dim") ?? (nEmbd / max(nHeads, 1))
        let modelType = j.dict["model_type"] as? String ?? ""
        let moe = modelType == "mixtral" || j.dict["num_local_experts"] != nil
        let theta = j.optDouble("rope_theta") ?? j.sub("rope_parameters")?.optDouble("rope_theta")
        guard let theta else { throw CheckpointError(cfgPath, "missing required field 'rope_theta'") }
        config = ModelConfig(
            nVocab: try j.int("vocab_size"), nEmbd: nEmbd, nLayers: try j.int("num_hidden_layers"),
            nHeads: nHeads, nKVHeads: j.optInt("num_key_value_heads") ?? nHeads, headDim: headDim,
            nFF: try j.int("intermediate_size"),
            nExperts: moe ? try j.int("num_local_experts") : 0,
            nExpertsUsed: moe ? try j.int("num_experts_per_tok") : 0,
            ropeTheta: Float(theta), ropeDim: headDim, normEps: Float(try j.double("rms_norm_eps")),
            contextLength: try j.int("max_position_embeddings"))
        try config.validate(source: cfgPath)
        guard config.isMoE else { throw CheckpointError(cfgPath, "model_type '\(modelType)' is dense; this reader handles Mixtral (MoE) checkpoints") }
        tiedEmbeddings = (j.dict["tie_word_embeddings"] as? Bool) ?? false
        bosID = Int32(j.optInt("bos_token_id") ?? 1)
        eosID = Int32(j.optInt("eos_token_id") ?? 2)

        let fm = FileManager.default
        var files: [String]
        if let singleFile {
            files = [singleFile]
        } else if fm.fileExists(atPath: folder + "/model.safetensors.index.json") {
            let idxPath = folder + "/model.safetensors.index.json"
            guard let map = try readJSONObject(idxPath)["weight_map"] as? [String: String] else {
                throw CheckpointError(idxPath, "missing 'weight_map'")
            }
            files = Array(Set(map.values)).sorted().map { folder + "/" + $0 }
            for f in files where !fm.fileExists(atPath: f) { throw CheckpointError(f, "shard listed in model.safetensors.index.json is missing") }
        } else if fm.fileExists(atPath: folder + "/model.safetensors") {
            files = [folder + "/model.safetensors"]
        } else {
            files = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted().map { folder + "/" + $0 }
            if files.isEmpty { throw CheckpointError(folder, "no .safetensors files") }
        }
        set = try SafeTensorsSet(paths: files)
        tokenizerModelPath = fm.fileExists(atPath: folder + "/tokenizer.model") ? folder + "/tokenizer.model" : nil
        chatTemplate = (try? readJSONObject(folder + "/tokenizer_config.json"))?["chat_template"] as? String
    }

    public func tensor(_ role: TensorRole) throws -> CheckpointTensor {
        let c = config
        let shape = role.expectedShape(c)
        func named(_ n: String) throws -> CheckpointTensor { try set.tensor(n, role: role, expected: shape, folder: path) }
        let p = "model.layers."
        switch role {
        case .tokenEmbedding: return try named("model.embed_tokens.weight")
        case .output:
            if !set.has("lm_head.weight") && tiedEmbeddings { return try named("model.embed_tokens.weight") }
            return try named("lm_head.weight")
        case .outputNorm: return try named("model.norm.weight")
        case .attnNorm(let l): return try named("\(p)\(l).input_layernorm.weight")
        case .ffnNorm(let l): return try named("\(p)\(l).post_attention_layernorm.weight")
        case .attnQ(let l): return try named("\(p)\(l).self_attn.q_proj.weight")
        case .attnK(let l): return try named("\(p)\(l).self_attn.k_proj.weight")
        case .attnV(let l): return try named("\(p)\(l).self_attn.v_proj.weight")
        case .attnOutput(let l): return try named("\(p)\(l).self_attn.o_proj.weight")
        case .router(let l):
            let classic = "\(p)\(l).block_sparse_moe.gate.weight"
            return try named(set.has(classic) ? classic : "\(p)\(l).mlp.gate.weight")
        case .expertGate(let l, let e), .expertUp(let l, let e), .expertDown(let l, let e):
            let w: String
            switch role { case .expertGate: w = "w1"; case .expertUp: w = "w3"; default: w = "w2" }
            let classic = "\(p)\(l).block_sparse_moe.experts.\(e).\(w).weight"
            if set.has(classic) { return try named(classic) }
            let fusedGateUp = "\(p)\(l).mlp.experts.gate_up_proj", fusedDown = "\(p)\(l).mlp.experts.down_proj"
            // No fused tensors at all: the checkpoint uses classic names, so name the missing one.
            if !set.has(fusedGateUp) && !set.has(fusedDown) { return try named(classic) }
            if case .expertDown = role {
                return try set.slice(fusedDown, role: role, index0: e, rows: 0..<c.nEmbd,
                                     expected3D: [c.nExperts, c.nEmbd, c.nFF], folder: path)
            }
            if set.has(fusedGateUp) {
                // gate_up_proj holds, for each expert, the gate rows then the up rows.
                let rows = w == "w1" ? 0..<c.nFF : c.nFF..<(2 * c.nFF)
                return try set.slice(fusedGateUp, role: role, index0: e, rows: rows,
                                     expected3D: [c.nExperts, 2 * c.nFF, c.nEmbd], folder: path)
            }
            return try named(classic)
        }
    }
}
