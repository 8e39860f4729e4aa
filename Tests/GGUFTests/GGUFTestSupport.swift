import Foundation
import XCTest
import GGUF
import Kernels

/// A fresh temporary folder, removed by the caller.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("octet-gguf-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Deterministic tensor bytes: byte i of tensor k.
func patternBytes(_ count: Int, seed: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ ($0 >> 8)) }
}

/// Writes a complete GGUF with `layout` and pattern data through AtomicOutputFile.
func writeGGUF(_ layout: GGUFLayout, to path: String) throws {
    let out = try AtomicOutputFile(path: path, size: layout.fileSize)
    try out.write(layout.headerBytes(), at: 0)
    for (k, t) in layout.tensors.enumerated() {
        try out.write(patternBytes(t.byteCount!, seed: k), at: layout.dataOffset + t.offset)
    }
    try out.commit()
}

/// The file's bytes as one array (for patching).
func fileBytes(_ layout: GGUFLayout) -> [UInt8] {
    var bytes = layout.headerBytes()
    bytes += [UInt8](repeating: 0, count: layout.fileSize - bytes.count)
    for (k, t) in layout.tensors.enumerated() {
        let start = layout.dataOffset + t.offset
        bytes.replaceSubrange(start..<(start + t.byteCount!), with: patternBytes(t.byteCount!, seed: k))
    }
    return bytes
}

extension Array where Element == UInt8 {
    /// Offset of the first occurrence of `needle`.
    func firstRange(of needle: [UInt8]) -> Int? {
        guard needle.count <= count else { return nil }
        for i in 0...(count - needle.count) where self[i] == needle[0] {
            if Array(self[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }

    mutating func put<T: FixedWidthInteger>(_ v: T, at offset: Int) {
        Swift.withUnsafeBytes(of: v.littleEndian) { replaceSubrange(offset..<(offset + MemoryLayout<T>.size), with: $0) }
    }

    func get<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var v: T = 0
        _ = Swift.withUnsafeMutableBytes(of: &v) { self[offset..<(offset + MemoryLayout<T>.size)].copyBytes(to: $0) }
        return T(littleEndian: v)
    }
}

/// GGUF string encoding: u64 length then the UTF-8 bytes.
func ggufString(_ s: String) -> [UInt8] {
    var b: [UInt8] = []
    withUnsafeBytes(of: UInt64(s.utf8.count).littleEndian) { b.append(contentsOf: $0) }
    return b + Array(s.utf8)
}
