import Foundation
import XCTest
@testable import GGUF
import Kernels

/// Each test writes a valid file with GGUFLayout, patches it, and checks that GGUFFile refuses it
/// with a GGUFError that names the file and the problem.
final class GGUFCorruptFileTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    let alignment = 32

    func layout() throws -> GGUFLayout {
        try GGUFLayout(metadata: [
            ("general.architecture", .string("llama")),
            ("test.aaaa", .uint32(7)),
            ("test.bbbb", .string("hello")),
            ("test.flag", .bool(true)),
            ("test.list", .array(.uint32, [.uint32(1), .uint32(2), .uint32(3)])),
        ], tensors: [
            GGUFTensorInfo(name: "tensor.a", shape: [64, 2], type: .q8_0),
            GGUFTensorInfo(name: "tensor.b", shape: [8, 2], type: .f32),
        ], alignment: alignment)
    }

    func validBytes() throws -> [UInt8] { fileBytes(try layout()) }

    /// Byte offset of the value of metadata `key` (after its key string and type).
    func valueOffset(_ bytes: [UInt8], key: String) -> Int {
        let p = bytes.firstRange(of: ggufString(key))!
        return p + 8 + key.utf8.count + 4
    }

    func typeOffset(_ bytes: [UInt8], key: String) -> Int { valueOffset(bytes, key: key) - 4 }

    struct InfoOffsets { var nDims: Int; var dims: [Int]; var type: Int; var offset: Int }

    func tensorInfo(_ bytes: [UInt8], name: String) -> InfoOffsets {
        // Tensor names appear after the metadata; search from the end of the metadata.
        let p = bytes.firstRange(of: ggufString(name))!
        let nDims = p + 8 + name.utf8.count
        let n = Int(bytes.get(UInt32.self, at: nDims))
        let dims = (0..<n).map { nDims + 4 + 8 * $0 }
        let type = nDims + 4 + 8 * n
        return InfoOffsets(nDims: nDims, dims: dims, type: type, offset: type + 4)
    }

    /// Writes `bytes`, opens it, and checks the error mentions the path and every `phrases`.
    func assertRejected(_ bytes: [UInt8], _ phrases: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let path = dir.appendingPathComponent("bad-\(UUID().uuidString.prefix(8)).gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            let g = try GGUFFile(path: path)
            XCTFail("opened a corrupt file (\(g.tensors.count) tensors); expected: \(phrases)", file: file, line: line)
        } catch let e as GGUFError {
            let d = e.description
            XCTAssertTrue(d.contains(path), "error does not name the file: \(d)", file: file, line: line)
            for p in phrases {
                XCTAssertTrue(d.contains(p), "error does not say '\(p)': \(d)", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    func testValidBaseFileOpens() throws {
        let path = dir.appendingPathComponent("ok.gguf").path
        try Data(try validBytes()).write(to: URL(fileURLWithPath: path))
        let g = try GGUFFile(path: path)
        XCTAssertEqual(g.tensors.count, 2)
        XCTAssertEqual(g["test.list"], .array(.uint32, [.uint32(1), .uint32(2), .uint32(3)]))
    }

    func testBadMagic() throws {
        var b = try validBytes()
        b.replaceSubrange(0..<4, with: Array("GGUX".utf8))
        try assertRejected(b, ["bad magic"])
        try assertRejected(Array("PK\u{3}\u{4}".utf8) + b[4...], ["bad magic"])
    }

    func testUnsupportedVersion() throws {
        for v: UInt32 in [1, 4, 0xFFFF_FFFF] {
            var b = try validBytes()
            b.put(v, at: 4)
            try assertRejected(b, ["unsupported GGUF version \(v)"])
        }
    }

    func testTruncatedHeader() throws {
        let b = try validBytes()
        // Cut inside the last tensor info's offset field.
        let cut = tensorInfo(b, name: "tensor.b").offset + 3
        try assertRejected(Array(b[..<cut]), ["truncated"])
        // Cut in the middle of the metadata.
        let mid = valueOffset(b, key: "test.list") + 6
        try assertRejected(Array(b[..<mid]), ["past the end of the file"])
        // Smaller than the fixed header.
        try assertRejected(Array(b[..<20]), ["too small"])
    }

    func testAbsurdTensorCount() throws {
        var b = try validBytes()
        b.put(UInt64(1) << 40, at: 8)
        try assertRejected(b, ["tensor count 1099511627776", "impossible"])
    }

    func testAbsurdMetadataCount() throws {
        var b = try validBytes()
        b.put(UInt64(1) << 40, at: 16)
        try assertRejected(b, ["metadata count 1099511627776", "impossible"])
        b.put(UInt64.max, at: 16)
        try assertRejected(b, ["metadata count \(UInt64.max)"])
    }

    func testStringLengthBeyondEndOfFile() throws {
        var b = try validBytes()
        b.put(UInt64(1) << 40, at: 24)  // length of the first key
        try assertRejected(b, ["string length 1099511627776", "past the end of the file"])
        var c = try validBytes()
        c.put(UInt64.max - 3, at: valueOffset(c, key: "test.bbbb"))  // length of a string value
        try assertRejected(c, ["test.bbbb", "string length"])
        var t = try validBytes()
        t.put(UInt64(t.count), at: tensorInfo(t, name: "tensor.b").nDims - 8 - 8)  // length of a tensor name
        try assertRejected(t, ["string length"])
    }

    func testDuplicateKey() throws {
        var b = try validBytes()
        let p = b.firstRange(of: ggufString("test.bbbb"))!
        b.replaceSubrange((p + 8)..<(p + 8 + 9), with: Array("test.aaaa".utf8))
        try assertRejected(b, ["duplicate metadata key 'test.aaaa'"])
    }

    func testDuplicateTensor() throws {
        var b = try validBytes()
        let p = b.firstRange(of: ggufString("tensor.b"))!
        b.replaceSubrange((p + 8)..<(p + 16), with: Array("tensor.a".utf8))
        try assertRejected(b, ["duplicate tensor 'tensor.a'"])
    }

    func testUnknownValueType() throws {
        var b = try validBytes()
        b.put(UInt32(99), at: typeOffset(b, key: "test.aaaa"))
        try assertRejected(b, ["test.aaaa", "unknown value type 99"])
        var c = try validBytes()
        c.put(UInt32(13), at: valueOffset(c, key: "test.list"))  // array element type
        try assertRejected(c, ["test.list", "unknown value type 13"])
    }

    func testUnknownTensorType() throws {
        var b = try validBytes()
        b.put(UInt32(2), at: tensorInfo(b, name: "tensor.b").type)  // Q4_1: not read by Octet
        try assertRejected(b, ["tensor.b", "unsupported tensor type id 2"])
        b.put(UInt32(12345), at: tensorInfo(b, name: "tensor.b").type)
        try assertRejected(b, ["tensor.b", "12345"])
    }

    func testMisalignedTensorOffset() throws {
        var b = try validBytes()
        let o = tensorInfo(b, name: "tensor.b").offset
        b.put(b.get(UInt64.self, at: o) + 16, at: o)
        try assertRejected(b, ["tensor.b", "not aligned to \(alignment)"])
    }

    func testTensorDataBeyondEndOfFile() throws {
        let b = try validBytes()
        try assertRejected(Array(b.dropLast(1)), ["tensor.b", "past the end of the file"])
        // An offset far beyond the file.
        var c = b
        c.put(UInt64(1) << 50, at: tensorInfo(c, name: "tensor.b").offset)
        try assertRejected(c, ["tensor.b", "beyond the end of the file"])
        // Offset + size overflowing Int.
        var d = b
        d.put(UInt64(1) << 40, at: tensorInfo(d, name: "tensor.a").dims[1])
        try assertRejected(d, ["tensor.a", "past the end of the file"])
    }

    func testRowLengthNotMultipleOfBlockSize() throws {
        var b = try validBytes()
        b.put(UInt64(48), at: tensorInfo(b, name: "tensor.a").dims[0])
        try assertRejected(b, ["tensor.a", "row length 48", "block size 32"])
    }

    func testZeroDimension() throws {
        var b = try validBytes()
        b.put(UInt64(0), at: tensorInfo(b, name: "tensor.a").dims[1])
        try assertRejected(b, ["tensor.a", "dimension 0"])
        var c = try validBytes()
        c.put(UInt64(0), at: tensorInfo(c, name: "tensor.b").dims[0])
        try assertRejected(c, ["tensor.b", "dimension 0"])
    }

    func testBadDimensionCount() throws {
        for n: UInt32 in [0, 5, 1000] {
            var b = try validBytes()
            b.put(n, at: tensorInfo(b, name: "tensor.b").nDims)
            try assertRejected(b, ["tensor.b", "\(n) dimensions"])
        }
    }

    func testAlignmentNotAPowerOfTwo() throws {
        for v: UInt32 in [3000, 0, 48] {
            var b = try validBytes()
            b.put(v, at: valueOffset(b, key: "general.alignment"))
            try assertRejected(b, ["general.alignment", "power of two"])
        }
        // Not an integer at all.
        var c = try validBytes()
        c.put(GGUFValueType.float32.rawValue, at: typeOffset(c, key: "general.alignment"))
        try assertRejected(c, ["general.alignment"])
    }

    func testBadBoolAndAbsurdArrayCount() throws {
        var b = try validBytes()
        b[valueOffset(b, key: "test.flag")] = 2
        try assertRejected(b, ["test.flag", "neither 0 nor 1"])
        var c = try validBytes()
        c.put(UInt64(1) << 60, at: valueOffset(c, key: "test.list") + 4)
        try assertRejected(c, ["test.list", "array count"])
    }

    func testNotAFile() throws {
        let missing = dir.appendingPathComponent("missing.gguf").path
        XCTAssertThrowsError(try GGUFFile(path: missing)) { XCTAssertTrue("\($0)".contains(missing), "\($0)") }
        XCTAssertThrowsError(try GGUFFile(path: dir.path)) { XCTAssertTrue("\($0)".contains("directory"), "\($0)") }
        let empty = dir.appendingPathComponent("empty.gguf").path
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        XCTAssertThrowsError(try GGUFFile(path: empty)) { XCTAssertTrue("\($0)".contains("empty"), "\($0)") }
    }
}
