/// The kind of a vocabulary entry.
///
/// The raw values are SentencePiece's `ModelProto.SentencePiece.Type` numbers, which are
/// also the values GGUF stores in `tokenizer.ggml.token_type`.
public enum TokenType: Int32, Sendable, CaseIterable {
    /// An ordinary piece that BPE merges can produce.
    case normal = 1
    /// The unknown-token placeholder (`<unk>`).
    case unknown = 2
    /// A control symbol such as `<s>` or `</s>`: never produced from text, decodes to "".
    case control = 3
    /// A user-defined symbol: matched atomically in the input text.
    case userDefined = 4
    /// A piece that exists in the vocabulary but is split back into its parts when produced.
    case unused = 5
    /// A byte-fallback piece `<0xXX>` standing for one raw byte.
    case byte = 6
}
