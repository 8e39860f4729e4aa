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

    /// Whether this CPU has the AVX-512 subsets AVX512Kernels is built for: F, BW, VL, DQ and VNNI
    /// (`avx512f` … `avx512_vnni` in /proc/cpuinfo, which Linux lists only when it also saves the
    /// registers). Intel since Cascade Lake and Ice Lake, AMD since Zen 4.
    public static let hasAVX512: Bool = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"].allSatisfy { flags?.contains($0) ?? false }

    /// The instruction sets the products can run on. Every route gives the same bits (the wider
    /// ones hold the AVX2 kernels' 8-lane values side by side), so a model's output does not
    /// depend on the CPU; they differ only in speed.
    public enum KernelRoute: String, CaseIterable, Sendable {
        /// Haswell: AVX2, FMA, F16C (required).
        case avx2
        /// AVX2, with the Q8_0 products on AVX-VNNI (``Q8_0VNNI`` in Q8_0Kernels).
        case avxVNNI = "avx-vnni"
        /// Float, FP8 and Q8_0 products on AVX-512 (AVX512Kernels).
        case avx512
    }

    /// The routes this CPU can run, slowest first.
    public static let availableRoutes: [KernelRoute] =
        [.avx2] + (hasAVXVNNI ? [.avxVNNI] : []) + (hasAVX512 ? [.avx512] : [])

    /// The route in use: the environment's `OCTET_KERNELS` (`avx2`, `avx-vnni`, `avx512`) where
    /// this CPU has it, else the fastest the CPU has (an unknown or unavailable value is named on
    /// standard error, so an A/B never runs the wrong route unnoticed). For comparing speeds;
    /// tests set it to run every route. Set it only while no product runs, and only to one of
    /// ``availableRoutes``: another stops the process here rather than by an illegal instruction.
    public nonisolated(unsafe) static var route: KernelRoute = routeFromEnvironment() {
        didSet { precondition(availableRoutes.contains(route), "this CPU cannot run the \(route.rawValue) kernels") }
    }

    static func routeFromEnvironment() -> KernelRoute {
        let fastest = availableRoutes.last!
        guard let v = getenv("OCTET_KERNELS").map({ String(cString: $0) }), !v.isEmpty else { return fastest }
        if let r = KernelRoute(rawValue: v), availableRoutes.contains(r) { return r }
        let why = KernelRoute(rawValue: v) == nil
            ? "is not a route (avx2, avx-vnni, avx512)"
            : "needs CPU features this machine lacks (it has: \(availableRoutes.map(\.rawValue).joined(separator: ", ")))"
        fputs("octet: OCTET_KERNELS=\(v) \(why); using \(fastest.rawValue)\n", stderr)
        return fastest
    }

    /// Whether the products run on AVX-512.
    @inlinable
    public static var usesAVX512: Bool { route == .avx512 }

    /// Whether the Q8_0 products run on AVX-VNNI.
    @inlinable
    public static var q8_0UsesVNNI: Bool { route == .avxVNNI }

    /// Whether the float decode kernel prefetches the next rows into L1 (`prefetcht0`) rather
    /// than into L2 only (`prefetcht1`). Measured (F16 decode, same-run A/Bs): AMD Zen 5 (family
    /// 26) decodes 1.03-1.19× faster with L1; an Intel Xeon (family 6, model 207) 1.15-1.28× and
    /// an AVX2-only AMD EPYC 1.04-1.10× faster with L2. So L1 on AMD from family 26, else L2.
    public static let floatDecodePrefetchesIntoL1: Bool = prefetchesIntoL1(cpuinfo)

    static func prefetchesIntoL1(_ cpuinfo: [Substring]) -> Bool {
        field("vendor_id", in: cpuinfo) == "AuthenticAMD" && (field("cpu family", in: cpuinfo).flatMap { Int($0) } ?? 0) >= 26
    }

    /// The first `flags` line of /proc/cpuinfo (nil where there is none to read).
    static let flags: Set<String>? = field("flags", in: cpuinfo).map {
        Set($0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
    }

    /// The first CPU's lines of /proc/cpuinfo (empty where there is none to read).
    static let cpuinfo: [Substring] = {
        #if arch(x86_64) && os(Linux)
        guard let text = try? String(contentsOfFileNoFoundation: "/proc/cpuinfo") else { return [] }
        return lines(text)
        #else
        return []
        #endif
    }()

    /// The lines of the first CPU in a /proc/cpuinfo text (up to the first empty line).
    static func lines(_ text: String) -> [Substring] {
        Array(text.split(separator: "\n", omittingEmptySubsequences: false).prefix { !$0.isEmpty })
    }

    /// The value of the first /proc/cpuinfo line named `name` (`name<tabs>: value`).
    static func field(_ name: String, in cpuinfo: [Substring]) -> String? {
        for line in cpuinfo {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].trimming(" \t") == name {
                return String(line[line.index(after: colon)...].trimming(" \t"))
            }
        }
        return nil
    }
}

extension StringProtocol {
    /// The text without the leading and trailing characters in `set`.
    func trimming(_ set: String) -> SubSequence {
        var t = self[...]
        while let f = t.first, set.contains(f) { t.removeFirst() }
        while let l = t.last, set.contains(l) { t.removeLast() }
        return t
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
