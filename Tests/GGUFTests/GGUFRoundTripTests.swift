import Foundation
import XCTest
@testable import GGUF
import Kernels

final class GGUFRoundTripTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    let metadata: [(key: String, value: GGUFValue)] = [
        ("general.architecture", .string("llama")),
        ("test.u8", .uint8(250)), ("test.i8", .int8(-100)),
        ("test.u16", .uint16(65000)), ("test.i16", .int16(-30000)),
        ("test.u32", .uint32(4_000_000_000)), ("test.i32", .int32(-2_000_000_000)),
        ("test.f32", .float32(-1.5e-7)), ("test.f32.inf", .float32(.infinity)),
        ("test.bool.t", .bool(true)), ("test.bool.f", .bool(false)),
        ("test.str", .string("héllo ▁ 🌊\n\t\"quoted\"")), ("test.str.empty", .string("")),
        ("test.u64", .uint64(.max)), ("test.i64", .int64(.min)), ("test.f64", .float64(.pi)),
        ("test.arr.u8", .array(.uint8, [.uint8(0), .uint8(255), .uint8(7)])),
        ("test.arr.i16", .array(.int16, [.int16(-1), .int16(32767)])),
        ("test.arr.f32", .array(.float32, [.float32(1), .float32(-0.25), .float32(3e38)])),
        ("test.arr.bool", .array(.bool, [.bool(true), .bool(false), .bool(true)])),
        ("test.arr.str", .array(.string, [.string("a"), .string(""), .string("ünï ▁x")])),
        ("test.arr.u64", .array(.uint64, [.uint64(1 << 63)])),
        ("test.arr.f64", .array(.float64, [.float64(-2.5)])),
        ("test.arr.empty", .array(.int32, [])),
        ("test.arr.nested", .array(.array, [
            .array(.int32, [.int32(1), .int32(-2)]),
            .array(.string, [.string("x"), .string("yz")]),
            .array(.uint8, []),
            .array(.array, [.array(.float32, [.float32(0.5)])]),
        ])),
        ("test.after.arrays", .uint32(42)),
    ]

    let tensors: [GGUFTensorInfo] = [
        GGUFTensorInfo(name: "a.f32", shape: [7, 3], type: .f32),
        GGUFTensorInfo(name: "b.f16", shape: [5], type: .f16),
        GGUFTensorInfo(name: "c.q8_0", shape: [64, 2], type: .q8_0),
        GGUFTensorInfo(name: "d.bf16", shape: [3, 2, 2], type: .bf16),
        GGUFTensorInfo(name: "e.fp8", shape: [32, 1, 1, 2], type: .fp8_e4m3),
        GGUFTensorInfo(name: "f.big", shape: [1024, 3], type: .f32),
        GGUFTensorInfo(name: "g.unicode.▁名前", shape: [32, 3], type: .q8_0),
    ]

    func testRoundTripAlignment4096() throws {
        try roundTrip(alignment: 4096)
    }

    func testRoundTripAlignment32() throws {
        try roundTrip(alignment: 32)
    }

    func roundTrip(alignment: Int) throws {
        let layout = try GGUFLayout(metadata: metadata, tensors: tensors, alignment: alignment)
        let path = dir.appendingPathComponent("rt.gguf").path
        try writeGGUF(layout, to: path)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int, layout.fileSize)

        let g = try GGUFFile(path: path)
        XCTAssertEqual(g.version, 3)
        XCTAssertEqual(g.alignment, alignment)
        XCTAssertEqual(g.dataOffset, layout.dataOffset)
        XCTAssertEqual(g.dataOffset % alignment, 0)

        // Metadata: everything in order, general.alignment added right after general.architecture.
        var expected = metadata
        expected.insert(("general.alignment", .uint32(UInt32(alignment))), at: 1)
        XCTAssertEqual(g.metadata.map(\.key), expected.map(\.key))
        for (a, b) in zip(g.metadata, expected) {
            XCTAssertEqual(a.value, b.value, "metadata \(a.key)")
            XCTAssertEqual(a.value.type, b.value.type, "type of \(a.key)")
        }
        for (k, v) in metadata { XCTAssertEqual(g[k], v, "lookup \(k)") }
        XCTAssertEqual(g["general.alignment"]?.int, alignment)
        XCTAssertNil(g["no.such.key"])
        XCTAssertEqual(g["test.u64"]?.int, nil, "UInt64.max does not fit an Int")
        XCTAssertEqual(g["test.i16"]?.int, -30000)
        XCTAssertEqual(g["test.f64"]?.double, .pi)
        XCTAssertEqual(g["test.str"]?.string, "héllo ▁ 🌊\n\t\"quoted\"")
        XCTAssertEqual(g["test.arr.nested"]?.array?[3].array?[0].array?[0], .float32(0.5))

        // Tensors: names, shapes, types, aligned offsets, bytes.
        XCTAssertEqual(g.tensors.map(\.name), tensors.map(\.name))
        for (k, t) in g.tensors.enumerated() {
            XCTAssertEqual(t.shape, tensors[k].shape, t.name)
            XCTAssertEqual(t.type, tensors[k].type, t.name)
            XCTAssertEqual(t.offset, layout.tensors[k].offset, t.name)
            XCTAssertEqual((g.dataOffset + t.offset) % alignment, 0, "\(t.name) not aligned")
            XCTAssertEqual(g.tensorInfo(t.name), t)
            let range = g.byteRange(of: t)
            XCTAssertEqual(range.lowerBound, layout.absoluteOffset(of: t.name))
            XCTAssertEqual(range.count, t.byteCount)
            let data = Array(UnsafeRawBufferPointer(start: g.data(of: t), count: t.byteCount!))
            XCTAssertEqual(data, patternBytes(t.byteCount!, seed: k), "data of \(t.name)")
            if k > 0 {
                let prev = g.tensors[k - 1]
                XCTAssertGreaterThanOrEqual(t.offset, prev.offset + prev.byteCount!, "\(t.name) overlaps \(prev.name)")
            }
        }
        // Byte counts per type: f32 4/value, f16/bf16 2, Q8_0/FP8 34 per 32 values.
        XCTAssertEqual(g.tensorInfo("a.f32")?.byteCount, 84)
        XCTAssertEqual(g.tensorInfo("b.f16")?.byteCount, 10)
        XCTAssertEqual(g.tensorInfo("c.q8_0")?.byteCount, 136)
        XCTAssertEqual(g.tensorInfo("d.bf16")?.byteCount, 24)
        XCTAssertEqual(g.tensorInfo("e.fp8")?.byteCount, 68)
        let m = try XCTUnwrap(g.matrix("c.q8_0"))
        XCTAssertEqual(m.cols, 64); XCTAssertEqual(m.rows, 2); XCTAssertEqual(m.rowBytes, 68)
        let e = try XCTUnwrap(g.matrix("e.fp8"))
        XCTAssertEqual(e.rows, 2)
        XCTAssertNil(g.matrix("missing"))
    }

    func testLayoutReplacesGivenAlignmentKey() throws {
        var md = metadata
        md.append(("general.alignment", .uint32(64)))
        let layout = try GGUFLayout(metadata: md, tensors: tensors, alignment: 4096)
        XCTAssertEqual(layout.metadata.filter { $0.key == "general.alignment" }.count, 1)
        let path = dir.appendingPathComponent("a.gguf").path
        try writeGGUF(layout, to: path)
        XCTAssertEqual(try GGUFFile(path: path).alignment, 4096)
    }

    func testLayoutRejectsPartialBlocks() {
        XCTAssertThrowsError(try GGUFLayout(metadata: [], tensors: [GGUFTensorInfo(name: "bad", shape: [40, 2], type: .q8_0)])) { e in
            XCTAssertTrue("\(e)".contains("bad") && "\(e)".contains("40"), "\(e)")
        }
    }

    func testEmptyFileWithoutTensors() throws {
        let layout = try GGUFLayout(metadata: [("general.architecture", .string("none"))], tensors: [], alignment: 32)
        let path = dir.appendingPathComponent("empty.gguf").path
        try writeGGUF(layout, to: path)
        let g = try GGUFFile(path: path)
        XCTAssertEqual(g.tensors.count, 0)
        XCTAssertEqual(g.metadata.count, 2)
    }

    func testVersion2IsAccepted() throws {
        let layout = try GGUFLayout(metadata: metadata, tensors: tensors, alignment: 32)
        var bytes = fileBytes(layout)
        bytes.put(UInt32(2), at: 4)
        let path = dir.appendingPathComponent("v2.gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try GGUFFile(path: path).version, 2)
    }
}
