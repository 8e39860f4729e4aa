import Foundation
import XCTest
@testable import Kernels

#if os(Linux)
final class MappedFileTests: XCTestCase {
    /// `prefetch` reports whether it found pages missing: after the file's pages are dropped it
    /// does (and asks for them), once they are read it does not.
    func testPrefetchReportsMissingPages() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("octet-mapped-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let bytes = 64 * MappedFile.pageSize
        try Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: url)
        let file = try MappedFile(path: url.path)
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 16)
        defer { scratch.deallocate() }

        var sum = 0
        for i in stride(from: 0, to: bytes, by: MappedFile.pageSize) { sum &+= Int(file.base.load(fromByteOffset: i, as: UInt8.self)) }
        XCTAssertNotEqual(sum, -1)
        XCTAssertTrue(file.residentPages(0..<bytes).allSatisfy { $0 })
        // Resident: nothing missing, in windows of 16 pages and across the file's end.
        XCTAssertFalse(file.prefetch(0..<bytes, scratch: scratch, capacity: 16))
        XCTAssertFalse(file.prefetch(bytes - 100..<bytes + 5000, scratch: scratch, capacity: 16))

        file.dropFromPageCache()
        if file.residentPages(0..<bytes).contains(true) {
            throw XCTSkip("dropping the file from the page cache does not work here")
        }
        XCTAssertTrue(file.prefetch(20 * MappedFile.pageSize..<30 * MappedFile.pageSize, scratch: scratch, capacity: 16))
    }
    /// `evict` gives back the pages of its range, unmapped and out of the page cache, and no
    /// others. (The page cache may hold a file in large folios, up to 2 MiB, which go only whole:
    /// the range here covers whole 2 MiB-aligned stretches.)
    func testEvictDropsOnlyItsRange() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("octet-evict-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let page = MappedFile.pageSize, bytes = 8 << 20, lo = 2 << 20, hi = 6 << 20
        try Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: url)
        let handle = try FileHandle(forUpdating: url)
        try handle.synchronize()   // clean pages: only those can be dropped
        try handle.close()
        let file = try MappedFile(path: url.path)
        var sum = 0
        for i in stride(from: 0, to: bytes, by: page) { sum &+= Int(file.base.load(fromByteOffset: i, as: UInt8.self)) }
        XCTAssertNotEqual(sum, -1)
        XCTAssertTrue(file.residentPages(0..<bytes).allSatisfy { $0 })

        file.evict(lo..<hi)
        let resident = file.residentPages(0..<bytes)
        let inside = resident[(lo / page)..<(hi / page)].filter { $0 }.count
        if inside == (hi - lo) / page {
            throw XCTSkip("this file system keeps dropped pages (tmpfs?): all \(inside) pages of the range still resident")
        }
        XCTAssertEqual(inside, 0, "pages of the evicted range still resident")
        XCTAssertTrue(resident[..<(lo / page)].allSatisfy { $0 } && resident[(hi / page)...].allSatisfy { $0 },
                      "pages outside the range were dropped")
        // The bytes read back unchanged.
        XCTAssertEqual(file.base.load(fromByteOffset: lo + 5 * page + 5, as: UInt8.self), UInt8(truncatingIfNeeded: (lo + 5 * page + 5) &* 7))
    }

    /// A prefetch larger than one WILLNEED call may read (``MappedFile/willNeedBytes``) still
    /// brings in every page: Linux reads at most that much per call and drops the rest of the
    /// request, so one call for the whole window left most of a large matrix to come in a page
    /// per fault.
    func testPrefetchOfALargeRangeBringsInEveryPage() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("octet-prefetch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let page = MappedFile.pageSize, bytes = 48 << 20
        try Data(repeating: 13, count: bytes).write(to: url)
        let handle = try FileHandle(forUpdating: url)
        try handle.synchronize()   // clean pages: only those can be dropped
        try handle.close()
        let file = try MappedFile(path: url.path)
        XCTAssertGreaterThanOrEqual(file.willNeedBytes, page)
        file.dropFromPageCache()
        if file.residentPages(0..<bytes).allSatisfy({ $0 }) {
            throw XCTSkip("dropping the file from the page cache does not work here (tmpfs?)")
        }
        if file.willNeedBytes >= bytes { throw XCTSkip("one WILLNEED call reads \(file.willNeedBytes) bytes here: nothing to split") }
        let capacity = 8192   // mincore windows of 32 MiB (4 KiB pages), larger than the kernel's per-call limit
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { scratch.deallocate() }
        XCTAssertTrue(file.prefetch(0..<bytes, scratch: scratch, capacity: capacity))
        // WILLNEED only starts the reads: wait for them (a bound on waiting, not a speed check).
        var resident = 0
        for _ in 0..<200 {
            resident = file.residentPages(0..<bytes).filter { $0 }.count
            if resident == bytes / page { break }
            usleep(50_000)
        }
        XCTAssertEqual(resident, bytes / page, "pages the prefetch never asked for (WILLNEED limit \(file.willNeedBytes) bytes)")
    }

    /// The prefetch piece is the file's device's per-call read limit: the larger of its
    /// `read_ahead_kb` and `max_sectors_kb` in sysfs (the disk's, for a partition).
    func testWillNeedBytesIsTheDevicesPerCallReadLimit() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("octet-willneed-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(repeating: 1, count: 8192).write(to: url)
        var st = stat()
        XCTAssertEqual(stat(url.path, &st), 0)
        let dev = UInt64(st.st_dev)
        guard dev >> 20 == 0 else { throw XCTSkip("device number \(dev) uses the large encoding") }
        let sys = "/sys/dev/block/\(dev >> 8):\(dev & 0xff)"
        func kib(_ name: String) -> Int? {
            for dir in [sys + "/queue/", sys + "/../queue/"] {
                if let text = try? String(contentsOfFile: dir + name, encoding: .utf8),
                   let v = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) { return v }
            }
            return nil
        }
        guard let ra = kib("read_ahead_kb"), let ms = kib("max_sectors_kb") else {
            throw XCTSkip("\(sys) has no queue limits (a file system without a block device?)")
        }
        let file = try MappedFile(path: url.path)
        XCTAssertEqual(file.willNeedBytes, max(max(ra, ms) * 1024, MappedFile.pageSize))
    }
}
#endif
