import Tokenizer

/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    public enum Role: String, Sendable, Codable { case system, user, assistant }
    public var role: Role
    public var content: String
    public init(role: Role, content: String) { self.role = role; self.content = content }
}

/// Turns a conversation into token ids, with BOS/EOS inserted as ids (never as text).
///
/// Mixtral-Instruct: `<s>[INST] {user} [/INST]{answer}</s>[INST] {user} [/INST]`; a system
/// prompt is folded into the first user turn (`{system}\n\n{user}`). The format is taken from the
/// model's `tokenizer.chat_template` when it is recognisable; a model without one (or with one we
/// do not recognise) gets this Mistral format, the documented fallback.
public struct ChatTemplate: Sendable {
    public enum Format: String, Sendable { case mistral }
    public let format: Format
    /// True when the format was recognised from the model's template (false = fallback).
    public let recognised: Bool

    public init(modelTemplate: String?) {
        if let t = modelTemplate, t.contains("[INST]") { format = .mistral; recognised = true }
        else { format = .mistral; recognised = false }
    }

    /// Ids for `messages`, ending ready for the assistant's next answer.
    /// - Throws: if roles do not alternate user/assistant after an optional system message.
    public func tokens(_ messages: [ChatMessage], tokenizer: Tokenizer) throws -> [Int32] {
        let v = tokenizer.vocabulary
        var system: String?
        var turns = messages[...]
        if let first = turns.first, first.role == .system { system = first.content; turns = turns.dropFirst() }
        var ids: [Int32] = [v.bosID]
        for (i, m) in turns.enumerated() {
            let expected: ChatMessage.Role = i % 2 == 0 ? .user : .assistant
            guard m.role == expected else {
                throw ChatTemplateError("conversation roles must alternate user/assistant (message \(i + 1) is \(m.role.rawValue))")
            }
            if m.role == .user {
                var text = m.content
                if i == 0, let system, !system.isEmpty { text = system + "\n\n" + text }
                ids += tokenizer.encode("[INST] " + text + " [/INST]")
            } else {
                ids += tokenizer.encode(m.content)
                ids.append(v.eosID)
            }
        }
        return ids
    }
}

public struct ChatTemplateError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
