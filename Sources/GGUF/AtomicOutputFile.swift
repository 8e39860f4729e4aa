#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An output file that appears under its final name only when complete.
///
/// Data goes to a hidden temporary file in the target folder (so the final rename is atomic);
/// ``commit()`` syncs and renames it, anything else — an error, ``abort()``, a signal handled via
/// ``removeAllPending()`` — deletes it, so a half-written file never exists under the final name.
public final class AtomicOutputFile: @unchecked Sendable {
    public let finalPath: String
    public let temporaryPath: String
    private var fd: Int32
    private var finished = false

    /// Creates the temporary file and reserves `size` bytes on disk up front, so a full disk is
    /// reported before any work is done.
    public init(path: String, size: Int) throws {
        finalPath = path
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        temporaryPath = (dir.isEmpty ? "" : dir + "/") + ".\(base).partial-\(getpid())"
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw GGUFError(path, "cannot create output: \(String(cString: strerror(errno)))") }
        AtomicOutputFile.register(temporaryPath)
        if size > 0 {
            let rc = posix_fallocate(fd, 0, off_t(size))
            if rc == ENOSPC || rc == EDQUOT {
                abort()
                throw GGUFError(path, "disk full: the output needs \(AtomicOutputFile.gigabytes(size)) and there is not enough free space in \(dir.isEmpty ? "." : dir)")
            } else if rc != 0 && rc != EOPNOTSUPP && rc != EINVAL {
                abort()
                throw GGUFError(path, "cannot reserve \(size) bytes: \(String(cString: strerror(rc)))")
            }
        }
    }

    deinit { if !finished { abort() } }

    static func gigabytes(_ n: Int) -> String {
        let gb = Double(n) / 1e9
        return gb >= 1 ? "\((gb * 100).rounded() / 100) GB" : "\(n / 1_000_000) MB"
    }

    /// Writes `count` bytes at absolute `offset`; thread-safe (pwrite).
    public func write(_ p: UnsafeRawPointer, count: Int, at offset: Int) throws {
        var done = 0
        while done < count {
            let n = pwrite(fd, p + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw GGUFError(finalPath, e == ENOSPC ? "disk full while writing" : "write failed: \(String(cString: strerror(e)))")
            }
            done += n
        }
    }

    public func write(_ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try write($0.baseAddress!, count: $0.count, at: offset) }
    }

    /// Syncs the data and renames the file to its final name.
    public func commit() throws {
        precondition(!finished)
        if fsync(fd) != 0 {
            let e = errno; abort()
            throw GGUFError(finalPath, "sync failed: \(String(cString: strerror(e)))")
        }
        close(fd)
        if rename(temporaryPath, finalPath) != 0 {
            let e = errno; unlink(temporaryPath)
            AtomicOutputFile.unregister(temporaryPath); finished = true
            throw GGUFError(finalPath, "cannot rename the finished file into place: \(String(cString: strerror(e)))")
        }
        AtomicOutputFile.unregister(temporaryPath)
        finished = true
    }

    /// Deletes the temporary file.
    public func abort() {
        guard !finished else { return }
        finished = true
        close(fd)
        unlink(temporaryPath)
        AtomicOutputFile.unregister(temporaryPath)
    }

    // MARK: Signal-safe cleanup

    /// Paths of temporary files not yet committed, as C strings a signal handler may unlink.
    nonisolated(unsafe) private static var pending: [UnsafeMutablePointer<CChar>?] = Array(repeating: nil, count: 16)
    private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()

    private static func register(_ path: String) {
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        if let i = pending.firstIndex(where: { $0 == nil }) { pending[i] = strdup(path) }
    }

    private static func unregister(_ path: String) {
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        for i in pending.indices where pending[i].map({ String(cString: $0) == path }) == true {
            free(pending[i]); pending[i] = nil
        }
    }

    /// Unlinks every uncommitted temporary file. Async-signal-safe enough for a SIGINT handler
    /// (it only calls unlink on preallocated strings).
    public static func removeAllPending() {
        for p in pending { if let p { unlink(p) } }
    }
}
