import Checkpoint
import GGUF
import Kernels
import Tokenizer
import Foundation

/// Choices the user makes for a conversion.
public struct ConversionOptions: Sendable {
    /// The type of every matrix not covered by an override (norms stay F32, routers F32).
    public var type: TensorType = .q8_0
    /// `(glob pattern on the GGUF tensor name, type)`, first match wins, e.g. `("output.weight", .f16)`.
    public var overrides: [(pattern: String, type: TensorType)] = []
    public var threads: Int = WorkerPool.onlineCPUs
    /// Compute per-tensor RMSE / max abs error against the source.
    public var report = false
    public var alignment = 4096
    public init() {}
}

/// One output tensor and where its rows come from.
public struct PlannedTensor: Sendable {
    public var info: GGUFTensorInfo
    /// One source per expert for merged expert tensors, otherwise one.
    public var sources: [CheckpointTensor]
    /// For Hugging Face Q/K projections: the head count whose rows are permuted back to the
    /// interleaved RoPE order GGUF uses.
    public var permuteHeads: Int?
    public var headDim: Int
    /// Why the type differs from the one asked for, if it does.
    public var notice: String?

    /// Source row feeding output row `r` of one source matrix.
    @inlinable
    public func sourceRow(_ r: Int) -> Int {
        guard permuteHeads != nil else { return r }
        // GGUF row h·d + 2i + j comes from Hugging Face row h·d + j·d/2 + i.
        let h = r / headDim, k = r % headDim
        return h * headDim + (k & 1) * (headDim / 2) + (k >> 1)
    }
}

/// What will be written: every tensor with its type and place, and the file's metadata.
public struct ConversionPlan: Sendable {
    public let tensors: [PlannedTensor]
    public let layout: GGUFLayout
    public let notices: [String]
    /// Bytes read from the checkpoint.
    public var sourceBytes: Int { tensors.reduce(0) { $0 + $1.sources.reduce(0) { $0 + $1.byteCount } } }

    public init(checkpoint: any Checkpoint, options: ConversionOptions) throws {
        let c = checkpoint.config
        var planned: [PlannedTensor] = []
        var notices: [String] = []
        func add(_ roles: [TensorRole], shape: [Int], oneDim: Bool, router: Bool = false) throws {
            let sources = try roles.map { try checkpoint.tensor($0) }
            let name = roles[0].ggufName
            var type: TensorType = oneDim || router ? .f32 : options.type
            if !oneDim && !router, let o = options.overrides.first(where: { globMatch($0.pattern, name) }) { type = o.type }
            var notice: String?
            if type.rowBytes(shape[0]) == nil {
                notice = "\(name): row length \(shape[0]) is not a multiple of \(type.name)'s block of \(type.blockSize); stored as F16"
                notices.append(notice!)
                type = .f16
            }
            var permute: Int?
            if checkpoint.ropeLayout == .halves {
                if case .attnQ = roles[0] { permute = c.nHeads }
                if case .attnK = roles[0] { permute = c.nKVHeads }
            }
            planned.append(PlannedTensor(info: GGUFTensorInfo(name: name, shape: shape, type: type), sources: sources,
                                         permuteHeads: permute, headDim: c.headDim, notice: notice))
        }
        try add([.tokenEmbedding], shape: [c.nEmbd, c.nVocab], oneDim: false)
        for l in 0..<c.nLayers {
            try add([.attnNorm(l)], shape: [c.nEmbd], oneDim: true)
            try add([.attnQ(l)], shape: [c.nEmbd, c.nHeads * c.headDim], oneDim: false)
            try add([.attnK(l)], shape: [c.nEmbd, c.nKVHeads * c.headDim], oneDim: false)
            try add([.attnV(l)], shape: [c.nEmbd, c.nKVHeads * c.headDim], oneDim: false)
            try add([.attnOutput(l)], shape: [c.nHeads * c.headDim, c.nEmbd], oneDim: false)
            try add([.ffnNorm(l)], shape: [c.nEmbd], oneDim: true)
            try add([.router(l)], shape: [c.nEmbd, c.nExperts], oneDim: false, router: true)
            let experts = 0..<c.nExperts
            try add(experts.map { .expertGate(l, $0) }, shape: [c.nEmbd, c.nFF, c.nExperts], oneDim: false)
            try add(experts.map { .expertUp(l, $0) }, shape: [c.nEmbd, c.nFF, c.nExperts], oneDim: false)
            try add(experts.map { .expertDown(l, $0) }, shape: [c.nFF, c.nEmbd, c.nExperts], oneDim: false)
        }
        try add([.outputNorm], shape: [c.nEmbd], oneDim: true)
        try add([.output], shape: [c.nEmbd, c.nVocab], oneDim: false)

        let metadata = try ConversionPlan.metadata(checkpoint: checkpoint, type: options.type)
        tensors = planned
        self.notices = notices
        layout = try GGUFLayout(metadata: metadata, tensors: planned.map(\.info), alignment: options.alignment)
    }

    /// llama.cpp's keys for a Mixtral (`general.architecture = "llama"`) plus the tokenizer.
    static func metadata(checkpoint: any Checkpoint, type: TensorType) throws -> [(key: String, value: GGUFValue)] {
        let c = checkpoint.config
        let name = URL(fileURLWithPath: checkpoint.path).standardizedFileURL.lastPathComponent
        var md: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.name", .string(name)),
            ("general.quantization_version", .uint32(2)),
        ]
        // llama.cpp's LLAMA_FTYPE values; FP8 has none.
        let ftype: [TensorType: UInt32] = [.f32: 0, .f16: 1, .q8_0: 7, .bf16: 32]
        if let f = ftype[type] { md.append(("general.file_type", .uint32(f))) }
        md += [
            ("llama.vocab_size", .uint32(UInt32(c.nVocab))),
            ("llama.context_length", .uint32(UInt32(c.contextLength))),
            ("llama.embedding_length", .uint32(UInt32(c.nEmbd))),
            ("llama.block_count", .uint32(UInt32(c.nLayers))),
            ("llama.feed_forward_length", .uint32(UInt32(c.nFF))),
            ("llama.rope.dimension_count", .uint32(UInt32(c.ropeDim))),
            ("llama.attention.head_count", .uint32(UInt32(c.nHeads))),
            ("llama.attention.head_count_kv", .uint32(UInt32(c.nKVHeads))),
            ("llama.attention.key_length", .uint32(UInt32(c.headDim))),
            ("llama.attention.value_length", .uint32(UInt32(c.headDim))),
            ("llama.attention.layer_norm_rms_epsilon", .float32(c.normEps)),
            ("llama.rope.freq_base", .float32(c.ropeTheta)),
            ("llama.expert_count", .uint32(UInt32(c.nExperts))),
            ("llama.expert_used_count", .uint32(UInt32(c.nExpertsUsed))),
        ]
        guard let tokPath = checkpoint.tokenizerModelPath else {
            throw CheckpointError(checkpoint.path, "no tokenizer.model: a converted file must carry its tokenizer")
        }
        guard let bytes = FileManager.default.contents(atPath: tokPath) else { throw CheckpointError(tokPath, "cannot read") }
        let vocab: Vocabulary
        do { vocab = try Vocabulary.fromSentencePieceModel(Array(bytes)) } catch { throw CheckpointError(tokPath, "\(error)") }
        guard vocab.count == c.nVocab else {
            throw CheckpointError(tokPath, "tokenizer has \(vocab.count) pieces but the model's vocabulary is \(c.nVocab)")
        }
        md += [
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.tokens", .array(.string, vocab.pieces.map { .string($0) })),
            ("tokenizer.ggml.scores", .array(.float32, vocab.scores.map { .float32($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, vocab.types.map { .int32($0.rawValue) })),
            ("tokenizer.ggml.bos_token_id", .uint32(UInt32(vocab.bosID))),
            ("tokenizer.ggml.eos_token_id", .uint32(UInt32(vocab.eosID))),
            ("tokenizer.ggml.unknown_token_id", .uint32(UInt32(vocab.unkID))),
            ("tokenizer.ggml.add_bos_token", .bool(vocab.addBOS)),
            ("tokenizer.ggml.add_eos_token", .bool(false)),
            ("tokenizer.ggml.add_space_prefix", .bool(vocab.addDummyPrefix)),
        ]
        if let t = checkpoint.chatTemplate { md.append(("tokenizer.chat_template", .string(t))) }
        return md
    }
}

/// Shell-style glob: `*` any run, `?` one character.
func globMatch(_ pattern: String, _ s: String) -> Bool {
    let p = Array(pattern), t = Array(s)
    var pi = 0, ti = 0, star = -1, mark = 0
    while ti < t.count {
        if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) { pi += 1; ti += 1 }
        else if pi < p.count && p[pi] == "*" { star = pi; mark = ti; pi += 1 }
        else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
        else { return false }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}
