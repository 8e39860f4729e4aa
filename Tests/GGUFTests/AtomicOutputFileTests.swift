import Foundation
import XCTest
@testable import GGUF

final class AtomicOutputFileTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func listing() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() }

    func testAbortLeavesNothing() throws {
        let path = dir.appendingPathComponent("out.gguf").path
        let f = try AtomicOutputFile(path: path, size: 10_000)
        XCTAssertTrue(FileManager.default.fileExists(atPath: f.temporaryPath))
        XCTAssertTrue((f.temporaryPath as NSString).lastPathComponent.hasPrefix(".out.gguf.partial-"))
        XCTAssertEqual((f.temporaryPath as NSString).deletingLastPathComponent, dir.path, "temporary file must be beside the output")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "final name exists before commit")
        try f.write(Array(repeating: 7, count: 100), at: 0)
        f.abort()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: f.temporaryPath))
        XCTAssertEqual(try listing(), [])
        f.abort()  // idempotent
    }

    func testDeinitWithoutCommitRemovesTemporaryFile() throws {
        let path = dir.appendingPathComponent("gone.gguf").path
        var temp = ""
        do {
            let f = try AtomicOutputFile(path: path, size: 0)
            temp = f.temporaryPath
            try f.write([1, 2, 3], at: 0)
        }
        XCTAssertFalse(temp.isEmpty)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp))
        XCTAssertEqual(try listing(), [])
    }

    func testCommitRenames() throws {
        let path = dir.appendingPathComponent("done.gguf").path
        let f = try AtomicOutputFile(path: path, size: 8)
        try f.write([5, 6, 7, 8], at: 4)   // out of order, at absolute offsets
        try f.write([1, 2, 3, 4], at: 0)
        try f.commit()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data([1, 2, 3, 4, 5, 6, 7, 8]))
        XCTAssertFalse(FileManager.default.fileExists(atPath: f.temporaryPath))
        XCTAssertEqual(try listing(), ["done.gguf"])
        f.abort()  // after commit: must not delete the committed file
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
    }

    func testCommitReplacesExistingFile() throws {
        let path = dir.appendingPathComponent("x.gguf").path
        try Data([9, 9]).write(to: URL(fileURLWithPath: path))
        let f = try AtomicOutputFile(path: path, size: 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data([9, 9]), "old file untouched until commit")
        try f.write([1], at: 0)
        try f.commit()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data([1]))
    }

    func testMissingFolderIsAnError() {
        let path = dir.appendingPathComponent("no/such/folder/out.gguf").path
        XCTAssertThrowsError(try AtomicOutputFile(path: path, size: 0)) { e in
            XCTAssertTrue("\(e)".contains(path), "\(e)")
            XCTAssertTrue("\(e)".contains("cannot create output"), "\(e)")
        }
    }
}
