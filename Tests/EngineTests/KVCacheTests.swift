import XCTest
@testable import Engine
import Checkpoint

/// The cache keeps each KV head's rows together, but a saved session holds them position by
/// position (each position's keys of all KV heads, then the next position's), the layout of
/// session files written before: saving must gather into it and loading scatter back.
final class KVCacheTests: XCTestCase {
    let config = ModelConfig(nVocab: 10, nEmbd: 32, nLayers: 2, nHeads: 4, nKVHeads: 2, headDim: 8, nFF: 16,
                             nExperts: 0, nExpertsUsed: 0, ropeTheta: 1e4, ropeDim: 8, normEps: 1e-5, contextLength: 16)

    /// Element i of position j's key (kind 0) or value (kind 1) row in layer l.
    func element(_ l: Int, _ kind: Int, _ j: Int, _ i: Int) -> Float { Float(l * 1000 + kind * 500 + j * 16 + i) }

    func filled(_ type: KVType, positions: Int) throws -> KVCache {
        let cache = try KVCache(config: config, type: type, contextLength: 16)
        for l in 0..<config.nLayers {
            for j in 0..<positions {
                let k = (0..<cache.rowLength).map { element(l, 0, j, $0) }, v = (0..<cache.rowLength).map { element(l, 1, j, $0) }
                cache.store(layer: l, position: j, key: k, value: v)
            }
        }
        return cache
    }

    func testSavedLayoutIsPositionMajorAndRestores() throws {
        for type in KVType.allCases {
            let cache = try filled(type, positions: 5)
            var bytes: [UInt8] = []
            cache.append(positions: 5, to: &bytes)
            XCTAssertEqual(bytes.count, cache.serializedByteCount(positions: 5))
            var expected: [Float] = []
            for l in 0..<2 { for kind in 0..<2 { for j in 0..<5 { for i in 0..<16 { expected.append(element(l, kind, j, i)) } } } }
            let saved: [Float] = bytes.withUnsafeBytes { raw in
                type == .f32 ? Array(raw.bindMemory(to: Float.self)) : raw.bindMemory(to: Float16.self).map { Float($0) }
            }
            XCTAssertEqual(saved, expected, "\(type)")

            let restored = try KVCache(config: config, type: type, contextLength: 16)
            bytes.withUnsafeBytes { restored.restore(positions: 5, from: $0) }
            var again: [UInt8] = []
            restored.append(positions: 5, to: &again)
            XCTAssertEqual(again, bytes, "\(type)")
            // The restored cache holds KV head 1's rows where attention reads them.
            let keys = restored.keys(1).advanced(by: restored.headStride * type.bytes)
            let first = type == .f32 ? keys.load(as: Float.self) : Float(keys.load(as: Float16.self))
            XCTAssertEqual(first, element(1, 0, 0, 8), "\(type)")
        }
    }
}
