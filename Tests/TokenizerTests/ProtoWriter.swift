/// Builds protobuf wire-format bytes by hand, for reader tests.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ field: UInt64, _ wireType: UInt64) {
        varint(field << 3 | wireType)
    }

    mutating func varintField(_ field: UInt64, _ value: UInt64) {
        tag(field, 0)
        varint(value)
    }

    mutating func int32Field(_ field: UInt64, _ value: Int32) {
        varintField(field, UInt64(bitPattern: Int64(value)))
    }

    mutating func floatField(_ field: UInt64, _ value: Float) {
        tag(field, 5)
        let bits = value.bitPattern
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt32(i)))) }
    }

    mutating func fixed64Field(_ field: UInt64, _ value: UInt64) {
        tag(field, 1)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }

    mutating func bytesField(_ field: UInt64, _ payload: [UInt8]) {
        tag(field, 2)
        varint(UInt64(payload.count))
        bytes.append(contentsOf: payload)
    }

    mutating func stringField(_ field: UInt64, _ text: String) {
        bytesField(field, Array(text.utf8))
    }

    /// A serialized `ModelProto.SentencePiece`.
    static func piece(_ text: String, score: Float, type: Int32?) -> [UInt8] {
        var w = ProtoWriter()
        w.stringField(1, text)
        w.floatField(2, score)
        if let type { w.int32Field(3, type) }
        return w.bytes
    }
}
