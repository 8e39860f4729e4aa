import Foundation
import XCTest
import Engine
import Generation
import Hummingbird
import HummingbirdTesting
@testable import Server

enum ServerPaths {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixture = repositoryRoot.appendingPathComponent("Fixtures/tiny-mixtral")
}

/// The tiny fixture model, loaded once for all tests (it is immutable and mapped).
enum Shared {
    nonisolated(unsafe) private static var cached: Model?
    private static let lock = NSLock()
    static func model() throws -> Model {
        lock.lock(); defer { lock.unlock() }
        if let m = cached { return m }
        let m = try Model(path: ServerPaths.fixture.path)
        cached = m
        return m
    }
}

/// A server over the fixture with test-friendly defaults (small context, two threads).
func makeServer(_ configure: (inout ServerOptions) -> Void = { _ in }) throws -> OpenAIServer {
    var o = ServerOptions()
    o.threads = 2
    o.contextLength = 512
    o.host = "127.0.0.1"
    o.port = 0
    configure(&o)
    return try OpenAIServer(model: Shared.model(), options: o)
}

struct Reply {
    var status: Int
    var headers: HTTPFields
    var text: String
    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }
    /// `{"error": {"message", "type", "code"}}`
    var error: (message: String, type: String, code: String?)? {
        guard let e = json?["error"] as? [String: Any], let m = e["message"] as? String, let t = e["type"] as? String else { return nil }
        return (m, t, e["code"] as? String)
    }
    /// The JSON objects of a server-sent-event stream, and whether it ended with `data: [DONE]`.
    var events: (objects: [[String: Any]], done: Bool) {
        var objects: [[String: Any]] = []
        var done = false
        for block in text.components(separatedBy: "\n\n") where !block.isEmpty {
            guard block.hasPrefix("data: ") else { continue }
            let payload = String(block.dropFirst(6))
            if payload == "[DONE]" { done = true; continue }
            if let o = (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any] { objects.append(o) }
        }
        return (objects, done)
    }
    var message: String? {
        ((json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
    }
    var completionText: String? { (json?["choices"] as? [[String: Any]])?.first?["text"] as? String }
    var finishReason: String? { (json?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
    var usage: [String: Int]? { json?["usage"] as? [String: Int] }
    var extra: [String: Any]? { json?["x_octet"] as? [String: Any] }
}

extension TestClientProtocol {
    func call(_ method: HTTPRequest.Method, _ uri: String, json: Any? = nil, raw: String? = nil,
              headers: HTTPFields = [:]) async throws -> Reply {
        var body: ByteBuffer?
        var h = headers
        if let json {
            body = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json))
        } else if let raw {
            body = ByteBuffer(string: raw)
        }
        if body != nil && h[.contentType] == nil { h[.contentType] = "application/json" }
        return try await execute(uri: uri, method: method, headers: h, body: body) { r in
            Reply(status: Int(r.status.code), headers: r.headers, text: String(buffer: r.body))
        }
    }

    func chat(_ messages: [[String: String]], _ fields: [String: Any] = [:], headers: HTTPFields = [:]) async throws -> Reply {
        var body = fields
        body["messages"] = messages
        return try await call(.post, "/v1/chat/completions", json: body, headers: headers)
    }
}

func user(_ s: String) -> [String: String] { ["role": "user", "content": s] }
func assistant(_ s: String) -> [String: String] { ["role": "assistant", "content": s] }
func system(_ s: String) -> [String: String] { ["role": "system", "content": s] }
