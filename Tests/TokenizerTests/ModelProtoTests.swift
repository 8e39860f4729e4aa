import XCTest
@testable import Tokenizer

final class ModelProtoTests: XCTestCase {
    func testMistralModelFields() throws {
        let proto = try SentencePieceModelProto(bytes: TokenizerFixtures.modelBytes())
        XCTAssertEqual(proto.pieces.count, 32000)
        XCTAssertEqual(proto.scores.count, 32000)
        XCTAssertEqual(proto.types.count, 32000)
        XCTAssertEqual(proto.modelType, SentencePieceModelProto.modelTypeBPE)
        XCTAssertTrue(proto.byteFallback)
        XCTAssertEqual(proto.unkID, 0)
        XCTAssertEqual(proto.bosID, 1)
        XCTAssertEqual(proto.eosID, 2)
        XCTAssertEqual(proto.padID, -1)
        XCTAssertEqual(proto.normalizerName, "identity")
        XCTAssertEqual(proto.precompiledCharsmapCount, 0)
        XCTAssertTrue(proto.addDummyPrefix)
        XCTAssertFalse(proto.removeExtraWhitespaces)
        XCTAssertEqual(proto.pieces[0], "<unk>")
        XCTAssertEqual(proto.pieces[3], "<0x00>")
        XCTAssertEqual(proto.types[3], 6)
    }

    func testTruncatedFileThrows() throws {
        let bytes = try TokenizerFixtures.modelBytes()
        XCTAssertThrowsError(try SentencePieceModelProto(bytes: Array(bytes.prefix(1000)))) { error in
            guard case TokenizerError.malformedModel(let message) = error else {
                return XCTFail("expected malformedModel, got \(error)")
            }
            XCTAssertFalse(message.isEmpty)
        }
        // Any proper prefix is unusable: either malformed, or missing the trainer and
        // normalizer specs that come last in the file.
        var generator = SplitMix64(seed: 1)
        var lengths = [0, 1, 2, 3, 10, 999, bytes.count - 1, bytes.count - 2, bytes.count - 10]
        lengths += (0..<40).map { _ in Int(generator.next() % UInt64(bytes.count)) }
        for length in lengths {
            XCTAssertThrowsError(try Vocabulary.fromSentencePieceModel(Array(bytes.prefix(length))),
                                 "prefix of \(length) bytes was accepted")
        }
    }

    func testRandomGarbageNeverCrashes() {
        var generator = SplitMix64(seed: 42)
        var parsed = 0
        for _ in 0..<3000 {
            let count = Int(generator.next() % 200)
            let garbage = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if let vocabulary = try? Vocabulary.fromSentencePieceModel(garbage) {
                _ = try? Tokenizer(vocabulary: vocabulary).encode("garbage in")
            }
            if (try? SentencePieceModelProto(bytes: garbage)) != nil { parsed += 1 }
        }
        // Most random buffers are not valid protobuf.
        XCTAssertLessThan(parsed, 1500)
    }

    func testMutatedModelNeverCrashes() throws {
        let original = try TokenizerFixtures.modelBytes()
        var generator = SplitMix64(seed: 3)
        for _ in 0..<12 {
            var bytes = original
            for _ in 0..<8 {
                let index = Int(generator.next() % UInt64(bytes.count))
                bytes[index] = UInt8(truncatingIfNeeded: generator.next())
            }
            if let vocabulary = try? Vocabulary.fromSentencePieceModel(bytes),
               let tokenizer = try? Tokenizer(vocabulary: vocabulary) {
                let ids = tokenizer.encode("Mutated models <s> still 🦙 tokenize.")
                _ = tokenizer.decode(ids)
            }
        }
    }

    func testSkipsUnknownFieldsOfEveryWireType() throws {
        var piece = ProtoWriter()
        piece.stringField(1, "▁hi")
        piece.varintField(99, 12345)  // unknown varint inside a piece
        piece.floatField(2, -1.5)
        piece.int32Field(3, 4)

        var trainer = ProtoWriter()
        trainer.int32Field(3, 2)
        trainer.stringField(7, "text")  // input_format, not read
        trainer.varintField(35, 1)
        trainer.int32Field(40, 0)
        trainer.int32Field(41, -1)
        trainer.int32Field(43, 3)
        trainer.fixed64Field(500, 0xDEAD_BEEF)

        var normalizer = ProtoWriter()
        normalizer.stringField(1, "identity")
        normalizer.varintField(3, 0)
        normalizer.varintField(4, 0)

        var model = ProtoWriter()
        model.bytesField(1, ProtoWriter.piece("<unk>", score: 0, type: 2))
        model.fixed64Field(17, 1)
        model.bytesField(1, piece.bytes)
        model.bytesField(1, ProtoWriter.piece("x", score: 0.5, type: nil))
        model.floatField(18, 3)
        // A group (wire types 3/4) holding a nested group and a varint.
        model.tag(19, 3)
        model.varintField(1, 7)
        model.tag(20, 3)
        model.tag(20, 4)
        model.tag(19, 4)
        model.bytesField(2, trainer.bytes)
        model.bytesField(3, normalizer.bytes)
        model.bytesField(4, [0x0A, 0x00])  // self_test_data, skipped

        let proto = try SentencePieceModelProto(bytes: model.bytes)
        XCTAssertEqual(proto.pieces, ["<unk>", "▁hi", "x"])
        XCTAssertEqual(proto.scores, [0, -1.5, 0.5])
        XCTAssertEqual(proto.types, [2, 4, 1])
        XCTAssertEqual(proto.modelType, 2)
        XCTAssertTrue(proto.byteFallback)
        XCTAssertEqual(proto.bosID, -1)
        XCTAssertEqual(proto.eosID, 2)
        XCTAssertEqual(proto.padID, 3)
        XCTAssertFalse(proto.addDummyPrefix)
        XCTAssertFalse(proto.removeExtraWhitespaces)
        XCTAssertEqual(proto.normalizerName, "identity")

        let vocabulary = try Vocabulary.fromSentencePieceModel(model.bytes)
        XCTAssertEqual(vocabulary.types, [.unknown, .userDefined, .normal])
        XCTAssertEqual(vocabulary.bosID, -1)
        XCTAssertFalse(vocabulary.addDummyPrefix)
    }

    func testDefaultsWhenSpecsAreAbsent() throws {
        var model = ProtoWriter()
        model.bytesField(1, ProtoWriter.piece("<unk>", score: 0, type: 2))
        let proto = try SentencePieceModelProto(bytes: model.bytes)
        XCTAssertEqual(proto.modelType, SentencePieceModelProto.modelTypeUnigram)
        XCTAssertFalse(proto.byteFallback)
        XCTAssertEqual(proto.bosID, 1)
        XCTAssertTrue(proto.addDummyPrefix)
        XCTAssertTrue(proto.removeExtraWhitespaces)
        XCTAssertThrowsError(try Vocabulary.fromSentencePieceModel(model.bytes)) { error in
            guard case TokenizerError.unsupportedModel = error else {
                return XCTFail("expected unsupportedModel, got \(error)")
            }
        }
    }

    func testMalformedInputsThrowWithClearMessages() {
        let cases: [(String, [UInt8])] = [
            ("truncated varint", [0x08, 0x80]),
            ("truncated tag", [0x80]),
            ("varint too long", [0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01]),
            ("length past end", [0x0A, 0x05, 0x01]),
            ("huge length", [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            ("field number 0", [0x00, 0x01]),
            ("wire type 6", [0x0E]),
            ("wire type 7", [0x0F]),
            ("truncated fixed32", [0x15, 0x00, 0x00]),
            ("truncated fixed64", [0x09, 0x00]),
            ("unterminated group", [0x2B, 0x08, 0x01]),
            ("mismatched end group", [0x2B, 0x34]),
            ("stray end group", [0x2C]),
            ("pieces with wrong wire type", [0x08, 0x01]),
            ("piece with bad UTF-8", [0x0A, 0x03, 0x0A, 0x01, 0xFF]),
            ("truncated piece", [0x0A, 0x04, 0x0A, 0x05, 0x61, 0x62]),
            ("score with wrong wire type", [0x0A, 0x02, 0x10, 0x01]),
        ]
        for (name, bytes) in cases {
            XCTAssertThrowsError(try SentencePieceModelProto(bytes: bytes), name) { error in
                guard case TokenizerError.malformedModel(let message) = error else {
                    return XCTFail("\(name): expected malformedModel, got \(error)")
                }
                XCTAssertTrue(String(describing: error).contains(message), name)
            }
        }
        // Deeply nested groups are rejected, not recursed into without bound.
        let deep = [UInt8](repeating: 0x2B, count: 10_000)
        XCTAssertThrowsError(try SentencePieceModelProto(bytes: deep))
    }

    func testNegativeInt32IsTenByteVarint() throws {
        var trainer = ProtoWriter()
        trainer.int32Field(42, -1)
        var model = ProtoWriter()
        model.bytesField(2, trainer.bytes)
        XCTAssertEqual(trainer.bytes.count, 1 + 1 + 10)
        XCTAssertEqual(try SentencePieceModelProto(bytes: model.bytes).eosID, -1)
    }
}
