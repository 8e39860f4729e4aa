import Foundation
import XCTest
import Engine
import Generation
import Hummingbird
import HummingbirdTesting
@testable import Server

/// The routes, in-process (Hummingbird's router test framework), over the tiny fixture model.
final class ServerRouteTests: XCTestCase {

    func testHealth() async throws {
        let server = try makeServer()
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            let r = try await client.call(.get, "/health")
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.json?["status"] as? String, "ok")
            XCTAssertEqual(r.json?["model"] as? String, "tiny-mixtral")
        }
    }

    func testModels() async throws {
        let server = try makeServer()
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            let r = try await client.call(.get, "/v1/models")
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.json?["object"] as? String, "list")
            let data = try XCTUnwrap(r.json?["data"] as? [[String: Any]])
            XCTAssertEqual(data.count, 1)
            XCTAssertEqual(data.first?["id"] as? String, "tiny-mixtral")
            XCTAssertEqual(data.first?["object"] as? String, "model")
            let one = try await client.call(.get, "/v1/models/tiny-mixtral")
            XCTAssertEqual(one.status, 200)
            XCTAssertEqual(one.json?["id"] as? String, "tiny-mixtral")
            let missing = try await client.call(.get, "/v1/models/gpt-4")
            XCTAssertEqual(missing.status, 404)
            XCTAssertEqual(missing.error?.code, "model_not_found")
        }
    }

    func testChatNonStreamingUsage() async throws {
        let server = try makeServer()
        defer { server.close() }
        let messages = [system("Be brief."), user("Write a short poem about the sea."), assistant("The sea is blue."), user("Another one.")]
        let expectedPrompt = try server.template.tokens(
            [ChatMessage(role: .system, content: "Be brief."), ChatMessage(role: .user, content: "Write a short poem about the sea."),
             ChatMessage(role: .assistant, content: "The sea is blue."), ChatMessage(role: .user, content: "Another one.")],
            tokenizer: server.tokenizer)
        try await server.makeApplication().test(.router) { client in
            let r = try await client.chat(messages, ["model": "tiny-mixtral", "max_tokens": 12, "temperature": 0])
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(r.json?["object"] as? String, "chat.completion")
            XCTAssertTrue((r.json?["id"] as? String)?.hasPrefix("chatcmpl-") ?? false)
            XCTAssertEqual(r.json?["model"] as? String, "tiny-mixtral")
            let usage = try XCTUnwrap(r.usage)
            XCTAssertEqual(usage["prompt_tokens"], expectedPrompt.count)
            let completion = try XCTUnwrap(usage["completion_tokens"])
            XCTAssertGreaterThan(completion, 0)
            XCTAssertLessThanOrEqual(completion, 12)
            XCTAssertEqual(usage["total_tokens"], expectedPrompt.count + completion)
            let finish = try XCTUnwrap(r.finishReason)
            XCTAssertTrue(finish == "stop" || finish == "length")
            if finish == "length" { XCTAssertEqual(completion, 12) }
            XCTAssertNotNil(r.message)
            let choice = (r.json?["choices"] as? [[String: Any]])?.first
            XCTAssertEqual((choice?["message"] as? [String: Any])?["role"] as? String, "assistant")
            // The same answer as the Session gives directly, greedy.
            XCTAssertNotNil(r.headers[.init("x-octet-reused-tokens")!])
        }
        let direct = try Session(model: Shared.model(), pool: server.pool, contextLength: 512, sampling: .greedy)
        var greedy = SamplingOptions(); greedy.temperature = 0
        direct.sampling = greedy
        let expected = try direct.generate(prompt: expectedPrompt, maxTokens: 12)
        try await server.makeApplication().test(.router) { client in
            let r = try await client.chat(messages, ["max_tokens": 12, "temperature": 0])
            XCTAssertEqual(r.message, expected.text)
        }
    }

    func testChatStreaming() async throws {
        let server = try makeServer()
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            let fields: [String: Any] = ["max_tokens": 16, "temperature": 0.8, "seed": 3]
            let plain = try await client.chat([user("Tell me a story.")], fields)
            XCTAssertEqual(plain.status, 200)
            var streamFields = fields
            streamFields["stream"] = true
            streamFields["stream_options"] = ["include_usage": true]
            let r = try await client.chat([user("Tell me a story.")], streamFields)
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.headers[.contentType], "text/event-stream")
            let (objects, done) = r.events
            XCTAssertTrue(done, "the stream must end with data: [DONE]")
            XCTAssertTrue(r.text.hasSuffix("data: [DONE]\n\n"))
            XCTAssertGreaterThanOrEqual(objects.count, 3)
            let ids = Set(objects.compactMap { $0["id"] as? String })
            XCTAssertEqual(ids.count, 1, "every chunk carries the same completion id")
            var text = ""
            var finishes: [String] = []
            var usage: [String: Int]?
            for o in objects {
                XCTAssertEqual(o["object"] as? String, "chat.completion.chunk")
                if let u = o["usage"] as? [String: Int] { usage = u; continue }
                let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
                XCTAssertEqual(choice["index"] as? Int, 0)
                if let f = choice["finish_reason"] as? String { finishes.append(f) }
                text += ((choice["delta"] as? [String: Any])?["content"] as? String) ?? ""
            }
            XCTAssertEqual(((objects.first?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["role"] as? String, "assistant")
            XCTAssertEqual(finishes.count, 1)
            XCTAssertEqual(finishes.first, plain.finishReason)
            XCTAssertEqual(text, plain.message, "streamed pieces add up to the non-streamed answer (same seed)")
            XCTAssertEqual(usage, plain.usage)
        }
    }

    func testCompletions() async throws {
        let server = try makeServer()
        defer { server.close() }
        let prompt = "Once upon a time"
        let ids = [server.tokenizer.vocabulary.bosID] + server.tokenizer.encode(prompt)
        try await server.makeApplication().test(.router) { client in
            let r = try await client.call(.post, "/v1/completions",
                                          json: ["model": "tiny-mixtral", "prompt": prompt, "max_tokens": 10, "temperature": 0])
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(r.json?["object"] as? String, "text_completion")
            XCTAssertTrue((r.json?["id"] as? String)?.hasPrefix("cmpl-") ?? false)
            let text = try XCTUnwrap(r.completionText)
            XCTAssertEqual(r.usage?["prompt_tokens"], ids.count)
            XCTAssertEqual(r.usage?["total_tokens"], ids.count + (r.usage?["completion_tokens"] ?? -1))

            let s = try await client.call(.post, "/v1/completions",
                                          json: ["prompt": [prompt], "max_tokens": 10, "temperature": 0, "stream": true])
            XCTAssertEqual(s.status, 200)
            let (objects, done) = s.events
            XCTAssertTrue(done)
            var streamed = ""
            for o in objects {
                XCTAssertEqual(o["object"] as? String, "text_completion")
                streamed += ((o["choices"] as? [[String: Any]])?.first?["text"] as? String) ?? ""
            }
            XCTAssertEqual(streamed, text)

            // Token ids work as a prompt too.
            let t = try await client.call(.post, "/v1/completions",
                                          json: ["prompt": ids.map(Int.init), "max_tokens": 10, "temperature": 0])
            XCTAssertEqual(t.completionText, text)
        }
    }

    func testSeedReproducibility() async throws {
        let server = try makeServer()
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            let fields: [String: Any] = ["max_tokens": 16, "temperature": 0.8, "seed": 7]
            let a = try await client.chat([user("Write a short poem about the sea.")], fields)
            // Something else in between, so the cache and sampler state differ.
            _ = try await client.chat([user("Something else entirely.")], ["max_tokens": 5, "temperature": 1.2, "seed": 99])
            let b = try await client.chat([user("Write a short poem about the sea.")], fields)
            XCTAssertEqual(a.status, 200)
            XCTAssertEqual(b.status, 200)
            XCTAssertNotNil(a.message)
            XCTAssertEqual(a.message, b.message)
            XCTAssertEqual(a.extra?["seed"] as? String, "7")
            // Completions too.
            let c1 = try await client.call(.post, "/v1/completions", json: ["prompt": "The sea", "max_tokens": 12, "temperature": 0.8, "seed": 7])
            let c2 = try await client.call(.post, "/v1/completions", json: ["prompt": "The sea", "max_tokens": 12, "temperature": 0.8, "seed": 7])
            XCTAssertEqual(c1.completionText, c2.completionText)
        }
    }

    func testStopStrings() async throws {
        let server = try makeServer()
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            let fields: [String: Any] = ["max_tokens": 20, "temperature": 0]
            let full = try await client.call(.post, "/v1/completions", json: fields.merging(["prompt": "Once upon a time"]) { a, _ in a })
            let text = try XCTUnwrap(full.completionText)
            // Pick a stop string from the middle of the greedy answer.
            let chars = Array(text)
            XCTAssertGreaterThan(chars.count, 8, "the fixture should say something: \(text)")
            let start = chars.count / 2
            let stop = String(chars[start..<min(start + 3, chars.count)])
            let expected = String(text[..<text.range(of: stop)!.lowerBound])
            for stream in [false, true] {
                var f = fields
                f["prompt"] = "Once upon a time"
                f["stop"] = ["\u{1}never", stop]
                f["stream"] = stream
                let r = try await client.call(.post, "/v1/completions", json: f)
                XCTAssertEqual(r.status, 200)
                if stream {
                    let (objects, _) = r.events
                    let streamed = objects.map { ((($0["choices"] as? [[String: Any]])?.first?["text"] as? String) ?? "") }.joined()
                    XCTAssertEqual(streamed, expected)
                    XCTAssertEqual(objects.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }, ["stop"])
                } else {
                    XCTAssertEqual(r.completionText, expected)
                    XCTAssertEqual(r.finishReason, "stop")
                }
            }
            // A single string works as well as a list.
            var f = fields
            f["messages"] = [user("Hello")]
            let plain = try await client.call(.post, "/v1/chat/completions", json: f)
            if let m = plain.message, m.count > 2 {
                f["stop"] = String(m.dropFirst().prefix(1))
                let r = try await client.call(.post, "/v1/chat/completions", json: f)
                XCTAssertEqual(r.finishReason, "stop")
                XCTAssertFalse(r.message!.contains(f["stop"] as! String))
            }
        }
    }

    func testPromptReuse() async throws {
        let server = try makeServer()
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            let first = try await client.chat([user("Write a short poem about the sea.")], ["max_tokens": 16, "temperature": 0])
            XCTAssertEqual(first.status, 200)
            let answer = try XCTUnwrap(first.message)
            let promptTokens = try XCTUnwrap(first.usage?["prompt_tokens"])
            let second = try await client.chat([user("Write a short poem about the sea."), assistant(answer), user("Now one about the moon.")],
                                               ["max_tokens": 8, "temperature": 0])
            XCTAssertEqual(second.status, 200)
            let reused = try XCTUnwrap(second.extra?["reused_tokens"] as? Int)
            XCTAssertGreaterThan(reused, 0)
            XCTAssertGreaterThanOrEqual(reused, promptTokens, "the whole first prompt comes from the cache")
            XCTAssertEqual(second.headers[.init("x-octet-reused-tokens")!], String(reused))
            XCTAssertEqual(second.extra?["evaluated_prompt_tokens"] as? Int, (second.usage?["prompt_tokens"] ?? 0) - reused)
        }
    }

    func testAuth() async throws {
        let server = try makeServer { $0.apiKey = "sekrit" }
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            let none = try await client.call(.get, "/v1/models")
            XCTAssertEqual(none.status, 401)
            XCTAssertEqual(none.error?.type, "authentication_error")
            let wrong = try await client.call(.get, "/v1/models", headers: [.authorization: "Bearer nope"])
            XCTAssertEqual(wrong.status, 401)
            let chat = try await client.chat([user("Hi")], ["max_tokens": 2])
            XCTAssertEqual(chat.status, 401)
            let ok = try await client.call(.get, "/v1/models", headers: [.authorization: "Bearer sekrit"])
            XCTAssertEqual(ok.status, 200)
            let okChat = try await client.chat([user("Hi")], ["max_tokens": 2], headers: [.authorization: "Bearer sekrit"])
            XCTAssertEqual(okChat.status, 200)
            let health = try await client.call(.get, "/health")
            XCTAssertEqual(health.status, 200, "/health stays open for probes")
        }
        // Without a key, no header is needed.
        let open = try makeServer()
        defer { open.close() }
        try await open.makeApplication().test(.router) { client in
            let r = try await client.call(.get, "/v1/models")
            XCTAssertEqual(r.status, 200)
        }
    }

    func testBodyTooLarge() async throws {
        let server = try makeServer { $0.maxBodyBytes = 4096 }
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            let big = String(repeating: "word ", count: 2000)
            let r = try await client.chat([user(big)], ["max_tokens": 2])
            XCTAssertEqual(r.status, 413)
            XCTAssertEqual(r.error?.code, "request_too_large")
            XCTAssertEqual(r.error?.type, "invalid_request_error")
            // The server still works afterwards.
            let ok = try await client.chat([user("Hi")], ["max_tokens": 2])
            XCTAssertEqual(ok.status, 200)
        }
    }

    func testBadRequests() async throws {
        let server = try makeServer { $0.contextLength = 64 }
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            func expect400(_ r: Reply, code: String? = nil, _ line: UInt = #line) {
                XCTAssertEqual(r.status, 400, r.text, line: line)
                XCTAssertNotNil(r.error, "OpenAI error JSON expected: \(r.text)", line: line)
                XCTAssertEqual(r.error?.type, "invalid_request_error", line: line)
                if let code { XCTAssertEqual(r.error?.code, code, line: line) }
            }
            expect400(try await client.call(.post, "/v1/chat/completions", raw: "{\"messages\": [", headers: [:]), code: "invalid_json")
            expect400(try await client.call(.post, "/v1/chat/completions", raw: "", headers: [:]), code: "invalid_json")
            expect400(try await client.call(.post, "/v1/chat/completions", raw: "[1, 2]"))
            expect400(try await client.chat([user("Hi")], ["max_tokens": "ten"]), code: "invalid_type")
            expect400(try await client.chat([user("Hi")], ["temperature": "hot"]), code: "invalid_type")
            expect400(try await client.chat([user("Hi")], ["stream": "yes"]), code: "invalid_type")
            expect400(try await client.chat([user("Hi")], ["stop": 5]), code: "invalid_type")
            expect400(try await client.chat([user("Hi")], ["seed": "x"]), code: "invalid_type")
            expect400(try await client.chat([user("Hi")], ["logit_bias": ["two": -100]]))
            expect400(try await client.chat([user("Hi")], ["logit_bias": ["40000": 1]]))
            expect400(try await client.chat([user("Hi")], ["logit_bias": ["2": -101]]))
            expect400(try await client.call(.post, "/v1/chat/completions", json: ["messages": [["role": "user", "content": 5]]]), code: "invalid_type")
            expect400(try await client.call(.post, "/v1/chat/completions", json: ["messages": "hello"]), code: "invalid_type")
            expect400(try await client.call(.post, "/v1/chat/completions", json: ["max_tokens": 3]))
            expect400(try await client.chat([], [:]), code: "empty_messages")
            expect400(try await client.chat([user("Hi")], ["model": "gpt-4"]), code: "model_not_found")
            expect400(try await client.chat([user("Hi"), user("Hi again")], [:]), code: "invalid_messages")
            expect400(try await client.chat([assistant("Hi"), user("Hi")], [:]), code: "invalid_messages")
            expect400(try await client.chat([user("Hi"), assistant("Hello")], [:]), code: "invalid_messages")
            expect400(try await client.chat([["role": "tool", "content": "x"]], [:]), code: "invalid_messages")
            expect400(try await client.chat([user("Hi")], ["max_tokens": 65]), code: "context_length_exceeded")
            expect400(try await client.chat([user("Hi")], ["max_tokens": 0]))
            expect400(try await client.chat([user("Hi")], ["temperature": 5]))
            expect400(try await client.chat([user("Hi")], ["n": 2]))
            expect400(try await client.chat([user("Hi")], ["stop": String(repeating: "x", count: 300)]))
            expect400(try await client.chat([user(String(repeating: "tell me more ", count: 40))], [:]), code: "context_length_exceeded")
            expect400(try await client.call(.post, "/v1/completions", json: ["prompt": 5]), code: "invalid_type")
            expect400(try await client.call(.post, "/v1/completions", json: ["prompt": [99_999_999]]))
            expect400(try await client.call(.post, "/v1/completions", json: ["prompt": "x", "model": "nope"]), code: "model_not_found")

            // Names the model answers to.
            for name in ["tiny-mixtral", "default", ServerPaths.fixture.path] {
                let r = try await client.chat([user("Hi")], ["model": name, "max_tokens": 2])
                XCTAssertEqual(r.status, 200, name)
            }
            // max_tokens is clamped to what is left of the context.
            let clamp = try await client.chat([user("Hi")], ["max_tokens": 64, "temperature": 0])
            XCTAssertEqual(clamp.status, 200)
            XCTAssertLessThanOrEqual((clamp.usage?["total_tokens"]) ?? 99, 64)
            // Unknown routes and methods answer in the same error shape.
            let nf = try await client.call(.get, "/v1/nothing")
            XCTAssertEqual(nf.status, 404)
            XCTAssertNotNil(nf.error)
            // Unknown fields are ignored.
            let extra = try await client.chat([user("Hi")], ["max_tokens": 2, "frequency_penalty": 0, "user": "me", "logit_bias": [String: Int]()])
            XCTAssertEqual(extra.status, 200)
            // After all that, the server still answers.
            let health = try await client.call(.get, "/health")
            XCTAssertEqual(health.status, 200)
        }
    }

    func testQueueFull() async throws {
        let server = try makeServer { $0.maxQueue = 1 }
        defer { server.close() }
        // Hold the first job running until released, so the queue state is deterministic.
        let gate = DispatchSemaphore(value: 0)
        let holding = NSLock()
        nonisolated(unsafe) var held = false
        server.worker.onJobStart = { _ in
            holding.lock(); let first = !held; held = true; holding.unlock()
            if first { gate.wait() }
        }
        try await server.makeApplication().test(.router) { client in
            async let first = client.chat([user("Hi")], ["max_tokens": 4])
            while !server.worker.stats.running { try await Task.sleep(nanoseconds: 5_000_000) }
            async let second = client.chat([user("Hi")], ["max_tokens": 4])
            while server.worker.stats.waiting < 1 { try await Task.sleep(nanoseconds: 5_000_000) }
            // One running, one waiting: the next ones are refused.
            let third = try await client.chat([user("Hi")], ["max_tokens": 4])
            let fourth = try await client.call(.post, "/v1/completions", json: ["prompt": "x", "max_tokens": 4, "stream": true])
            XCTAssertEqual(third.status, 429)
            XCTAssertEqual(third.error?.type, "rate_limit_error")
            XCTAssertEqual(third.error?.code, "queue_full")
            XCTAssertEqual(third.headers[.retryAfter], "1")
            XCTAssertEqual(fourth.status, 429)
            gate.signal()
            let (a, b) = try await (first, second)
            XCTAssertEqual(a.status, 200)
            XCTAssertEqual(b.status, 200)
            XCTAssertEqual(server.worker.stats.rejected, 2)
            // Room again.
            let again = try await client.chat([user("Hi")], ["max_tokens": 2])
            XCTAssertEqual(again.status, 200)
        }
    }

    /// SIGTERM's path: the running request finishes (within the grace period), the queued ones
    /// get 503 at once, the worker thread ends.
    func testShutdownFinishesRunningAndFailsQueued() async throws {
        let server = try makeServer { $0.maxQueue = 4 }
        defer { server.close() }
        let gate = DispatchSemaphore(value: 0)
        let holding = NSLock()
        nonisolated(unsafe) var held = false
        server.worker.onJobStart = { _ in
            holding.lock(); let first = !held; held = true; holding.unlock()
            if first { gate.wait() }
        }
        try await server.makeApplication().test(.router) { client in
            async let running = client.chat([user("Hi")], ["max_tokens": 3, "stream": true])
            while !server.worker.stats.running { try await Task.sleep(nanoseconds: 5_000_000) }
            async let queued = client.chat([user("Hi")], ["max_tokens": 3])
            while server.worker.stats.waiting < 1 { try await Task.sleep(nanoseconds: 5_000_000) }
            server.worker.beginShutdown(grace: 60)
            let q = try await queued
            XCTAssertEqual(q.status, 503)
            XCTAssertEqual(q.error?.code, "shutting_down")
            gate.signal()
            let r = try await running
            XCTAssertEqual(r.status, 200)
            XCTAssertTrue(r.events.done)
            XCTAssertEqual(r.events.objects.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }.count, 1,
                           "the running answer completes normally")
        }
        XCTAssertTrue(server.worker.stop(timeout: 10), "the generation thread exits")
    }

    func testShutdownRefusesNewWork() async throws {
        let server = try makeServer()
        defer { server.close() }
        try await server.makeApplication().test(.router) { client in
            let ok = try await client.chat([user("Hi")], ["max_tokens": 2])
            XCTAssertEqual(ok.status, 200)
            server.worker.beginShutdown(grace: 0)
            let r = try await client.chat([user("Hi")], ["max_tokens": 2])
            XCTAssertEqual(r.status, 503)
            XCTAssertEqual(r.error?.code, "shutting_down")
            let h = try await client.call(.get, "/health")
            XCTAssertEqual(h.status, 503)
        }
    }
}
