#if canImport(Glibc)
import Glibc
#endif

/// zstd compression through the system's libzstd, loaded at run time (no build-time dependency on
/// libzstd-dev; `apt-get install libzstd1` provides the library, Debian has it by default).
public enum Zstd {
    public struct Failure: Error, CustomStringConvertible { public let description: String }

    private typealias Bound = @convention(c) (Int) -> Int
    private typealias Compress = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int, Int32) -> Int
    private typealias Decompress = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int) -> Int
    private typealias ContentSize = @convention(c) (UnsafeRawPointer?, Int) -> UInt64
    private typealias IsError = @convention(c) (Int) -> UInt32

    private struct Library {
        let bound: Bound, compress: Compress, decompress: Decompress, contentSize: ContentSize, isError: IsError
    }

    private static let library: Library? = {
        guard let h = dlopen("libzstd.so.1", RTLD_NOW) ?? dlopen("libzstd.so", RTLD_NOW) else { return nil }
        func sym<T>(_ name: String, _: T.Type) -> T? { dlsym(h, name).map { unsafeBitCast($0, to: T.self) } }
        guard let b = sym("ZSTD_compressBound", Bound.self), let c = sym("ZSTD_compress", Compress.self),
              let d = sym("ZSTD_decompress", Decompress.self), let s = sym("ZSTD_getFrameContentSize", ContentSize.self),
              let e = sym("ZSTD_isError", IsError.self) else { return nil }
        return Library(bound: b, compress: c, decompress: d, contentSize: s, isError: e)
    }()

    private static func lib() throws -> Library {
        guard let l = library else { throw Failure(description: "libzstd is not installed (apt-get install libzstd1)") }
        return l
    }

    public static func compress(_ data: [UInt8], level: Int32 = 3) throws -> [UInt8] {
        let l = try lib()
        var out = [UInt8](repeating: 0, count: l.bound(data.count))
        let n = out.withUnsafeMutableBytes { o in data.withUnsafeBytes { i in l.compress(o.baseAddress, o.count, i.baseAddress, i.count, level) } }
        if l.isError(n) != 0 { throw Failure(description: "zstd compression failed") }
        out.removeSubrange(n...)
        return out
    }

    public static func decompress(_ data: [UInt8], maxSize: Int = 1 << 34) throws -> [UInt8] {
        let l = try lib()
        let size = data.withUnsafeBytes { l.contentSize($0.baseAddress, $0.count) }
        guard size < UInt64(maxSize) else { throw Failure(description: "not a zstd frame, or its size is unknown") }
        var out = [UInt8](repeating: 0, count: Int(size))
        let n = out.withUnsafeMutableBytes { o in data.withUnsafeBytes { i in l.decompress(o.baseAddress, o.count, i.baseAddress, i.count) } }
        if l.isError(n) != 0 || n != Int(size) { throw Failure(description: "corrupt zstd data") }
        return out
    }
}
