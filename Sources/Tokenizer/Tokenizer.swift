/// A SentencePiece BPE tokenizer (the Mistral / Mixtral / Llama kind).
///
/// Encoding follows SentencePiece with an identity normalizer:
/// 1. every " " becomes "▁" (U+2581), and when `addDummyPrefix` is set a "▁" is put in
///    front of non-empty text (runs of spaces are kept, nothing is trimmed);
/// 2. the text is split into Unicode scalars (user-defined pieces are matched first,
///    longest match, and never merged further);
/// 3. repeatedly, of all adjacent symbol pairs whose concatenation is a NORMAL,
///    USER_DEFINED or UNUSED piece, the one with the highest score is merged (ties: the
///    leftmost pair); UNUSED pieces are split back into their parts at the end;
/// 4. a symbol that is not a piece becomes its UTF-8 bytes as `<0xXX>` byte pieces when the
///    vocabulary has byte pieces, otherwise `unkID` (consecutive unknowns collapse into one).
///
/// Control pieces such as `<s>` are never produced from text: "<s>" encodes as "▁<", "s", ">".
/// Merging uses a heap and a linked list, so encoding is O(n log n) in the text length.
///
/// Instances are immutable and safe to share between threads.
public final class Tokenizer: @unchecked Sendable {
    /// The vocabulary this tokenizer was built from.
    public let vocabulary: Vocabulary

    /// Number of token ids (32000 for Mistral / Mixtral).
    public var vocabularySize: Int { vocabulary.pieces.count }

    /// NORMAL, USER_DEFINED and UNUSED pieces: what merges may produce.
    private let mergeable: PieceTable
    /// CONTROL, UNKNOWN and BYTE pieces: looked up first when mapping a piece to an id.
    private let reserved: PieceTable
    /// USER_DEFINED pieces, matched atomically in the input (empty for Mistral).
    private let userDefined: PieceTable
    /// Token type per id.
    private let types: [TokenType]
    /// Id of the byte piece for each byte value (the unknown id when one is missing).
    private let byteIDs: [Int32]
    /// Whether unknown characters fall back to byte pieces.
    private let byteFallback: Bool

    /// Decoded UTF-8 per id: "▁" → " " for text pieces, "" for control and byte pieces,
    /// " ⁇ " for the unknown piece.
    let surfaces: [[UInt8]]
    /// The byte a BYTE piece stands for, -1 for other pieces.
    let byteValues: [Int16]
    /// Whether a text piece starts with "▁" that decoding may drop as the dummy prefix
    /// (always false when `addDummyPrefix` is off).
    let startsWithSpaceSymbol: [Bool]

    private static let spaceSymbol: [UInt8] = Array("\u{2581}".utf8)
    private static let unknownSurface: [UInt8] = Array(" \u{2047} ".utf8)

    /// Builds the lookup tables for `vocabulary`.
    ///
    /// - Throws: `TokenizerError.invalidVocabulary` if the arrays differ in length, the
    ///   vocabulary is empty or has more than `Int32.max` entries, a piece is empty,
    ///   `unkID` is out of range, `bosID`/`eosID` are neither -1 nor in range, or a BYTE piece
    ///   is not spelled `<0xXX>`. Duplicate pieces are allowed; the lowest id wins.
    ///   The entry at `unkID` is treated as type `.unknown` whatever `types` says.
    public init(vocabulary: Vocabulary) throws {
        let count = vocabulary.pieces.count
        guard count > 0 else { throw TokenizerError.invalidVocabulary("the vocabulary is empty") }
        guard count < Int(Int32.max) else {
            throw TokenizerError.invalidVocabulary("\(count) entries do not fit 32-bit ids")
        }
        guard vocabulary.scores.count == count, vocabulary.types.count == count else {
            throw TokenizerError.invalidVocabulary(
                "\(count) pieces but \(vocabulary.scores.count) scores and \(vocabulary.types.count) types")
        }
        guard vocabulary.unkID >= 0, Int(vocabulary.unkID) < count else {
            throw TokenizerError.invalidVocabulary("unkID \(vocabulary.unkID) is out of range 0..<\(count)")
        }
        for (name, id) in [("bosID", vocabulary.bosID), ("eosID", vocabulary.eosID)] where id != -1 {
            guard id >= 0, Int(id) < count else {
                throw TokenizerError.invalidVocabulary("\(name) \(id) is out of range 0..<\(count)")
            }
        }

        var mergeable = PieceTable(expectedCount: count)
        var reserved = PieceTable(expectedCount: 512)
        var userDefined = PieceTable()
        var types = vocabulary.types
        types[Int(vocabulary.unkID)] = .unknown
        var byteIDs = [Int32](repeating: -1, count: 256)
        var surfaces: [[UInt8]] = []
        var byteValues: [Int16] = []
        var startsWithSpace: [Bool] = []
        surfaces.reserveCapacity(count)
        byteValues.reserveCapacity(count)
        startsWithSpace.reserveCapacity(count)

        for id in 0..<count {
            let bytes = Array(vocabulary.pieces[id].utf8)
            guard !bytes.isEmpty else {
                throw TokenizerError.invalidVocabulary("piece #\(id) is empty")
            }
            var surface: [UInt8] = []
            var byteValue: Int16 = -1
            var strips = false
            switch types[id] {
            case .normal, .userDefined, .unused:
                mergeable.insertIfAbsent(bytes, value: Int32(id))
                if types[id] == .userDefined { userDefined.insertIfAbsent(bytes, value: Int32(id)) }
                surface = Self.replacingSpaceSymbol(bytes)
                strips = vocabulary.addDummyPrefix && bytes.starts(with: Self.spaceSymbol)
            case .control:
                reserved.insertIfAbsent(bytes, value: Int32(id))
            case .unknown:
                reserved.insertIfAbsent(bytes, value: Int32(id))
                surface = Self.unknownSurface
            case .byte:
                reserved.insertIfAbsent(bytes, value: Int32(id))
                guard let value = Self.byteValue(ofPiece: bytes) else {
                    throw TokenizerError.invalidVocabulary(
                        "byte piece #\(id) '\(vocabulary.pieces[id])' is not of the form <0xXX>")
                }
                byteValue = Int16(value)
                if byteIDs[Int(value)] < 0 { byteIDs[Int(value)] = Int32(id) }
            }
            surfaces.append(surface)
            byteValues.append(byteValue)
            startsWithSpace.append(strips)
        }

        let byteFallback = byteIDs.contains { $0 >= 0 }
        for value in 0..<256 where byteIDs[value] < 0 { byteIDs[value] = vocabulary.unkID }

        self.vocabulary = vocabulary
        self.mergeable = mergeable
        self.reserved = reserved
        self.userDefined = userDefined
        self.types = types
        self.byteIDs = byteIDs
        self.byteFallback = byteFallback
        self.surfaces = surfaces
        self.byteValues = byteValues
        self.startsWithSpaceSymbol = startsWithSpace
    }

    /// Convenience: reads a `tokenizer.model` (serialized SentencePiece `ModelProto`).
    public convenience init(sentencePieceModel bytes: [UInt8]) throws {
        try self.init(vocabulary: Vocabulary.fromSentencePieceModel(bytes))
    }

    private static func replacingSpaceSymbol(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if i + 2 < bytes.count, bytes[i] == 0xE2, bytes[i + 1] == 0x96, bytes[i + 2] == 0x81 {
                out.append(0x20)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    /// The byte of a piece spelled exactly `<0xXX>` (hex digits, either case), or nil.
    private static func byteValue(ofPiece bytes: [UInt8]) -> UInt8? {
        guard bytes.count == 6, bytes[0] == UInt8(ascii: "<"), bytes[1] == UInt8(ascii: "0"),
              bytes[2] == UInt8(ascii: "x"), bytes[5] == UInt8(ascii: ">") else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        guard let high = hex(bytes[3]), let low = hex(bytes[4]) else { return nil }
        return high << 4 | low
    }

    // MARK: - Lookup

    /// The piece text of `id` ("▁" for spaces, "<0xXX>" for bytes); "" when out of range.
    public func piece(_ id: Int32) -> String {
        guard id >= 0, Int(id) < vocabularySize else { return "" }
        return vocabulary.pieces[Int(id)]
    }

    /// The id of the piece spelled exactly `piece` (byte for byte, no Unicode normalization),
    /// or nil when the vocabulary has no such piece. Control, unknown and byte pieces win
    /// over text pieces of the same spelling, as in SentencePiece.
    public func id(ofPiece piece: String) -> Int32? {
        let bytes = Array(piece.utf8)
        return reserved.lookup(bytes) ?? mergeable.lookup(bytes)
    }

    /// The type of `id`, or nil when out of range.
    public func tokenType(_ id: Int32) -> TokenType? {
        guard id >= 0, Int(id) < vocabularySize else { return nil }
        return types[Int(id)]
    }

    // MARK: - Encoding

    /// Encodes `text` into token ids, without BOS or EOS (see `encode(_:addBOS:)`).
    public func encode(_ text: String) -> [Int32] {
        if text.isEmpty { return [] }
        var normalized: [UInt8] = []
        normalized.reserveCapacity(text.utf8.count + text.utf8.count / 2 + 3)
        if vocabulary.addDummyPrefix { normalized.append(contentsOf: Self.spaceSymbol) }
        for byte in text.utf8 {
            if byte == 0x20 {
                normalized.append(contentsOf: Self.spaceSymbol)
            } else {
                normalized.append(byte)
            }
        }
        return normalized.withUnsafeBufferPointer { encodeNormalized($0) }
    }

    /// Encodes `text`, putting `vocabulary.bosID` first when `addBOS` is true and the
    /// vocabulary has a BOS piece.
    public func encode(_ text: String, addBOS: Bool) -> [Int32] {
        let ids = encode(text)
        guard addBOS, vocabulary.bosID >= 0 else { return ids }
        return [vocabulary.bosID] + ids
    }

    /// BPE over normalized UTF-8 bytes (non-empty).
    private func encodeNormalized(_ text: UnsafeBufferPointer<UInt8>) -> [Int32] {
        let base = text.baseAddress!
        let n = text.count

        // Symbols: byte ranges of `text` in a doubly linked list. A merged-away symbol
        // has length 0.
        var start: [Int32] = []
        var length: [Int32] = []
        var frozen: [Bool] = []
        start.reserveCapacity(n)
        length.reserveCapacity(n)
        frozen.reserveCapacity(n)
        let matchUserDefined = userDefined.count > 0
        var position = 0
        while position < n {
            var symbolLength = 0
            var isFrozen = false
            if matchUserDefined {
                var candidate = min(userDefined.maxKeyLength, n - position)
                while candidate > 0 {
                    if userDefined.lookup(base + position, candidate) != nil {
                        symbolLength = candidate
                        isFrozen = true
                        break
                    }
                    candidate -= 1
                }
            }
            if symbolLength == 0 {
                symbolLength = min(UTF8Scanner.sequenceLength(lead: base[position]) ?? 1, n - position)
            }
            start.append(Int32(position))
            length.append(Int32(symbolLength))
            frozen.append(isFrozen)
            position += symbolLength
        }
        let symbolCount = start.count
        var prev = [Int32](repeating: -1, count: symbolCount)
        var next = [Int32](repeating: -1, count: symbolCount)
        for i in 0..<symbolCount {
            prev[i] = Int32(i - 1)
            next[i] = i + 1 < symbolCount ? Int32(i + 1) : -1
        }

        // For UNUSED pieces produced by a merge: the two parts they came from
        // (as byte ranges), keyed by piece id; the last registration wins, as in SentencePiece.
        var unusedParts: [Int32: (Range<Int>, Range<Int>)] = [:]

        var queue = MergeQueue(reservingCapacity: symbolCount)
        func considerPair(_ left: Int32, _ right: Int32) {
            if left < 0 || right < 0 { return }
            let l = Int(left), r = Int(right)
            if frozen[l] || frozen[r] { return }
            let size = Int(length[l]) + Int(length[r])
            guard let id = mergeable.lookup(base + Int(start[l]), size) else { return }
            queue.push(.init(score: vocabulary.scores[Int(id)], left: left, right: right, size: Int32(size)))
            if types[Int(id)] == .unused {
                let ls = Int(start[l]), rs = Int(start[r])
                unusedParts[id] = (ls..<(ls + Int(length[l])), rs..<(rs + Int(length[r])))
            }
        }

        for i in 1..<max(symbolCount, 1) {
            considerPair(Int32(i - 1), Int32(i))
        }

        while let top = queue.pop() {
            let l = Int(top.left), r = Int(top.right)
            // Skip candidates made stale by an earlier merge.
            if length[l] == 0 || length[r] == 0 || length[l] + length[r] != top.size { continue }
            length[l] += length[r]
            length[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[Int(next[r])] = top.left }
            considerPair(prev[l], top.left)
            considerPair(top.left, next[l])
        }

        // Map the final symbols to ids.
        var ids: [Int32] = []
        ids.reserveCapacity(symbolCount)
        var previousWasUnknown = false

        func emit(_ range: Range<Int>) {
            let id = pieceID(base + range.lowerBound, range.count)
            if types[Int(id)] == .unused, let parts = unusedParts[id] {
                emit(parts.0)
                emit(parts.1)
                return
            }
            let isUnknown = types[Int(id)] == .unknown
            if isUnknown && byteFallback {
                for offset in range {
                    ids.append(byteIDs[Int(base[offset])])
                }
            } else if !(isUnknown && previousWasUnknown) {
                ids.append(id)
            }
            previousWasUnknown = isUnknown
        }

        var index: Int32 = 0
        while index >= 0 {
            let i = Int(index)
            emit(Int(start[i])..<(Int(start[i]) + Int(length[i])))
            index = next[i]
        }
        return ids
    }

    /// SentencePiece's `PieceToId`: reserved pieces first, then text pieces, else unknown.
    @inline(__always)
    private func pieceID(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
        reserved.lookup(bytes, count) ?? mergeable.lookup(bytes, count) ?? vocabulary.unkID
    }

    // MARK: - Decoding

    /// Decodes ids into text, as SentencePiece does: pieces are concatenated with "▁" read
    /// as " ", byte pieces are joined and read as UTF-8 (each invalid byte → U+FFFD), control
    /// pieces such as `<s>`/`</s>` vanish, `<unk>` reads " ⁇ ", and the leading space of the
    /// first text piece (the dummy prefix) is dropped. Ids outside the vocabulary are ignored.
    public func decode(_ ids: [Int32]) -> String {
        var decoder = PieceDecoder(isFirst: true)
        var output: [UInt8] = []
        output.reserveCapacity(ids.count * 4)
        for id in ids {
            decoder.append(id, tokenizer: self, into: &output)
        }
        decoder.finish(into: &output)
        return String(decoding: output, as: UTF8.self)
    }
}
