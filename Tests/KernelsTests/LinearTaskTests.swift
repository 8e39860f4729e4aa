import XCTest
@testable import Kernels

/// A fused section (``WorkerPool/run(_:)``) computes, bit for bit, what each product computes on
/// its own: row ranges cut across matrix boundaries must neither skip nor repeat a row.
final class LinearTaskTests: XCTestCase {
    func testFusedSectionEqualsSeparateProducts() {
        var rng = SplitMix64(seed: 91)
        let cols = 96
        let shapes: [(rows: Int, type: TensorType)] = [(40, .q8_0), (17, .f16), (33, .q8_0)]
        let matrices = shapes.map { s in
            (0..<s.rows).flatMap { _ in encodeRow(rng.floats(cols, sigma: 0.1), as: s.type) }
        }
        for threads in 1...3 {
            let pool = WorkerPool(threads: threads)
            for count in [1, 5] {
                let x = rng.floats(cols * count)
                let xq = QuantizedActivations(capacity: cols * count)
                x.withUnsafeBufferPointer { xq.quantize($0.baseAddress!, stride: cols, count: count, rowLength: cols) }
                let fusedY = shapes.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.rows * count) }
                let aloneY = shapes.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.rows * count) }
                for (i, s) in shapes.enumerated() {
                    fusedY[i].initialize(repeating: .nan, count: s.rows * count)
                    aloneY[i].initialize(repeating: .nan, count: s.rows * count)
                }
                let bases = matrices.map { m -> UnsafeMutableRawPointer in
                    let p = UnsafeMutableRawPointer.allocate(byteCount: m.count, alignment: 64)
                    m.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: m.count) }
                    return p
                }
                defer { bases.forEach { $0.deallocate() }; (fusedY + aloneY).forEach { $0.deallocate() } }
                let ws = zip(bases, shapes).map { WeightMatrix(base: $0, type: $1.type, cols: cols, rows: $1.rows) }
                x.withUnsafeBufferPointer { xp in
                    func task(_ i: Int, _ y: UnsafeMutablePointer<Float>) -> LinearTask {
                        ws[i].type == .q8_0
                            ? LinearTask(ws[i], xq, y, yStride: ws[i].rows)
                            : LinearTask(ws[i], xp.baseAddress!, xStride: cols, count: count, y, yStride: ws[i].rows)
                    }
                    let tasks = (0..<3).map { task($0, fusedY[$0]) }
                    tasks.withUnsafeBufferPointer { pool.run($0) }
                    for i in 0..<3 { [task(i, aloneY[i])].withUnsafeBufferPointer { pool.run($0) } }
                }
                let fused = (0..<3).map { Array(UnsafeBufferPointer(start: fusedY[$0], count: shapes[$0].rows * count)) }
                let alone = (0..<3).map { Array(UnsafeBufferPointer(start: aloneY[$0], count: shapes[$0].rows * count)) }
                for i in 0..<3 {
                    XCTAssertFalse(fused[i].contains { $0.isNaN }, "threads \(threads) count \(count) matrix \(i): a row was skipped")
                    XCTAssertEqual(fused[i].map(\.bitPattern), alone[i].map(\.bitPattern), "threads \(threads) count \(count) matrix \(i)")
                    // And against the scalar twin, row by row, for the float matrix.
                    if shapes[i].type == .f16 {
                        for t in 0..<count {
                            for r in 0..<shapes[i].rows {
                                let want = Dot.reference(ws[i].row(r), x.withUnsafeBufferPointer { $0.baseAddress! + t * cols }, count: cols, type: .f16)
                                XCTAssertEqual(fused[i][t * shapes[i].rows + r], want, accuracy: 1e-4 * (1 + abs(want)))
                            }
                        }
                    }
                }
            }
        }
    }
}
