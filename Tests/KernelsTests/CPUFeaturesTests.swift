@testable import Kernels
import XCTest

/// /proc/cpuinfo parsing: the required flags and the CPU family behind the float decode prefetch.
final class CPUFeaturesTests: XCTestCase {
    let zen5 = """
        processor\t: 0
        vendor_id\t: AuthenticAMD
        cpu family\t: 26
        model\t\t: 2
        flags\t\t: fpu avx2 fma f16c avx512f
        
        processor\t: 1
        vendor_id\t: GenuineIntel
        """

    func testFieldsOfTheFirstCPU() {
        let lines = CPUFeatures.lines(zen5)
        XCTAssertEqual(lines.count, 5, "the first CPU's lines only")
        XCTAssertEqual(CPUFeatures.field("vendor_id", in: lines), "AuthenticAMD")
        XCTAssertEqual(CPUFeatures.field("cpu family", in: lines), "26")
        XCTAssertEqual(CPUFeatures.field("model", in: lines), "2", "\"model\" is not \"model name\"")
        XCTAssertEqual(CPUFeatures.field("flags", in: lines), "fpu avx2 fma f16c avx512f")
        XCTAssertNil(CPUFeatures.field("microcode", in: lines))
    }

    func testFloatDecodePrefetchTarget() {
        XCTAssertTrue(CPUFeatures.prefetchesIntoL1(CPUFeatures.lines(zen5)))
        let older = zen5.replacingOccurrences(of: "cpu family\t: 26", with: "cpu family\t: 25")
        XCTAssertFalse(CPUFeatures.prefetchesIntoL1(CPUFeatures.lines(older)))
        let intel = zen5.replacingOccurrences(of: "AuthenticAMD", with: "GenuineIntel")
        XCTAssertFalse(CPUFeatures.prefetchesIntoL1(CPUFeatures.lines(intel)))
        XCTAssertFalse(CPUFeatures.prefetchesIntoL1([]))
    }

    func testThisMachineHasTheRequiredFeatures() throws {
        #if arch(x86_64) && os(Linux)
        XCTAssertEqual(CPUFeatures.missing(), [], "the build machine runs the kernels")
        XCTAssertNotNil(CPUFeatures.field("vendor_id", in: CPUFeatures.cpuinfo))
        #else
        throw XCTSkip("reads /proc/cpuinfo of x86-64 Linux")
        #endif
    }
}
