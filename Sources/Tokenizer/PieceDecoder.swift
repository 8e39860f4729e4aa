/// The id → text state machine shared by `Tokenizer.decode` and `StreamingDecoder`.
///
/// It reproduces SentencePiece's decoder:
/// - control pieces decode to "", the unknown piece to " ⁇ ";
/// - "▁" becomes " ";
/// - runs of byte pieces are gathered and decoded as UTF-8, each byte that does not start
///   a valid sequence becoming U+FFFD;
/// - while no text has been produced yet, the first piece that starts with "▁" loses that
///   "▁" (the dummy prefix); after it, or after any visible text, nothing is stripped.
///
/// Bytes of a UTF-8 sequence that may still be completed by the next byte piece are held
/// back, so each call emits only whole characters.
struct PieceDecoder {
    /// Whether a leading "▁" may still be stripped (SentencePiece's `is_bos_ws`).
    private var expectsDummySpace: Bool
    /// Whether the previous text piece had its leading "▁" stripped.
    private var strippedDummySpace = false
    /// Whether any non-empty text has been emitted.
    private var producedText = false
    /// Byte-piece bytes not yet emitted (a possibly incomplete UTF-8 sequence).
    private var pendingBytes: [UInt8] = []

    /// `isFirst`: whether the ids start a sequence (so a dummy-prefix space may be stripped).
    init(isFirst: Bool) {
        expectsDummySpace = isFirst
    }

    /// Appends the text of `id` that is complete so far to `output`.
    /// Ids outside the vocabulary are ignored.
    mutating func append(_ id: Int32, tokenizer: Tokenizer, into output: inout [UInt8]) {
        guard id >= 0, Int(id) < tokenizer.vocabularySize else { return }
        let index = Int(id)
        let byte = tokenizer.byteValues[index]
        if byte >= 0 {
            pendingBytes.append(UInt8(byte))
            drainPendingBytes(final: false, into: &output)
            return
        }
        drainPendingBytes(final: true, into: &output)
        if strippedDummySpace || producedText { expectsDummySpace = false }
        let surface = tokenizer.surfaces[index]
        if expectsDummySpace && tokenizer.startsWithSpaceSymbol[index] {
            output.append(contentsOf: surface.dropFirst())
            producedText = producedText || surface.count > 1
            strippedDummySpace = true
        } else {
            output.append(contentsOf: surface)
            producedText = producedText || !surface.isEmpty
            strippedDummySpace = false
        }
    }

    /// Emits any held-back bytes (as U+FFFD, since no further byte can complete them).
    mutating func finish(into output: inout [UInt8]) {
        drainPendingBytes(final: true, into: &output)
    }

    private mutating func drainPendingBytes(final: Bool, into output: inout [UInt8]) {
        if pendingBytes.isEmpty { return }
        var start = 0
        let end = pendingBytes.count
        loop: while start < end {
            switch UTF8Scanner.step(pendingBytes, from: start, to: end) {
            case .valid(let length):
                output.append(contentsOf: pendingBytes[start..<(start + length)])
                start += length
            case .invalid:
                output.append(contentsOf: UTF8Scanner.replacement)
                start += 1
            case .incomplete:
                if !final { break loop }
                output.append(contentsOf: UTF8Scanner.replacement)
                start += 1
            }
        }
        if start > 0 { producedText = true }
        pendingBytes.removeFirst(start)
    }
}
