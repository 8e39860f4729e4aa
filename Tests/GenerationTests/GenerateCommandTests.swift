import Foundation
import XCTest

/// `octet generate -p TEXT --temp 0 --kv-type f32` prints transformers' greedy continuation of each
/// plain-text reference prompt (reference.json: `text` → `generated_text`), run as a user runs it:
/// the built `octet` binary, reading the 16-bit checkpoint folder.
final class GenerateCommandTests: XCTestCase {
    /// The `octet` executable built next to this test bundle.
    static func octet() throws -> String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("octet").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw XCTSkip("no octet executable next to \(CommandLine.arguments[0]) (swift test builds it; a filtered build may not)")
    }

    func testGreedyGenerateCommandPrintsTheReferenceContinuation() throws {
        let octet = try Self.octet()
        let data = try Data(contentsOf: GenPaths.referenceJSON)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let prompts = try XCTUnwrap(json["prompts"] as? [[String: Any]])
        var checked = 0
        for p in prompts {
            guard let text = p["text"] as? String, let expected = p["generated_text"] as? String,
                  let n = (p["generated_ids"] as? [Any])?.count else { continue }   // the chat prompt has messages instead
            let r = try runProcess(octet, ["generate", GenPaths.fixture.path, "-p", text, "--temp", "0", "--kv-type", "f32", "-n", "\(n)"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout, expected + "\n", "octet generate -p \(text.debugDescription)")
            XCTAssertTrue(r.stderr.contains("tok/s"), "stats go to stderr: \(r.stderr)")
            checked += 1
        }
        XCTAssertEqual(checked, 3, "the three plain-text prompts (en, fr, code)")
    }
}
