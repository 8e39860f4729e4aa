#if canImport(Glibc)
import Glibc
#endif

/// Checks that this CPU can run the kernels, which are compiled for AVX2, FMA and F16C, and
/// which optional kernels it can take.
public enum CPUFeatures {
    /// The required features this CPU lacks (empty when all are present, or when the check does
    /// not apply on this platform).
    public static func missing() -> [String] {
        guard let flags = flags else { return [] }
        return ["avx2", "fma", "f16c"].filter { !flags.contains($0) }
    }

    /// Whether this CPU has AVX-VNNI (`avx_vnni` in /proc/cpuinfo): the VEX-encoded 256-bit
    /// `vpdpbusd` of Intel since Alder Lake and AMD since Zen 5. (AVX-512 VNNI alone, as on Zen 4,
    /// does not count: its encoding is another.)
    public static let hasAVXVNNI: Bool = flags?.contains("avx_vnni") ?? false

    /// Whether the Q8_0 products run on AVX-VNNI (``Q8_0VNNI`` in Q8_0Kernels): by default when the CPU has
    /// it and the environment does not set `OCTET_KERNELS=avx2`. Both routes give the same bits;
    /// the variable is for comparing their speed, and tests set this to run both. Set it only
    /// while no product runs, and never to true without ``hasAVXVNNI``.
    public nonisolated(unsafe) static var q8_0UsesVNNI: Bool = {
        if let v = getenv("OCTET_KERNELS"), String(cString: v) == "avx2" { return false }
        return hasAVXVNNI
    }()

    /// The name of the Q8_0 route in use, for reports: "avx-vnni" or "avx2".
    public static var q8_0Route: String { q8_0UsesVNNI ? "avx-vnni" : "avx2" }

    /// The first `flags` line of /proc/cpuinfo (nil where there is none to read).
    static let flags: Set<String>? = {
        #if arch(x86_64) && os(Linux)
        guard let text = try? String(contentsOfFileNoFoundation: "/proc/cpuinfo") else { return nil }
        guard let flagsLine = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        return Set(flagsLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).map(String.init))
        #else
        return nil
        #endif
    }()
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
