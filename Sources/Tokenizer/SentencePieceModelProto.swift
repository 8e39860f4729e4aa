/// The parts of a SentencePiece `ModelProto` (the `tokenizer.model` file) that matter for
/// BPE tokenization, decoded by a small protobuf wire-format reader of our own.
///
/// Fields read (numbers as in `sentencepiece_model.proto`):
/// - `ModelProto.pieces` (1, repeated `SentencePiece`: `piece` 1, `score` 2, `type` 3)
/// - `ModelProto.trainer_spec` (2): `model_type` 3, `treat_whitespace_as_suffix` 24,
///   `byte_fallback` 35, `unk_id` 40, `bos_id` 41, `eos_id` 42, `pad_id` 43, `unk_surface` 44
/// - `ModelProto.normalizer_spec` (3): `name` 1, `precompiled_charsmap` 2,
///   `add_dummy_prefix` 3, `remove_extra_whitespaces` 4, `escape_whitespaces` 5
///
/// Absent fields take the proto's declared defaults. All other fields, of any wire type,
/// are skipped. Malformed input throws `TokenizerError.malformedModel`; it never traps.
public struct SentencePieceModelProto: Sendable, Equatable {
    /// `TrainerSpec.ModelType.UNIGRAM`.
    public static let modelTypeUnigram: Int32 = 1
    /// `TrainerSpec.ModelType.BPE`.
    public static let modelTypeBPE: Int32 = 2

    /// Piece text of each vocabulary entry, in id order.
    public var pieces: [String] = []
    /// Score of each vocabulary entry (BPE: higher merges first).
    public var scores: [Float] = []
    /// Raw `SentencePiece.Type` of each entry (1 NORMAL ... 6 BYTE; default NORMAL).
    public var types: [Int32] = []

    /// `trainer_spec.model_type` (1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR; default UNIGRAM).
    public var modelType: Int32 = SentencePieceModelProto.modelTypeUnigram
    /// `trainer_spec.byte_fallback` (default false).
    public var byteFallback: Bool = false
    /// `trainer_spec.treat_whitespace_as_suffix` (default false).
    public var treatWhitespaceAsSuffix: Bool = false
    /// `trainer_spec.unk_id` (default 0).
    public var unkID: Int32 = 0
    /// `trainer_spec.bos_id` (default 1; -1 means none).
    public var bosID: Int32 = 1
    /// `trainer_spec.eos_id` (default 2; -1 means none).
    public var eosID: Int32 = 2
    /// `trainer_spec.pad_id` (default -1, none).
    public var padID: Int32 = -1
    /// `trainer_spec.unk_surface`: what `<unk>` decodes to (default " \u{2047} ").
    public var unkSurface: String = " \u{2047} "

    /// `normalizer_spec.name` (e.g. "identity", "nmt_nfkc"; empty when absent).
    public var normalizerName: String = ""
    /// Byte count of `normalizer_spec.precompiled_charsmap` (0: no normalization table).
    public var precompiledCharsmapCount: Int = 0
    /// `normalizer_spec.add_dummy_prefix` (default true).
    public var addDummyPrefix: Bool = true
    /// `normalizer_spec.remove_extra_whitespaces` (default true).
    public var removeExtraWhitespaces: Bool = true
    /// `normalizer_spec.escape_whitespaces` (default true).
    public var escapeWhitespaces: Bool = true

    /// Parses a serialized `ModelProto`.
    ///
    /// - Throws: `TokenizerError.malformedModel` for any wire-format error
    ///   (truncated varint, length past the end, bad wire type, invalid UTF-8 in a piece).
    public init(bytes: [UInt8]) throws {
        var reader = ProtobufReader(bytes: bytes, range: 0..<bytes.count, context: "ModelProto")
        while !reader.isAtEnd {
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.expect(wireType, .lengthDelimited, field: "pieces")
                let range = try reader.readLengthDelimited()
                try readPiece(bytes, range, index: pieces.count)
            case 2:
                try reader.expect(wireType, .lengthDelimited, field: "trainer_spec")
                try readTrainerSpec(bytes, try reader.readLengthDelimited())
            case 3:
                try reader.expect(wireType, .lengthDelimited, field: "normalizer_spec")
                try readNormalizerSpec(bytes, try reader.readLengthDelimited())
            default:
                try reader.skipField(number: field, wireType: wireType)
            }
        }
    }

    private mutating func readPiece(_ bytes: [UInt8], _ range: Range<Int>, index: Int) throws {
        var reader = ProtobufReader(bytes: bytes, range: range, context: "SentencePiece #\(index)")
        var piece = ""
        var score: Float = 0
        var type: Int32 = 1
        while !reader.isAtEnd {
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.expect(wireType, .lengthDelimited, field: "piece")
                piece = try reader.readString(field: "piece")
            case 2:
                try reader.expect(wireType, .fixed32, field: "score")
                score = try reader.readFloat()
            case 3:
                try reader.expect(wireType, .varint, field: "type")
                type = try reader.readInt32()
            default:
                try reader.skipField(number: field, wireType: wireType)
            }
        }
        pieces.append(piece)
        scores.append(score)
        types.append(type)
    }

    private mutating func readTrainerSpec(_ bytes: [UInt8], _ range: Range<Int>) throws {
        var reader = ProtobufReader(bytes: bytes, range: range, context: "TrainerSpec")
        while !reader.isAtEnd {
            let (field, wireType) = try reader.readTag()
            switch field {
            case 3:
                try reader.expect(wireType, .varint, field: "model_type")
                modelType = try reader.readInt32()
            case 24:
                try reader.expect(wireType, .varint, field: "treat_whitespace_as_suffix")
                treatWhitespaceAsSuffix = try reader.readBool()
            case 35:
                try reader.expect(wireType, .varint, field: "byte_fallback")
                byteFallback = try reader.readBool()
            case 40:
                try reader.expect(wireType, .varint, field: "unk_id")
                unkID = try reader.readInt32()
            case 41:
                try reader.expect(wireType, .varint, field: "bos_id")
                bosID = try reader.readInt32()
            case 42:
                try reader.expect(wireType, .varint, field: "eos_id")
                eosID = try reader.readInt32()
            case 43:
                try reader.expect(wireType, .varint, field: "pad_id")
                padID = try reader.readInt32()
            case 44:
                try reader.expect(wireType, .lengthDelimited, field: "unk_surface")
                unkSurface = try reader.readString(field: "unk_surface")
            default:
                try reader.skipField(number: field, wireType: wireType)
            }
        }
    }

    private mutating func readNormalizerSpec(_ bytes: [UInt8], _ range: Range<Int>) throws {
        var reader = ProtobufReader(bytes: bytes, range: range, context: "NormalizerSpec")
        while !reader.isAtEnd {
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.expect(wireType, .lengthDelimited, field: "name")
                normalizerName = try reader.readString(field: "name")
            case 2:
                try reader.expect(wireType, .lengthDelimited, field: "precompiled_charsmap")
                precompiledCharsmapCount = try reader.readLengthDelimited().count
            case 3:
                try reader.expect(wireType, .varint, field: "add_dummy_prefix")
                addDummyPrefix = try reader.readBool()
            case 4:
                try reader.expect(wireType, .varint, field: "remove_extra_whitespaces")
                removeExtraWhitespaces = try reader.readBool()
            case 5:
                try reader.expect(wireType, .varint, field: "escape_whitespaces")
                escapeWhitespaces = try reader.readBool()
            default:
                try reader.skipField(number: field, wireType: wireType)
            }
        }
    }
}
