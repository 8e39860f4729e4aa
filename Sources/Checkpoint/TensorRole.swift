/// What a weight tensor is for, independent of any file's naming. Each checkpoint layout maps its
/// names to roles in exactly one function; GGUF names come from ``ggufName``.
public enum TensorRole: Hashable, Sendable, CustomStringConvertible {
    case tokenEmbedding, outputNorm, output
    case attnNorm(Int), attnQ(Int), attnK(Int), attnV(Int), attnOutput(Int), ffnNorm(Int)
    /// The MoE router, `ffn_gate_inp` [nEmbd → nExperts].
    case router(Int)
    /// One expert's matrices (layer, expert): gate (w1), up (w3), down (w2).
    case expertGate(Int, Int), expertUp(Int, Int), expertDown(Int, Int)

    /// The tensor name llama.cpp uses; experts map to their merged tensor (`ffn_*_exps`).
    public var ggufName: String {
        switch self {
        case .tokenEmbedding: return "token_embd.weight"
        case .outputNorm: return "output_norm.weight"
        case .output: return "output.weight"
        case .attnNorm(let l): return "blk.\(l).attn_norm.weight"
        case .attnQ(let l): return "blk.\(l).attn_q.weight"
        case .attnK(let l): return "blk.\(l).attn_k.weight"
        case .attnV(let l): return "blk.\(l).attn_v.weight"
        case .attnOutput(let l): return "blk.\(l).attn_output.weight"
        case .ffnNorm(let l): return "blk.\(l).ffn_norm.weight"
        case .router(let l): return "blk.\(l).ffn_gate_inp.weight"
        case .expertGate(let l, _): return "blk.\(l).ffn_gate_exps.weight"
        case .expertUp(let l, _): return "blk.\(l).ffn_up_exps.weight"
        case .expertDown(let l, _): return "blk.\(l).ffn_down_exps.weight"
        }
    }

    public var description: String {
        switch self {
        case .expertGate(_, let e), .expertUp(_, let e), .expertDown(_, let e): return "\(ggufName)[expert \(e)]"
        default: return ggufName
        }
    }

    /// Expected [rows, cols] (PyTorch order) under `c`.
    public func expectedShape(_ c: ModelConfig) -> [Int] {
        switch self {
        case .tokenEmbedding, .output: return [c.nVocab, c.nEmbd]
        case .outputNorm, .attnNorm, .ffnNorm: return [c.nEmbd]
        case .attnQ: return [c.nHeads * c.headDim, c.nEmbd]
        case .attnK, .attnV: return [c.nKVHeads * c.headDim, c.nEmbd]
        case .attnOutput: return [c.nEmbd, c.nHeads * c.headDim]
        case .router: return [c.nExperts, c.nEmbd]
        case .expertGate, .expertUp: return [c.nFF, c.nEmbd]
        case .expertDown: return [c.nEmbd, c.nFF]
        }
    }
}
