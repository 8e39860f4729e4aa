import XCTest
import Engine
import Kernels
@testable import Generation

/// `octet bench --json` reports what the performance issue asks for; the figures are measured,
/// so only their presence and sanity are asserted (no timed assertions).
final class BenchmarkTests: XCTestCase {
    func testResultCarriesEveryRequiredFieldAndSaneValues() throws {
        let model = try Shared.gguf(.q8_0)
        var bench = Benchmark(model: model, pool: Shared.pool)
        bench.probeBytes = 4 << 20
        let r = try bench.run(promptTokens: 8, genTokens: 4, repeats: 1)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as! [String: Any]
        for key in ["threads", "prompt_tokens", "gen_tokens", "prompt_tokens_per_s", "decode_tokens_per_s", "ttft_s",
                    "bytes_per_token", "effective_gbps", "probe_gbps", "fraction_of_limit", "kernel_gbps", "kernel_type"] {
            XCTAssertNotNil(json[key], "missing \(key)")
        }
        XCTAssertEqual(r.prompt_tokens, 8)
        XCTAssertEqual(r.gen_tokens, 4)
        XCTAssertGreaterThan(r.decode_tokens_per_s, 0)
        XCTAssertGreaterThan(r.probe_gbps, 0)
        XCTAssertGreaterThan(r.kernel_gbps, 0)
        XCTAssertEqual(r.kernel_type, "Q8_0", "the fixture's experts are Q8_0")
        // Bytes per token lie between the shared weights alone and the shared weights plus every expert.
        XCTAssertGreaterThan(r.bytes_per_token, 0)
        XCTAssertLessThanOrEqual(r.bytes_per_token, Double(try FileManager.default.attributesOfItem(atPath: model.path)[.size] as! Int))
    }

    /// The kernel-alone measurement runs for every weight type (random weights, no NaN in FP8).
    func testKernelBandwidthForEveryType() throws {
        let bench = Benchmark(model: try Shared.gguf(.q8_0), pool: Shared.pool)
        for type in TensorType.allCases {
            let gbps = bench.kernelBandwidth(type: type, bytes: 1 << 20)
            XCTAssertTrue(gbps.isFinite && gbps > 0, "\(type): \(gbps)")
        }
    }
}
