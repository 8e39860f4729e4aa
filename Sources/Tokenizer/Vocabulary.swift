/// A SentencePiece BPE vocabulary: one piece, score and type per token id, plus the
/// special ids and the two flags that shape encoding.
///
/// Build it either from a `tokenizer.model` file (`fromSentencePieceModel(_:)`) or directly
/// from arrays, e.g. GGUF's `tokenizer.ggml.tokens`, `tokenizer.ggml.scores` and
/// `tokenizer.ggml.token_type` metadata. Consistency is checked by `Tokenizer.init`.
public struct Vocabulary: Sendable, Equatable {
    /// Piece text per id. Spaces are spelled "▁" (U+2581); byte pieces are "<0xXX>".
    public var pieces: [String]
    /// Merge score per id: of the candidate merges, the highest-scoring piece wins.
    public var scores: [Float]
    /// Token type per id.
    public var types: [TokenType]
    /// Beginning-of-sequence id (`<s>`), or -1 if the vocabulary has none.
    public var bosID: Int32
    /// End-of-sequence id (`</s>`), or -1 if the vocabulary has none.
    public var eosID: Int32
    /// Unknown-token id (`<unk>`).
    public var unkID: Int32
    /// Whether callers should put `bosID` in front of an encoded prompt (`Tokenizer.encode`
    /// itself never adds it).
    public var addBOS: Bool
    /// Whether encoding prepends "▁" to non-empty text (SentencePiece `add_dummy_prefix`),
    /// and decoding removes that one leading space again.
    public var addDummyPrefix: Bool

    /// A vocabulary from parallel arrays (all three must have the same length).
    ///
    /// The defaults are those of the Mistral / Mixtral / Llama SentencePiece models.
    public init(
        pieces: [String],
        scores: [Float],
        types: [TokenType],
        bosID: Int32 = 1,
        eosID: Int32 = 2,
        unkID: Int32 = 0,
        addBOS: Bool = true,
        addDummyPrefix: Bool = true
    ) {
        self.pieces = pieces
        self.scores = scores
        self.types = types
        self.bosID = bosID
        self.eosID = eosID
        self.unkID = unkID
        self.addBOS = addBOS
        self.addDummyPrefix = addDummyPrefix
    }

    /// Number of entries.
    public var count: Int { pieces.count }

    /// Reads a serialized SentencePiece `ModelProto` (the bytes of `tokenizer.model`).
    ///
    /// `addBOS` is set to true (SentencePiece models do not record it; Mistral prompts start
    /// with `<s>`). The unknown id is the piece of type UNKNOWN.
    ///
    /// - Throws: `TokenizerError.malformedModel` for unreadable bytes or an inconsistent
    ///   vocabulary; `TokenizerError.unsupportedModel` for models this BPE tokenizer cannot
    ///   reproduce exactly (Unigram/word/char models, a precompiled normalization table,
    ///   `remove_extra_whitespaces`, whitespace as suffix, unescaped whitespace).
    public static func fromSentencePieceModel(_ bytes: [UInt8]) throws -> Vocabulary {
        let proto = try SentencePieceModelProto(bytes: bytes)
        guard proto.modelType == SentencePieceModelProto.modelTypeBPE else {
            throw TokenizerError.unsupportedModel(
                "model_type is \(proto.modelType); only BPE (\(SentencePieceModelProto.modelTypeBPE)) is supported")
        }
        guard proto.precompiledCharsmapCount == 0 else {
            throw TokenizerError.unsupportedModel(
                "normalizer '\(proto.normalizerName)' has a precompiled charsmap; only the identity normalizer is supported")
        }
        guard !proto.removeExtraWhitespaces else {
            throw TokenizerError.unsupportedModel("remove_extra_whitespaces is not supported")
        }
        guard proto.escapeWhitespaces, !proto.treatWhitespaceAsSuffix else {
            throw TokenizerError.unsupportedModel(
                "only escape_whitespaces = true with whitespace as prefix is supported")
        }
        guard !proto.pieces.isEmpty else {
            throw TokenizerError.malformedModel("the model has no pieces")
        }

        var types: [TokenType] = []
        types.reserveCapacity(proto.types.count)
        for (id, raw) in proto.types.enumerated() {
            guard let type = TokenType(rawValue: raw) else {
                throw TokenizerError.malformedModel("piece #\(id) has unknown type \(raw)")
            }
            if type == .byte && !proto.byteFallback {
                throw TokenizerError.malformedModel(
                    "piece #\(id) is a byte piece but byte_fallback is false")
            }
            types.append(type)
        }
        let unknownIDs = types.indices.filter { types[$0] == .unknown }
        guard let unk = unknownIDs.first else {
            throw TokenizerError.malformedModel("the model has no piece of type UNKNOWN")
        }
        guard unknownIDs.count == 1 else {
            throw TokenizerError.malformedModel("the model has \(unknownIDs.count) pieces of type UNKNOWN")
        }
        for (name, id) in [("bos_id", proto.bosID), ("eos_id", proto.eosID)] where id != -1 {
            guard id >= 0 && Int(id) < proto.pieces.count else {
                throw TokenizerError.malformedModel("\(name) \(id) is out of range 0..<\(proto.pieces.count)")
            }
        }
        return Vocabulary(
            pieces: proto.pieces,
            scores: proto.scores,
            types: types,
            bosID: proto.bosID,
            eosID: proto.eosID,
            unkID: Int32(unk),
            addBOS: true,
            addDummyPrefix: proto.addDummyPrefix)
    }
}
