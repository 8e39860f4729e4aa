import Foundation
import XCTest
import Engine
import Generation
import Hummingbird
import HummingbirdTesting
@testable import Server
#if canImport(Glibc)
import Glibc
#endif

/// Over a real socket: what a client that hangs up does to its generation.
final class ServerLiveTests: XCTestCase {

    /// A blocking loopback HTTP/1.1 client on a raw socket, so the test controls exactly when
    /// the connection goes away.
    final class RawClient {
        let fd: Int32
        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw TestError("socket failed") }
            var tv = timeval(tv_sec: 60, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let r = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard r == 0 else { close(fd); throw TestError("connect failed: \(errno)") }
        }
        func send(_ s: String) {
            let bytes = Array(s.utf8)
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                off += n
            }
        }
        /// Reads until `marker` has been received (or the peer closes / times out).
        func read(until marker: String) -> String {
            var data = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 4096)
            while !String(decoding: data, as: UTF8.self).contains(marker) {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                data += buf[0..<n]
            }
            return String(decoding: data, as: UTF8.self)
        }
        func hangUp() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    }

    struct TestError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    func post(_ path: String, _ json: String) -> String {
        "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
    }

    func waitIdle(_ server: OpenAIServer, timeout: Double = 120) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while server.worker.stats.running || server.worker.stats.waiting > 0 {
            guard Date() < deadline else { throw TestError("the worker is still busy after \(timeout) s") }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    /// Streaming: the client reads a few chunks and hangs up; the generation stops long before
    /// max_tokens (within a token of the hang-up, give or take what was in flight).
    func testDisconnectMidStreamCancelsGeneration() async throws {
        let server = try makeServer { $0.contextLength = 1024 }
        defer { server.close() }
        // Count tokens after the hang-up: the worker's session reports each piece of text.
        let app = server.makeApplication()
        try await app.test(.live) { client in
            let port = try XCTUnwrap(client.port)
            let c = try RawClient(port: port)
            c.send(post("/v1/completions", #"{"prompt": "Once upon a time", "max_tokens": 900, "temperature": 2.0, "top_k": 0, "min_p": 0, "top_p": 1, "seed": 4, "logit_bias": {"2": -100}, "stream": true}"#))
            let head = c.read(until: "\"text\"")
            XCTAssertTrue(head.hasPrefix("HTTP/1.1 200"), head)
            c.hangUp()
            try await waitIdle(server)
            let s = server.worker.stats
            let last = try XCTUnwrap(s.last)
            XCTAssertEqual(last.finishReason, .cancelled)
            XCTAssertEqual(s.cancelled, 1)
            // The hang-up came right after the first piece of text; the worker stops at its next
            // token once the server notices, so only a handful of tokens are generated, not 900.
            XCTAssertLessThan(last.tokens.count, 100, "generated \(last.tokens.count) tokens after a hang-up at the first one")
            print("disconnect mid-stream: \(last.tokens.count) tokens generated of max_tokens 900")

            // The server carries on: a normal request right after works.
            let ok = try await client.call(.post, "/v1/completions", json: ["prompt": "Hi", "max_tokens": 3])
            XCTAssertEqual(ok.status, 200)
        }
    }

    /// Non-streaming: a client that gives up waiting cancels its queued or running job too.
    func testDisconnectWhileWaitingCancelsGeneration() async throws {
        let server = try makeServer { $0.contextLength = 1024 }
        defer { server.close() }
        try await server.makeApplication().test(.live) { client in
            let port = try XCTUnwrap(client.port)
            let c = try RawClient(port: port)
            c.send(post("/v1/completions", #"{"prompt": "Once upon a time", "max_tokens": 900, "temperature": 2.0, "top_k": 0, "min_p": 0, "top_p": 1, "seed": 4, "logit_bias": {"2": -100}}"#))
            while !server.worker.stats.running { try await Task.sleep(nanoseconds: 5_000_000) }
            try await Task.sleep(nanoseconds: 300_000_000)
            c.hangUp()
            try await waitIdle(server)
            let last = try XCTUnwrap(server.worker.stats.last)
            XCTAssertEqual(last.finishReason, .cancelled)
            XCTAssertLessThan(last.tokens.count, 900)
            print("disconnect while waiting: \(last.tokens.count) tokens generated of max_tokens 900")
        }
    }

    /// Over a real connection: the SSE framing and the connection handling.
    func testLiveRoundTrip() async throws {
        let server = try makeServer()
        defer { server.close() }
        try await server.makeApplication().test(.live) { client in
            // Keep-alive holds for plain routes…
            for _ in 0..<2 {
                let h = try await client.call(.get, "/health")
                XCTAssertEqual(h.status, 200)
            }
            // …while a completion's connection closes after it (the server watches the inbound side
            // for a hang-up while generating), and says so.
            let r = try await client.chat([user("Hi")], ["max_tokens": 4, "stream": true])
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.headers[.connection], "close")
            XCTAssertTrue(r.events.done)
        }
    }
}
