import Foundation
import XCTest
import Synchronization
@testable import Kernels

final class WorkerPoolTests: XCTestCase {
    func testParallelForCoversEveryIndexExactlyOnce() {
        let counts = Array(0...40) + [63, 64, 65, 100, 127, 1000, 4097]
        let lock = NSLock()
        for threads in 1...4 {
            let pool = WorkerPool(threads: threads)
            XCTAssertEqual(pool.threads, threads)
            for g in [1, 2, 3, 7, 16, 64] {
                for count in counts {
                    var hits = [Int](repeating: 0, count: count)
                    var ranges: [Range<Int>] = []
                    var threadIDs = Set<Int>()
                    hits.withUnsafeMutableBufferPointer { h in
                        pool.parallelFor(count, granularity: g) { (r: Range<Int>, thread: Int) in
                            lock.lock(); ranges.append(r); threadIDs.insert(thread); lock.unlock()
                            for i in r { h[i] += 1 }  // ranges are disjoint: no two threads touch one index
                        }
                    }
                    XCTAssertEqual(hits, [Int](repeating: 1, count: count), "threads \(threads) g \(g) count \(count)")
                    XCTAssertFalse(ranges.contains { $0.isEmpty }, "empty chunk passed to body")
                    XCTAssertTrue(threadIDs.allSatisfy { (0..<threads).contains($0) }, "thread ids \(threadIDs) outside 0..<\(threads)")
                    let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
                    XCTAssertEqual(sorted.first?.lowerBound ?? 0, 0)
                    XCTAssertEqual(sorted.last?.upperBound ?? 0, count)
                    for (a, b) in zip(sorted, sorted.dropFirst()) {
                        XCTAssertEqual(a.upperBound, b.lowerBound, "chunks not contiguous")
                    }
                    for r in ranges where r.lowerBound != 0 {
                        XCTAssertEqual(r.lowerBound % g, 0, "chunk start \(r.lowerBound) not a multiple of \(g)")
                    }
                }
            }
        }
    }

    /// Chunks shrink as a section drains (guided scheduling), so the last chunk, which one
    /// thread runs while the others wait, is a small share of the work.
    func testChunksShrinkTowardTheEnd() {
        let lock = NSLock()
        for threads in [2, 3] {
            let pool = WorkerPool(threads: threads)
            let count = 16 * 7168, g = 16
            var ranges: [Range<Int>] = []
            pool.parallelFor(count, granularity: g) { (r: Range<Int>, _: Int) in
                lock.lock(); ranges.append(r); lock.unlock()
            }
            let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
            let first = sorted.first!.count, last = sorted.last!.count
            XCTAssertEqual(first, count / (2 * threads) / g * g, "threads \(threads): first chunk")
            XCTAssertLessThanOrEqual(last, count / (16 * threads) + g, "threads \(threads): last chunk \(last) of \(count)")
            for (a, b) in zip(sorted, sorted.dropFirst()) {
                XCTAssertLessThanOrEqual(b.count, a.count, "threads \(threads): a later chunk is larger")
            }
        }
    }

    /// `first` runs once, on the calling thread, in every kind of section (empty, one chunk, many).
    func testFirstRunsOnceOnTheCallingThread() {
        for threads in [1, 2] {
            let pool = WorkerPool(threads: threads)
            for count in [0, 1, 16, 4096] {
                var firstRuns = 0
                var firstThread: pthread_t?
                let chunks = Atomic<Int>(0)
                withUnsafePointer(to: chunks) { c in
                    pool.parallelFor(count, granularity: 16, context: UnsafeRawPointer(c), { ctx, lo, hi, _ in
                        ctx.assumingMemoryBound(to: Atomic<Int>.self).pointee.wrappingAdd(hi - lo, ordering: .relaxed)
                    }, first: { firstRuns += 1; firstThread = pthread_self() })
                }
                XCTAssertEqual(firstRuns, 1, "threads \(threads) count \(count)")
                XCTAssertEqual(firstThread.map { pthread_equal($0, pthread_self()) != 0 }, true, "threads \(threads) count \(count)")
                XCTAssertEqual(chunks.load(ordering: .relaxed), count)
            }
        }
    }

    func testSingleArgumentFormAndRepeatedSections() {
        let lock = NSLock()
        for threads in 1...4 {
            let pool = WorkerPool(threads: threads)
            for round in 0..<200 {
                let count = 1 + round % 97
                var total = 0
                pool.parallelFor(count) { r in lock.lock(); total += r.count; lock.unlock() }
                XCTAssertEqual(total, count, "threads \(threads) round \(round)")
            }
        }
    }

    /// Per-thread scratch indexed by the thread id must never be used by two threads at once.
    func testThreadIDsAreExclusiveWhileRunning() {
        let pool = WorkerPool(threads: 4)
        let inUse = UnsafeMutablePointer<Int>.allocate(capacity: 4)
        inUse.initialize(repeating: 0, count: 4)
        defer { inUse.deallocate() }
        let lock = NSLock()
        var clashes = 0
        for _ in 0..<100 {
            pool.parallelFor(64) { (_: Range<Int>, thread: Int) in
                lock.lock(); if inUse[thread] != 0 { clashes += 1 }; inUse[thread] += 1; lock.unlock()
                var s = 0; for i in 0..<2000 { s &+= i }; _ = s
                lock.lock(); inUse[thread] -= 1; lock.unlock()
            }
        }
        XCTAssertEqual(clashes, 0)
    }

    func testStaticChunkPartition() {
        for n in 1...6 {
            for g in [1, 4, 5, 32] {
                for count in [0, 1, 5, 31, 32, 33, 200] {
                    let parts = (0..<n).map { WorkerPool.chunk(count, worker: $0, of: n, granularity: g) }
                    XCTAssertEqual(parts.first?.lowerBound, 0)
                    XCTAssertEqual(parts.last?.upperBound, count)
                    for (a, b) in zip(parts, parts.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                }
            }
        }
    }

    func testZeroOrNegativeThreadsMeansOne() {
        XCTAssertEqual(WorkerPool(threads: 0).threads, 1)
        XCTAssertEqual(WorkerPool(threads: -3).threads, 1)
    }
}
