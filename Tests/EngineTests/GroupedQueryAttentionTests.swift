import XCTest
import Engine
import Kernels

/// The attention of one token's query-head group against a naive softmax attention in Double, for
/// group sizes and head sizes beyond the fixture's (4 heads per KV head, head size 16): the
/// four-head path, the general one, head sizes that are not a multiple of 16, both cache types,
/// positions within one block of the value sums and across several.
final class GroupedQueryAttentionTests: XCTestCase {
    func testMatchesNaiveAttention() {
        var rng = SplitMix64(seed: 7)
        func random() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53) * 4 - 2) }
        for f32 in [true, false] {
            for group in [1, 2, 3, 4, 8] {
                for hd in [8, 16, 24, 40] {
                    for n in [1, 2, 7, 33, 70] {
                        let kvHeads = 2, rowStride = kvHeads * hd
                        let q = (0..<(group * hd)).map { _ in random() }
                        // Cached rows of both KV heads; the test attends with KV head 1.
                        var k = (0..<(n * rowStride)).map { _ in random() }
                        var v = (0..<(n * rowStride)).map { _ in random() }
                        if !f32 {   // the values the f16 cache holds
                            k = k.map { Float(Float16($0)) }; v = v.map { Float(Float16($0)) }
                        }
                        var out = [Float](repeating: .nan, count: group * hd)
                        var scores = [Float](repeating: 0, count: group * n)
                        let k16 = k.map { Float16($0) }, v16 = v.map { Float16($0) }
                        func run(_ kp: UnsafeRawPointer, _ vp: UnsafeRawPointer, _ bytes: Int) {
                            GroupedQueryAttention.attend(
                                queries: q, group: group, headDim: hd, keys: kp + hd * bytes, values: vp + hd * bytes,
                                rowStride: rowStride, f32: f32, positions: n, scores: &scores, into: &out)
                        }
                        if f32 { run(k, v, 4) } else { run(k16, v16, 2) }
                        for h in 0..<group {
                            var logits = (0..<n).map { j in
                                (0..<hd).reduce(0.0) { $0 + Double(q[h * hd + $1]) * Double(k[j * rowStride + hd + $1]) } / Double(hd).squareRoot()
                            }
                            let m = logits.max()!
                            logits = logits.map { exp($0 - m) }
                            let total = logits.reduce(0, +)
                            for d in 0..<hd {
                                let expected = (0..<n).reduce(0.0) { $0 + logits[$1] / total * Double(v[$1 * rowStride + hd + d]) }
                                XCTAssertEqual(Double(out[h * hd + d]), expected, accuracy: 1e-5,
                                               "f32 \(f32) group \(group) head size \(hd) positions \(n): head \(h) lane \(d)")
                            }
                        }
                    }
                }
            }
        }
    }
}
