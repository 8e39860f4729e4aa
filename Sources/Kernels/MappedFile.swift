#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file mapped read-only into memory. Pages are read from disk only when touched; the advice
/// methods tell the kernel which ranges will (or will not) be needed.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer
    private let fd: Int32

    public struct Failure: Error, CustomStringConvertible {
        public let path: String, message: String
        public var description: String { "\(path): \(message)" }
    }

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw Failure(path: path, message: String(cString: strerror(errno))) }
        var st = stat()
        if fstat(fd, &st) != 0 { close(fd); throw Failure(path: path, message: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { close(fd); throw Failure(path: path, message: "is a directory, expected a file") }
        let size = Int(st.st_size)
        if size == 0 { close(fd); throw Failure(path: path, message: "file is empty") }
        guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = String(cString: strerror(errno)); close(fd)
            throw Failure(path: path, message: "cannot map: \(e)")
        }
        self.fd = fd
        self.size = size
        self.base = UnsafeRawPointer(p)
        willNeedBytes = MappedFile.willNeedLimit(device: UInt64(st.st_dev))
    }

    /// The most one WILLNEED call brings in on this file's device, in bytes. Linux reads at most
    /// the larger of the device's readahead window (`read_ahead_kb`) and its largest request
    /// (`max_sectors_kb`) per call, and nothing of the rest: under `MADV_RANDOM` the pages
    /// beyond then come in one 4 KiB fault at a time (measured here: a 16 MiB WILLNEED then
    /// touch ran at 0.15 GB/s, the same range in 8 MiB calls at 1.5 GB/s). So ``prefetch(_:scratch:capacity:)``
    /// asks in pieces of this size. From sysfs; 128 KiB (the usual laptop readahead) where the
    /// device has no queue there (e.g. btrfs, network file systems).
    public let willNeedBytes: Int

    static func willNeedLimit(device: UInt64) -> Int {
        // glibc's encoding of dev_t (major and minor of up to 32 bits each).
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & 0xffff_f000)
        let minor = (device & 0xff) | ((device >> 12) & 0xffff_ff00)
        func kib(_ name: String) -> Int? {
            // A partition has no queue of its own: its disk's is one level up.
            let device = "/sys/dev/block/\(major):\(minor)"
            return readInteger(device + "/queue/" + name) ?? readInteger(device + "/../queue/" + name)
        }
        let limit = max(kib("read_ahead_kb") ?? 0, kib("max_sectors_kb") ?? 0) * 1024
        return limit > 0 ? min(max(limit, pageSize), 1 << 30) : 128 << 10
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), size)
        close(fd)
    }

    public static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Page-aligned cover of `range` clipped to the file.
    private func pages(_ range: Range<Int>) -> (UnsafeMutableRawPointer, Int)? {
        let lo = range.lowerBound / MappedFile.pageSize * MappedFile.pageSize
        let hi = min(size, range.upperBound)
        guard hi > lo else { return nil }
        return (UnsafeMutableRawPointer(mutating: base + lo), hi - lo)
    }

    public enum Advice { case normal, random, sequential, willNeed, dontNeed }

    /// madvise over the pages covering `range` (bytes from the start of the file).
    public func advise(_ advice: Advice, _ range: Range<Int>) {
        guard let (p, n) = pages(range) else { return }
        let a: Int32
        switch advice {
        case .normal: a = MADV_NORMAL
        case .random: a = MADV_RANDOM
        case .sequential: a = MADV_SEQUENTIAL
        case .willNeed: a = MADV_WILLNEED
        case .dontNeed: a = MADV_DONTNEED
        }
        _ = madvise(p, n, a)
    }

    /// WILLNEED over the pages covering `range`, skipped where mincore shows every page already
    /// resident: for resident pages WILLNEED still walks the page cache page by page, which cost
    /// ~10 % of decoding time when the experts are in memory, while mincore reads the page table.
    /// The calls go in pieces of at most ``willNeedBytes``, one for each piece with a page
    /// missing. `scratch` holds `capacity` bytes for mincore's vector (no allocation). Returns
    /// whether any page was missing.
    @discardableResult
    public func prefetch(_ range: Range<Int>, scratch: UnsafeMutablePointer<UInt8>, capacity: Int) -> Bool {
        guard let (p, n) = pages(range), capacity > 0 else { return false }
        let page = MappedFile.pageSize, piecePages = max(1, willNeedBytes / page)
        var missing = false
        var offset = 0
        while offset < n {
            let length = min(n - offset, capacity * page)
            let count = (length + page - 1) / page
            // Where mincore cannot answer (not a mapped file range), every piece is asked for.
            let known = mincore(p + offset, length, scratch) == 0
            var i = 0
            while i < count {
                let end = min(count, i + piecePages)
                if !known || !MappedFile.allResident(scratch + i, end - i) {
                    _ = madvise(p + offset + i * page, min(length - i * page, (end - i) * page), MADV_WILLNEED)
                    missing = true
                }
                i = end
            }
            offset += length
        }
        return missing
    }

    /// Whether all `count` entries of a mincore vector have the resident bit, 8 at a time.
    @inline(__always)
    static func allResident(_ v: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        var i = 0
        while i + 8 <= count {
            if UnsafeRawPointer(v + i).loadUnaligned(as: UInt64.self) & 0x0101_0101_0101_0101 != 0x0101_0101_0101_0101 { return false }
            i += 8
        }
        while i < count { if v[i] & 1 == 0 { return false }; i += 1 }
        return true
    }

    /// Unmaps the pages inside `range` and drops them from the page cache (clean pages only):
    /// memory given back in one call, instead of by the kernel's reclaim page by page. Only whole
    /// pages go (and the file's last page, if the range reaches the end): a page shared with a
    /// neighbouring range stays.
    public func evict(_ range: Range<Int>) {
        let page = MappedFile.pageSize
        let lo = (max(0, range.lowerBound) + page - 1) / page * page
        let hi = range.upperBound >= size ? size : range.upperBound / page * page
        guard hi > lo else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + lo), hi - lo, MADV_DONTNEED)
        _ = posix_fadvise(fd, off_t(lo), off_t(hi - lo), Int32(POSIX_FADV_DONTNEED))
    }

    /// Asks the kernel to drop this file's pages from the page cache (clean pages only).
    public func dropFromPageCache() {
        _ = madvise(UnsafeMutableRawPointer(mutating: base), size, MADV_DONTNEED)
        _ = posix_fadvise(fd, 0, off_t(size), Int32(POSIX_FADV_DONTNEED))
    }

    /// Whether each page covering `range` is resident in memory (mincore).
    public func residentPages(_ range: Range<Int>) -> [Bool] {
        guard let (p, n) = pages(range) else { return [] }
        let count = (n + MappedFile.pageSize - 1) / MappedFile.pageSize
        var vec = [UInt8](repeating: 0, count: count)
        _ = vec.withUnsafeMutableBufferPointer { mincore(p, n, $0.baseAddress) }
        return vec.map { $0 & 1 != 0 }
    }
}

/// The decimal integer a small text file (a sysfs attribute) starts with, if any.
private func readInteger(_ path: String) -> Int? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 64)
    guard fgets(&line, 64, f) != nil else { return nil }
    return String(cString: line).split(whereSeparator: { $0 == " " || $0 == "\n" }).first.flatMap { Int($0) }
}
