import XCTest
@testable import Kernels
import Q8_0Kernels
import AVX512Kernels

/// Every kernel route gives the AVX2 route's bits: the AVX-VNNI Q8_0 products (same integers
/// per lane, same float order) and the AVX-512 products (the AVX2 kernels' 8-lane values side
/// by side in 16-lane registers), for one vector and for every tile shape, so a model's output
/// does not depend on which CPU ran it.
final class KernelRouteTests: XCTestCase {
    /// The routes beyond AVX2 this CPU has; skips, saying why, when it has none.
    private func widerRoutes() throws -> [CPUFeatures.KernelRoute] {
        let routes = CPUFeatures.availableRoutes.filter { $0 != .avx2 }
        if routes.isEmpty {
            throw XCTSkip("this CPU has neither AVX-VNNI (avx_vnni) nor AVX-512 (avx512f/bw/vl/dq/avx512_vnni in /proc/cpuinfo), so only the AVX2 route runs here")
        }
        return routes
    }

    /// Runs `body` once per route, AVX2 first, and restores the route in use.
    private func onEveryRoute<T>(_ routes: [CPUFeatures.KernelRoute], _ body: () -> T) -> [(CPUFeatures.KernelRoute, T)] {
        let saved = CPUFeatures.route
        defer { CPUFeatures.route = saved }
        return ([.avx2] + routes).map { r in CPUFeatures.route = r; return (r, body()) }
    }

    /// Q8_0 rows with every weight byte, −128 included, and rows of several scales.
    private func q8_0Rows(_ rng: inout SplitMix64, cols: Int, count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for r in 0..<count {
            var row = encodeRow(rng.floats(cols, sigma: [0.02, 1, 40, 0.3][r % 4]), as: .q8_0)
            if r % 4 == 3 { for i in 0..<cols { row[(i / 32) * 34 + 2 + i % 32] = UInt8(truncatingIfNeeded: i * 37 + r) } }
            bytes += row
        }
        return bytes
    }

    func testQ8_0OneVectorIsBitIdenticalToAVX2() throws {
        let routes = try widerRoutes()
        var rng = SplitMix64(seed: 91)
        for cols in [32, 64, 96, 4096, 14336] {
            let w = q8_0Rows(&rng, cols: cols, count: 4)
            let rowBytes = TensorType.q8_0.rowBytes(cols)!
            for trial in 0..<2 {
                let x = rng.floats(cols, sigma: trial == 0 ? 1 : 300)
                let xq = QuantizedActivations(capacity: cols)
                x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: cols, count: 1, rowLength: cols) }
                let (q, d) = xq.vector(0)
                w.withUnsafeBytes { wb in
                    for r in 0..<4 {
                        let row = wb.baseAddress! + r * rowBytes
                        let avx2 = Dot.q8_0(row, q, d, blocks: cols / 32)
                        for route in routes {
                            let v = route == .avx512 ? Q8_0AVX512.dot(row, q, d, blocks: cols / 32) : Q8_0VNNI.dot(row, q, d, blocks: cols / 32)
                            XCTAssertEqual(v.bitPattern, avx2.bitPattern, "\(route) cols \(cols) row \(r) trial \(trial): \(v) vs \(avx2)")
                        }
                    }
                }
            }
        }
    }

    /// Whole Q8_0 products through the pool, every route, every tile shape: vector counts around
    /// the tile of four, odd and even block counts, scratch for all rows of a group, for one, and
    /// for none (every vector then goes one by one).
    func testQ8_0PoolProductIsBitIdenticalToAVX2Route() throws {
        let routes = try widerRoutes()
        var rng = SplitMix64(seed: 92)
        for cols in [32, 64, 96, 128, 352] {
            let rowCount = 45
            let w = q8_0Rows(&rng, cols: cols, count: rowCount)
            let oneRow = Q8_0Product<AVX2BlockProducts>.scratchBytes(rows: 1, blocks: cols / 32)
            for (threads, scratch) in [(1, 256 << 10), (2, 256 << 10), (2, oneRow), (1, 64)] {
                let pool = WorkerPool(threads: threads, scratchBytes: scratch)
                for count in [1, 3, 4, 5, 8, 9] {
                    let x = rng.floats(cols * count)
                    let xq = QuantizedActivations(capacity: cols * count)
                    x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: cols, count: count, rowLength: cols) }
                    let yStride = rowCount + 1
                    let results = onEveryRoute(routes) { () -> [Float] in
                        var y = [Float](repeating: .nan, count: yStride * count)
                        w.withUnsafeBytes { b in
                            let m = WeightMatrix(base: b.baseAddress!, type: .q8_0, cols: cols, rows: rowCount)
                            y.withUnsafeMutableBufferPointer { pool.matMul(m, xq, $0.baseAddress!, yStride: yStride) }
                        }
                        return y
                    }
                    compare(results, count: count, rows: rowCount, yStride: yStride, "Q8_0 cols \(cols) threads \(threads) scratch \(scratch) count \(count)")
                }
            }
        }
    }

    /// Float and FP8 products through the pool on every route: the AVX-512 tiles (four rows ×
    /// eight vectors, FP8 one row × eight and × four) and one-vector kernels, with the AVX2 kernels for what
    /// they leave (rows past a multiple of four, vectors past a multiple of eight or four).
    func testFloatAndFP8PoolProductsAreBitIdenticalToAVX2Route() throws {
        let routes = try widerRoutes()
        var rng = SplitMix64(seed: 93)
        for type in [TensorType.f32, .f16, .bf16, .fp8_e4m3] {
            for (cols, rowCount) in [(96, 37), (352, 45), (64, 38), (128, 39)] {
                var w: [UInt8] = []
                for r in 0..<rowCount { w += encodeRow(rng.floats(cols, sigma: [0.05, 1, 3][r % 3]), as: type) }
                for threads in [1, 2] {
                    let pool = WorkerPool(threads: threads)
                    for count in [1, 3, 4, 8, 9, 13, 16] {
                        let xStride = cols + 8, yStride = rowCount + 1
                        let x = rng.floats(xStride * count, sigma: 2)
                        let results = onEveryRoute(routes) { () -> [Float] in
                            var y = [Float](repeating: .nan, count: yStride * count)
                            w.withUnsafeBytes { b in
                                let m = WeightMatrix(base: b.baseAddress!, type: type, cols: cols, rows: rowCount)
                                x.withUnsafeBufferPointer { xp in
                                    y.withUnsafeMutableBufferPointer {
                                        pool.matMul(m, xp.baseAddress!, xStride: xStride, count: count, $0.baseAddress!, yStride: yStride)
                                    }
                                }
                            }
                            return y
                        }
                        compare(results, count: count, rows: rowCount, yStride: yStride, "\(type) cols \(cols) threads \(threads) count \(count)")
                    }
                }
            }
        }
    }

    /// Every E4M3 code and activations over a wide range of magnitudes: the one-vector FP8 kernel
    /// (activations scaled inside or beforehand) and the four-vector tile give the AVX2 bits.
    func testFP8EveryCodeIsBitIdenticalToAVX2() throws {
        let routes = try widerRoutes()
        var rng = SplitMix64(seed: 94)
        let codes = (0...255).map { UInt8($0) }.filter { $0 & 0x7F != 0x7F }
        let n = 32 * 65
        var bytes = [UInt8](repeating: 0, count: n / 32 * 34)
        for b in 0..<(n / 32) {
            let d = Float16(Float(sign: .plus, exponent: -10 + Int(rng.next() % 8), significand: 1 + Float(rng.next() % 1024) / 1024))
            bytes[b * 34] = UInt8(d.bitPattern & 0xFF); bytes[b * 34 + 1] = UInt8(d.bitPattern >> 8)
            for i in 0..<32 { bytes[b * 34 + 2 + i] = codes[(b * 32 + i * 7) % codes.count] }
        }
        for exponent in [-40, 0, 28] {
            let four = rng.floats(4 * n).map { $0 * Float(sign: .plus, exponent: exponent, significand: 1) }
            let scaled = four.map { $0 * Dot.fp8ActivationScale }
            let results = onEveryRoute(routes) { () -> [Float] in
                bytes.withUnsafeBytes { b in
                    four.withUnsafeBufferPointer { x in
                        scaled.withUnsafeBufferPointer { s in
                            let tile = Dot.fp8x4(b.baseAddress!, x.baseAddress!, xStride: n, count: n)
                            return [Dot.dot(b.baseAddress!, x.baseAddress! + n, count: n, type: .fp8_e4m3),
                                    Dot.fp8(b.baseAddress!, scaledX: s.baseAddress! + n, n)] + (0..<4).map { tile[$0] }
                        }
                    }
                }
            }
            for (route, v) in results.dropFirst() {
                XCTAssertEqual(v.map(\.bitPattern), results[0].1.map(\.bitPattern), "\(route), activations ~2^\(exponent)")
            }
            XCTAssertEqual(results[0].1[0].bitPattern, results[0].1[3].bitPattern, "the AVX2 tile gives the one-vector bits")
        }
    }

    /// Each route's y equals the AVX2 route's (the first), bit for bit, and writes only the rows.
    private func compare(_ results: [(CPUFeatures.KernelRoute, [Float])], count: Int, rows: Int, yStride: Int, _ what: String) {
        let base = results[0].1
        for (route, y) in results.dropFirst() {
            var differing = 0
            for t in 0..<count {
                for r in 0..<rows {
                    let a = base[t * yStride + r], v = y[t * yStride + r]
                    XCTAssertFalse(v.isNaN, "\(route) \(what): y[\(t)][\(r)] not written")
                    if v.bitPattern != a.bitPattern { differing += 1 }
                }
                XCTAssertTrue(y[t * yStride + rows].isNaN, "\(route) \(what): wrote past the rows")
            }
            XCTAssertEqual(differing, 0, "\(route) \(what): \(differing) values differ from the AVX2 route")
        }
    }
}
