#if canImport(Glibc)
import Glibc
#endif

/// Checks that this CPU can run the kernels, which are compiled for AVX2, FMA and F16C.
public enum CPUFeatures {
    /// The required features this CPU lacks (empty when all are present, or when the check does
    /// not apply on this platform).
    public static func missing() -> [String] {
        #if arch(x86_64) && os(Linux)
        guard let text = try? String(contentsOfFileNoFoundation: "/proc/cpuinfo") else { return [] }
        guard let flagsLine = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        let flags = Set(flagsLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).map(String.init))
        return ["avx2", "fma", "f16c"].filter { !flags.contains($0) }
        #else
        return []
        #endif
    }
}

extension String {
    /// Reads a small text file with plain POSIX calls (Kernels does not import Foundation).
    init?(contentsOfFileNoFoundation path: String) throws {
        let fd = open(path, O_RDONLY)
        if fd < 0 { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
            if n <= 0 { break }
            bytes.append(contentsOf: buf[0..<n])
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}
