import Foundation
import Generation

// MARK: - Requests (decoded strictly: a known field of the wrong type is a 400; unknown fields are ignored)

/// `stop`: one string or a list of strings.
struct StopField: Decodable {
    var values: [String]
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { values = []; return }
        if let s = try? c.decode(String.self) { values = [s]; return }
        if let a = try? c.decode([String].self) { values = a; return }
        throw DecodingError.typeMismatch([String].self, .init(codingPath: decoder.codingPath,
                                                              debugDescription: "expected a string or an array of strings"))
    }
}

/// A chat message's `content`: a string, or a list of parts of which only text parts are understood.
struct MessageContent: Decodable {
    var text: String
    private struct Part: Decodable { var type: String; var text: String? }
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { text = ""; return }
        if let s = try? c.decode(String.self) { text = s; return }
        guard let parts = try? c.decode([Part].self) else {
            throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath,
                                                                debugDescription: "expected a string or an array of text parts"))
        }
        var t = ""
        for p in parts {
            guard p.type == "text", let s = p.text else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "only text content parts are supported (got \"\(p.type)\")"))
            }
            t += s
        }
        text = t
    }
}

struct WireMessage: Decodable {
    var role: String
    var content: MessageContent?
}

/// `prompt` of /v1/completions: a string, a list of one string, or a list of token ids.
enum PromptField: Decodable {
    case text(String)
    case tokens([Int])
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .text(s); return }
        if let a = try? c.decode([String].self) {
            guard a.count == 1 else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "exactly one prompt per request is supported (got \(a.count))"))
            }
            self = .text(a[0]); return
        }
        if let t = try? c.decode([Int].self) { self = .tokens(t); return }
        throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath,
                                                            debugDescription: "expected a string or an array of token ids"))
    }
}

struct StreamOptions: Decodable { var include_usage: Bool? }

/// Fields shared by both completion endpoints.
struct CommonFields: Decodable {
    var model: String?
    var max_tokens: Int?
    var max_completion_tokens: Int?
    var temperature: Double?
    var top_p: Double?
    var top_k: Int?
    var min_p: Double?
    var repeat_penalty: Double?
    /// Token id (as a string) → bias in −100…100, added to the logit.
    var logit_bias: [String: Double]?
    var seed: Int64?
    var stop: StopField?
    var stream: Bool?
    var stream_options: StreamOptions?
    var n: Int?
}

struct ChatRequest: Decodable {
    var messages: [WireMessage]
}

struct CompletionRequest: Decodable {
    var prompt: PromptField
}

// MARK: - Responses

/// OpenAI's error object: `{"error": {"message", "type", "code"}}`, with an HTTP status.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public let status: Int
    public let message: String
    public let type: String
    public let code: String?
    public let param: String?

    public init(status: Int, message: String, type: String? = nil, code: String? = nil, param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type ?? APIError.defaultType(status)
        self.code = code
        self.param = param
    }

    static func defaultType(_ status: Int) -> String {
        switch status {
        case 401: return "authentication_error"
        case 404: return "not_found_error"
        case 429: return "rate_limit_error"
        case 400..<500: return "invalid_request_error"
        default: return "server_error"
        }
    }

    public var description: String { "\(status) \(type): \(message)" }

    var json: [String: Any] {
        ["error": ["message": message, "type": type, "code": code as Any? ?? NSNull(), "param": param as Any? ?? NSNull()]]
    }

    static func invalid(_ message: String, code: String = "invalid_request", param: String? = nil) -> APIError {
        APIError(status: 400, message: message, code: code, param: param)
    }
}

/// Serialises a JSON object (dictionaries, arrays, strings, numbers, NSNull).
func jsonData(_ object: Any) -> Data {
    (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
}

/// Turns a decoding error into a one-line message naming the offending field.
func describe(_ error: DecodingError) -> (message: String, param: String?) {
    func path(_ p: [CodingKey]) -> String {
        p.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description
    }
    switch error {
    case .typeMismatch(let type, let ctx):
        let field = path(ctx.codingPath)
        if field.isEmpty { return ("the request body must be a JSON object", nil) }
        let expected: String
        if !ctx.debugDescription.hasPrefix("Expected to decode") && !ctx.debugDescription.isEmpty
            && ctx.debugDescription.hasPrefix("expected") {
            expected = ctx.debugDescription
        } else {
            expected = "expected \(typeName(type))"
        }
        return ("invalid type for '\(field)': \(expected)", field)
    case .valueNotFound(let type, let ctx):
        let field = path(ctx.codingPath)
        return ("'\(field)' must not be null (expected \(typeName(type)))", field)
    case .keyNotFound(let key, let ctx):
        let field = path(ctx.codingPath + [key])
        return ("missing required field '\(field)'", field)
    case .dataCorrupted(let ctx):
        let field = path(ctx.codingPath)
        if field.isEmpty { return ("the request body is not valid JSON", nil) }
        return ("invalid value for '\(field)': \(ctx.debugDescription)", field)
    @unknown default:
        return ("invalid request body", nil)
    }
}

private func typeName(_ t: Any.Type) -> String {
    switch t {
    case is Int.Type, is Int64.Type: return "an integer"
    case is Double.Type, is Float.Type: return "a number"
    case is Bool.Type: return "a boolean"
    case is String.Type: return "a string"
    default:
        let n = "\(t)"
        if n.hasPrefix("Array") { return "an array" }
        if n.hasPrefix("Dictionary") || n.hasSuffix("Request") || n == "StreamOptions" || n == "WireMessage" { return "an object" }
        return n
    }
}
