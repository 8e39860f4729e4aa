import XCTest
@testable import Kernels
import Q8_0Kernels

/// The integer Q8_0 path the engine uses by default: activations quantized to 8 bits per block of
/// 32 (float scale d = amax/127, q = round half away), dotted with Q8_0 weight blocks in integers.
final class QuantizedActivationsTests: XCTestCase {
    func testActivationQuantizationMatchesDefinition() {
        var rng = SplitMix64(seed: 61)
        let n = 128, count = 3, stride = 130
        var x = rng.floats(stride * count, sigma: 2)
        x[5] = 0; x[stride + 40] = 1e-3
        for i in 64..<96 { x[i] = 0 }  // an all-zero block
        // A block with scale exactly 1 (max 127), holding ties in both directions and the float
        // just below a half: rounding must be half away from zero, as C's roundf.
        let ties: [Float] = [127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5, 0.49999997, -0.49999997,
                             2.4999998, -2.4999998, 3.5000002, -3.5000002, 64.5, -64.5, 0, -0.0, 1, -1, 100.25]
        for (i, v) in ties.enumerated() { x[stride + 32 + i] = v }
        let xq = QuantizedActivations(capacity: n * count)
        x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: stride, count: count, rowLength: n) }
        XCTAssertEqual(xq.count, count)
        XCTAssertEqual(xq.rowLength, n)
        for t in 0..<count {
            for b in 0..<(n / 32) {
                let block = (0..<32).map { x[t * stride + b * 32 + $0] }
                let amax = block.map(abs).max()!
                let d = amax / 127
                let id: Float = d != 0 ? 1 / d : 0
                for i in 0..<32 {
                    let q = roundf(block[i] * id)  // C roundf: half away from zero
                    XCTAssertLessThanOrEqual(abs(q), 127)
                    XCTAssertEqual(xq.value(t, b * 32 + i), d * q, "vector \(t) value \(b * 32 + i)")
                    XCTAssertLessThanOrEqual(abs(xq.value(t, b * 32 + i) - block[i]), d / 2 * (1 + 1e-5) + 1e-30)
                }
            }
        }
    }

    /// Fast kernel vs its scalar twin vs the exact sum Σ_blocks d_w·d_x·Σ q_w·q_x (Double).
    func testIntegerDotMatchesTwinAndExactSum() {
        var rng = SplitMix64(seed: 62)
        for n in [32, 128, 384, 4096] {
            for trial in 0..<4 {
                let w = rng.floats(n, sigma: [0.02, 1, 50, 0.3][trial])
                var wbytes = encodeRow(w, as: .q8_0)
                if trial == 3 { for b in 0..<(n / 32) { wbytes[b * 34 + 2 + 5] = 0x80 } }  // q = −128, as other quantizers may write
                let x = rng.floats(n, sigma: 3)
                let xq = QuantizedActivations(capacity: n)
                x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: n, count: 1, rowLength: n) }
                var exact = 0.0, magnitude = 0.0
                for i in 0..<n {
                    let blk = i / 32
                    let dw = f16Value(UInt16(wbytes[blk * 34]) | UInt16(wbytes[blk * 34 + 1]) << 8)
                    let qw = Double(Int8(bitPattern: wbytes[blk * 34 + 2 + i % 32]))
                    let term = dw * qw * Double(xq.value(0, i))
                    exact += term; magnitude += abs(term)
                }
                // Pull the kernel's inputs out of the activation buffer through the public API.
                let (fast, twin): (Float, Float) = wbytes.withUnsafeBytes { wb in
                    var qx = [Int8](repeating: 0, count: n), dx = [Float](repeating: 0, count: n / 32)
                    for b in 0..<(n / 32) {
                        let block = (0..<32).map { x[b * 32 + $0] }
                        let amax = block.map(abs).max()!
                        dx[b] = amax / 127
                        let id: Float = dx[b] != 0 ? 1 / dx[b] : 0
                        for i in 0..<32 { qx[b * 32 + i] = Int8(roundf(block[i] * id)) }
                    }
                    return qx.withUnsafeBufferPointer { q in dx.withUnsafeBufferPointer { d in
                        (Dot.q8_0(wb.baseAddress!, q.baseAddress!, d.baseAddress!, blocks: n / 32),
                         Dot.q8_0Reference(wb.baseAddress!, q.baseAddress!, d.baseAddress!, blocks: n / 32))
                    } }
                }
                let bound = Double(n) * 0x1p-23 * magnitude + 1e-6
                XCTAssertLessThanOrEqual(abs(Double(fast) - exact), bound, "n \(n) trial \(trial): fast \(fast) exact \(exact)")
                XCTAssertLessThanOrEqual(abs(Double(twin) - exact), bound, "n \(n) trial \(trial): twin \(twin) exact \(exact)")
            }
        }
    }

    /// A token's result does not depend on its batch: the four-vector tiles give, bit for bit,
    /// what the one-vector kernel gives for each vector (odd and even block counts, weight bytes
    /// −128…127, vector counts around the tile). This is what makes a prompt evaluated in one
    /// batch and the same prompt reused from the KV cache agree.
    func testFourVectorTilesAreBitIdenticalToOneVector() {
        var rng = SplitMix64(seed: 71)
        for cols in [32, 96, 128, 352] {
            let blocks = cols / 32, rows = 3, count = 9
            var w: [UInt8] = []
            for _ in 0..<rows { w += encodeRow(rng.floats(cols, sigma: 0.1), as: .q8_0) }
            w[2] = 0x80; w[3] = 0x7F   // the extremes of a weight byte
            let x = rng.floats(cols * count)
            let xq = QuantizedActivations(capacity: cols * count)
            x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: cols, count: count, rowLength: cols) }
            let scratchBytes = Q8_0Product<AVX2BlockProducts>.scratchBytes(rows: rows, blocks: blocks)
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes, alignment: 64)
            defer { scratch.deallocate() }
            var y = [Float](repeating: .nan, count: rows * count)
            let rowBytes = TensorType.q8_0.rowBytes(cols)!
            w.withUnsafeBytes { wb in
                let (q0, d0) = xq.vector(0)
                y.withUnsafeMutableBufferPointer {
                    Q8_0Product<AVX2BlockProducts>.product(wb.baseAddress!, rowBytes: rowBytes, rows: 0..<rows, blocks: blocks,
                                                           q0, d0, xStride: cols, count: count, $0.baseAddress!, yStride: rows,
                                                           scratch: scratch, scratchBytes: scratchBytes)
                }
                for t in 0..<count {
                    let (q, d) = xq.vector(t)
                    for r in 0..<rows {
                        let one = Dot.q8_0(wb.baseAddress! + r * rowBytes, q, d, blocks: blocks)
                        XCTAssertEqual(y[t * rows + r].bitPattern, one.bitPattern, "cols \(cols) vector \(t) row \(r): \(y[t * rows + r]) vs \(one)")
                    }
                }
            }
        }
    }

    /// Split across a pool (eight or more vectors), quantization gives the same bytes.
    /// Pooled quantization, and block ranges quantized one piece at a time in any order (as the
    /// threads of the expert section do), give the bytes of the serial pass.
    func testPooledAndPiecewiseQuantizationMatchSerial() {
        var rng = SplitMix64(seed: 17)
        let cols = 96, count = 11
        let x = rng.floats(cols * count)
        let serial = QuantizedActivations(capacity: cols * count), pooled = QuantizedActivations(capacity: cols * count)
        let piecewise = QuantizedActivations(capacity: cols * count)
        x.withUnsafeBufferPointer {
            serial.quantize($0.baseAddress!, stride: cols, count: count, rowLength: cols)
            pooled.quantize($0.baseAddress!, stride: cols, count: count, rowLength: cols, pool: WorkerPool(threads: 3))
            piecewise.prepare(count: count, rowLength: cols)
            for t in (0..<count).reversed() {
                piecewise.quantize(vector: t, blocks: 2..<3, from: $0.baseAddress! + t * cols)
                piecewise.quantize(vector: t, blocks: 0..<2, from: $0.baseAddress! + t * cols)
            }
        }
        for other in [pooled, piecewise] {
            XCTAssertEqual(other.count, count)
            XCTAssertEqual(other.rowLength, cols)
            for t in 0..<count {
                let (qs, ds) = serial.vector(t), (qp, dp) = other.vector(t)
                XCTAssertEqual(Array(UnsafeBufferPointer(start: qs, count: cols)), Array(UnsafeBufferPointer(start: qp, count: cols)), "vector \(t)")
                XCTAssertEqual(Array(UnsafeBufferPointer(start: ds, count: cols / 32)), Array(UnsafeBufferPointer(start: dp, count: cols / 32)))
            }
        }
    }

    /// Also with scratch for the scales of only two rows per group, and with too little for one (the
    /// one-vector kernel then takes every vector).
    func testPoolIntegerMatMul() {
        var rng = SplitMix64(seed: 63)
        let cols = 128, rows = 45
        let w = rng.floats(cols * rows, sigma: 0.1)
        let bytes = (0..<rows).flatMap { encodeRow(Array(w[($0 * cols)..<(($0 + 1) * cols)]), as: .q8_0) }
        let twoRows = Q8_0Product<AVX2BlockProducts>.scratchBytes(rows: 2, blocks: cols / 32)
        for (threads, scratch) in [(1, 256 << 10), (2, 256 << 10), (3, 256 << 10), (2, twoRows), (1, 64)] {
            let pool = WorkerPool(threads: threads, scratchBytes: scratch)
            for count in [1, 3, 4, 6, 8, 9] {
                let x = rng.floats(cols * count)
                let xq = QuantizedActivations(capacity: cols * count)
                x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: cols, count: count, rowLength: cols) }
                let yStride = rows + 1
                var y = [Float](repeating: .nan, count: yStride * count)
                bytes.withUnsafeBytes { b in
                    let m = WeightMatrix(base: b.baseAddress!, type: .q8_0, cols: cols, rows: rows)
                    y.withUnsafeMutableBufferPointer { pool.matMul(m, xq, $0.baseAddress!, yStride: yStride) }
                    for t in 0..<count {
                        // Exact value from the dequantized operands.
                        for r in 0..<rows {
                            var exact = 0.0, magnitude = 0.0
                            let rb = TensorType.q8_0.rowBytes(cols)!
                            let wrow = decodeRow(Array(bytes[(r * rb)..<((r + 1) * rb)]), count: cols, as: .q8_0)
                            for i in 0..<cols {
                                let term = Double(wrow[i]) * Double(xq.value(t, i))
                                exact += term; magnitude += abs(term)
                            }
                            let got = y[t * yStride + r]
                            XCTAssertLessThanOrEqual(abs(Double(got) - exact), Double(cols) * 0x1p-23 * magnitude + 1e-6,
                                                     "threads \(threads) scratch \(scratch) count \(count) t \(t) row \(r): \(got) vs \(exact)")
                        }
                        XCTAssertTrue(y[t * yStride + rows].isNaN, "wrote past the rows")
                    }
                }
            }
        }
    }
}
