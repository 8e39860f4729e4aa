/// Turns ids into text one at a time, for printing tokens as they are generated.
///
/// Concatenating every `append(_:)` result and the final `flush()` gives exactly
/// `tokenizer.decode(ids)` (for `isFirst: true`). Each result holds only whole characters:
/// a UTF-8 sequence spread over several byte pieces (`<0xF0>` `<0x9F>` ...) is held back
/// until it is complete, and an incomplete one is emitted as U+FFFD only once it can no
/// longer be completed (a non-byte piece follows, or `flush()`).
public struct StreamingDecoder: Sendable {
    /// The tokenizer whose vocabulary the ids refer to.
    public let tokenizer: Tokenizer
    private var state: PieceDecoder
    private var buffer: [UInt8] = []

    /// A decoder for ids from `tokenizer`.
    ///
    /// - Parameter isFirst: true when the ids start a text, so the dummy-prefix space of the
    ///   first piece is dropped as `decode` does; false to continue an earlier text with its
    ///   spaces intact.
    public init(tokenizer: Tokenizer, isFirst: Bool = true) {
        self.tokenizer = tokenizer
        self.state = PieceDecoder(isFirst: isFirst)
    }

    /// Adds one id and returns the text it completes (possibly "").
    public mutating func append(_ id: Int32) -> String {
        buffer.removeAll(keepingCapacity: true)
        state.append(id, tokenizer: tokenizer, into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Adds one id and appends the UTF-8 bytes it completes (always whole characters) to `bytes`.
    /// Allocates nothing beyond the growth of `bytes`.
    public mutating func append(_ id: Int32, into bytes: inout [UInt8]) {
        state.append(id, tokenizer: tokenizer, into: &bytes)
    }

    /// Appends whatever is still held back to `bytes` (see ``flush()``).
    public mutating func flush(into bytes: inout [UInt8]) {
        state.finish(into: &bytes)
    }

    /// Returns whatever is still held back (an unfinished byte sequence, as U+FFFD per byte).
    /// The decoder can be used further afterwards, as if continuing the same text.
    public mutating func flush() -> String {
        buffer.removeAll(keepingCapacity: true)
        state.finish(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
