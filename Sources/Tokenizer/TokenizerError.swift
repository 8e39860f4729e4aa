/// Errors raised while reading a tokenizer model or building a tokenizer from a vocabulary.
///
/// Every case carries a human-readable explanation; `description` renders it.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The `tokenizer.model` bytes are not a well-formed SentencePiece `ModelProto`
    /// (truncated varint, length running past the end of the buffer, bad wire type, ...).
    case malformedModel(String)
    /// The model is well-formed but uses a feature this tokenizer does not implement
    /// (e.g. a Unigram model or a non-identity normalizer).
    case unsupportedModel(String)
    /// The vocabulary arrays are inconsistent (length mismatch, special id out of range, ...).
    case invalidVocabulary(String)

    /// A one-line explanation of the error.
    public var description: String {
        switch self {
        case .malformedModel(let message): return "malformed tokenizer model: \(message)"
        case .unsupportedModel(let message): return "unsupported tokenizer model: \(message)"
        case .invalidVocabulary(let message): return "invalid vocabulary: \(message)"
        }
    }
}
