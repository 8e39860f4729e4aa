/// An open-addressing hash map from byte strings to token ids.
///
/// Keys are compared byte for byte. (A `[String: Int32]` would be wrong here: Swift
/// strings compare by canonical equivalence, so the precomposed "é" and "e" + U+0301
/// would collide, while SentencePiece treats them as different pieces.)
/// Lookups take a pointer and a length, so the encoder never allocates to probe.
struct PieceTable {
    private var keyBytes: [UInt8] = []
    private var keyOffsets: [Int] = []
    private var keyLengths: [Int] = []
    private var values: [Int32] = []
    /// Entry index per slot, -1 when empty. Capacity is a power of two, at most half full.
    private var slots: [Int32]
    private var mask: Int
    /// Length in bytes of the longest key. Keys are never empty.
    private(set) var maxKeyLength = 0

    /// Number of keys stored.
    var count: Int { values.count }

    init(expectedCount: Int = 0) {
        var capacity = 16
        while capacity < 2 * expectedCount { capacity <<= 1 }
        slots = [Int32](repeating: -1, count: capacity)
        mask = capacity - 1
    }

    @inline(__always)
    private static func hash(_ base: UnsafePointer<UInt8>, _ count: Int) -> Int {
        // FNV-1a, 64-bit.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<count {
            h = (h ^ UInt64(base[i])) &* 0x0000_0100_0000_01b3
        }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// Inserts `key` → `value` unless `key` is already present or empty.
    /// Returns false if nothing was inserted.
    @discardableResult
    mutating func insertIfAbsent(_ key: [UInt8], value: Int32) -> Bool {
        if key.isEmpty || lookup(key) != nil { return false }
        if 2 * (values.count + 1) > slots.count { grow() }
        keyOffsets.append(keyBytes.count)
        keyLengths.append(key.count)
        keyBytes.append(contentsOf: key)
        values.append(value)
        maxKeyLength = max(maxKeyLength, key.count)
        place(entry: values.count - 1)
        return true
    }

    private mutating func place(entry: Int) {
        let h = keyBytes.withUnsafeBufferPointer { buffer in
            Self.hash(buffer.baseAddress! + keyOffsets[entry], keyLengths[entry])
        }
        var slot = h & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(entry)
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        mask = slots.count - 1
        for entry in values.indices { place(entry: entry) }
    }

    /// The value stored for the `count` bytes at `base`, or nil.
    @inline(__always)
    func lookup(_ base: UnsafePointer<UInt8>, _ count: Int) -> Int32? {
        if count > maxKeyLength || count <= 0 { return nil }
        var slot = Self.hash(base, count) & mask
        return keyBytes.withUnsafeBufferPointer { stored -> Int32? in
            while true {
                let entry = Int(slots[slot])
                if entry < 0 { return nil }
                if keyLengths[entry] == count {
                    let start = stored.baseAddress! + keyOffsets[entry]
                    var equal = true
                    for i in 0..<count where start[i] != base[i] {
                        equal = false
                        break
                    }
                    if equal { return values[entry] }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    /// The value stored for `key`, or nil (always nil for the empty key).
    func lookup(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return nil }
            return lookup(base, buffer.count)
        }
    }
}
