/// A bounds-checked cursor over protobuf wire-format bytes.
///
/// It knows nothing about any message schema: it reads tags, varints, fixed-width
/// values and length-delimited payloads, and skips fields of any wire type.
/// Every read validates the remaining length first and throws
/// `TokenizerError.malformedModel` instead of trapping.
struct ProtobufReader {
    /// Protobuf wire types (the low three bits of a tag).
    enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case startGroup = 3
        case endGroup = 4
        case fixed32 = 5
    }

    /// Groups can nest; bound the nesting so hostile input cannot exhaust the stack.
    private static let maxGroupDepth = 64

    private let bytes: [UInt8]
    private(set) var position: Int
    private let end: Int
    /// Name of the message being read, used in error messages.
    let context: String

    /// A reader over `bytes[range]`.
    init(bytes: [UInt8], range: Range<Int>, context: String) {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
        self.context = context
    }

    /// True when every byte of the range has been consumed.
    var isAtEnd: Bool { position >= end }

    private func fail(_ message: String) -> TokenizerError {
        .malformedModel("\(context): \(message) (at byte offset \(position))")
    }

    /// Reads a base-128 varint of at most 10 bytes.
    mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var count = 0
        while true {
            guard position < end else { throw fail("truncated varint") }
            let byte = bytes[position]
            position += 1
            count += 1
            if count == 10 && byte > 1 {
                throw fail("varint overflows 64 bits")
            }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Reads a field tag, returning the field number and wire type.
    mutating func readTag() throws -> (field: UInt32, wireType: WireType) {
        let tagStart = position
        let raw = try readVarint()
        guard raw <= UInt64(UInt32.max) else {
            position = tagStart
            throw fail("tag \(raw) does not fit in 32 bits")
        }
        let field = UInt32(raw >> 3)
        guard field != 0 else {
            position = tagStart
            throw fail("field number 0 is invalid")
        }
        guard let wireType = WireType(rawValue: UInt8(raw & 7)) else {
            position = tagStart
            throw fail("field \(field) has invalid wire type \(raw & 7)")
        }
        return (field, wireType)
    }

    /// Reads a little-endian 32-bit value.
    mutating func readFixed32() throws -> UInt32 {
        guard end - position >= 4 else { throw fail("truncated fixed32 value") }
        var value: UInt32 = 0
        for i in 0..<4 {
            value |= UInt32(bytes[position + i]) << (8 * UInt32(i))
        }
        position += 4
        return value
    }

    /// Reads a little-endian 64-bit value.
    mutating func readFixed64() throws -> UInt64 {
        guard end - position >= 8 else { throw fail("truncated fixed64 value") }
        var value: UInt64 = 0
        for i in 0..<8 {
            value |= UInt64(bytes[position + i]) << (8 * UInt64(i))
        }
        position += 8
        return value
    }

    /// Reads the length prefix of a length-delimited field and returns the payload's range,
    /// advancing past the payload.
    mutating func readLengthDelimited() throws -> Range<Int> {
        let length = try readVarint()
        guard length <= UInt64(end - position) else {
            throw fail("length \(length) runs past the end of the buffer (\(end - position) bytes left)")
        }
        let start = position
        position += Int(length)
        return start..<position
    }

    /// Reads a length-delimited payload as UTF-8 text; invalid UTF-8 throws.
    mutating func readString(field: String) throws -> String {
        let range = try readLengthDelimited()
        guard UTF8Scanner.isValid(bytes, range) else {
            throw fail("\(field) is not valid UTF-8")
        }
        return String(decoding: bytes[range], as: UTF8.self)
    }

    /// Reads a varint field as a proto `int32` (two's complement, low 32 bits).
    mutating func readInt32() throws -> Int32 {
        Int32(truncatingIfNeeded: try readVarint())
    }

    /// Reads a varint field as a proto `bool`.
    mutating func readBool() throws -> Bool {
        try readVarint() != 0
    }

    /// Reads a fixed32 field as a proto `float`.
    mutating func readFloat() throws -> Float {
        Float(bitPattern: try readFixed32())
    }

    /// Throws unless the field has the wire type its schema requires.
    func expect(_ wireType: WireType, _ expected: WireType, field: String) throws {
        guard wireType == expected else {
            throw fail("\(field) has wire type \(wireType.rawValue), expected \(expected.rawValue)")
        }
    }

    /// Skips the value of a field whose tag has just been read.
    mutating func skipField(number: UInt32, wireType: WireType) throws {
        try skipField(number: number, wireType: wireType, depth: 0)
    }

    private mutating func skipField(number: UInt32, wireType: WireType, depth: Int) throws {
        switch wireType {
        case .varint:
            _ = try readVarint()
        case .fixed64:
            _ = try readFixed64()
        case .fixed32:
            _ = try readFixed32()
        case .lengthDelimited:
            _ = try readLengthDelimited()
        case .startGroup:
            guard depth < Self.maxGroupDepth else { throw fail("groups nested too deeply") }
            while true {
                guard !isAtEnd else { throw fail("unterminated group for field \(number)") }
                let (innerField, innerType) = try readTag()
                if innerType == .endGroup {
                    guard innerField == number else {
                        throw fail("end-group tag for field \(innerField) closes group \(number)")
                    }
                    return
                }
                try skipField(number: innerField, wireType: innerType, depth: depth + 1)
            }
        case .endGroup:
            throw fail("unexpected end-group tag for field \(number)")
        }
    }
}
