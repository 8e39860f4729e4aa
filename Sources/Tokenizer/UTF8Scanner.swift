/// UTF-8 helpers that follow SentencePiece's rules for decoding byte pieces.
///
/// A sequence is accepted when its lead byte announces a length N, N bytes are
/// available, the trailing bytes are all `10xxxxxx`, the code point is not overlong,
/// not a surrogate and at most U+10FFFF. Anything else consumes exactly one byte,
/// which decodes to U+FFFD. (This is strict UTF-8, with one replacement per bad byte.)
enum UTF8Scanner {
    /// The UTF-8 encoding of U+FFFD REPLACEMENT CHARACTER.
    static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// Result of looking at the start of a byte sequence.
    enum Step: Equatable {
        /// A valid scalar of this many bytes starts here.
        case valid(Int)
        /// The first byte is invalid on its own terms, whatever follows.
        case invalid
        /// The bytes so far are a proper prefix of a sequence that may still turn out valid
        /// (only meaningful while more bytes may arrive).
        case incomplete
    }

    /// Number of bytes announced by a lead byte, or nil for a byte that cannot start a sequence.
    @inline(__always)
    static func sequenceLength(lead: UInt8) -> Int? {
        if lead < 0x80 { return 1 }
        if lead & 0xE0 == 0xC0 { return 2 }
        if lead & 0xF0 == 0xE0 { return 3 }
        if lead & 0xF8 == 0xF0 { return 4 }
        return nil
    }

    @inline(__always)
    static func isTrail(_ byte: UInt8) -> Bool { byte & 0xC0 == 0x80 }

    /// Classifies the sequence starting at `bytes[start]` (`start < end`).
    static func step<C: RandomAccessCollection>(_ bytes: C, from start: C.Index, to end: C.Index) -> Step
    where C.Element == UInt8, C.Index == Int {
        let lead = bytes[start]
        guard let length = sequenceLength(lead: lead) else { return .invalid }
        if length == 1 { return .valid(1) }
        let available = end - start
        let checked = min(available, length)
        for i in 1..<checked where !isTrail(bytes[start + i]) {
            return .invalid
        }
        if available < length { return .incomplete }
        var scalar = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
        for i in 1..<length {
            scalar = (scalar << 6) | (UInt32(bytes[start + i]) & 0x3F)
        }
        let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
        let inRange = scalar < 0xD800 || (scalar >= 0xE000 && scalar <= 0x10FFFF)
        return scalar >= minimum && inRange ? .valid(length) : .invalid
    }

    /// True when `bytes[range]` is entirely valid UTF-8.
    static func isValid(_ bytes: [UInt8], _ range: Range<Int>) -> Bool {
        var i = range.lowerBound
        while i < range.upperBound {
            guard case .valid(let n) = step(bytes, from: i, to: range.upperBound) else { return false }
            i += n
        }
        return true
    }
}
