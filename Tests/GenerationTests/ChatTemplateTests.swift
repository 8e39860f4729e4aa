import Foundation
import XCTest
import Generation
import Tokenizer

final class ChatTemplateTests: XCTestCase {
    private var tokenizer: Tokenizer!
    private var template: ChatTemplate!

    override func setUpWithError() throws {
        tokenizer = try fixtureTokenizer()
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: GenPaths.tokenizerConfig)) as! [String: Any]
        template = ChatTemplate(modelTemplate: config["chat_template"] as? String)
    }

    private func user(_ s: String) -> ChatMessage { ChatMessage(role: .user, content: s) }
    private func assistant(_ s: String) -> ChatMessage { ChatMessage(role: .assistant, content: s) }
    private func system(_ s: String) -> ChatMessage { ChatMessage(role: .system, content: s) }

    func testMixtralInstructTemplateIsRecognised() {
        XCTAssertTrue(template.recognised)
        XCTAssertEqual(template.format, .mistral)
    }

    func testNoTemplateFallsBackToMistralFormat() throws {
        let fallback = ChatTemplate(modelTemplate: nil)
        XCTAssertFalse(fallback.recognised)
        XCTAssertEqual(fallback.format, .mistral)
        XCTAssertFalse(ChatTemplate(modelTemplate: "{{ messages }} <|im_start|>").recognised)
        // The fallback gives the same ids as the recognised template.
        let msgs = [user("Hi"), assistant("Hello"), user("Bye")]
        XCTAssertEqual(try fallback.tokens(msgs, tokenizer: tokenizer), try template.tokens(msgs, tokenizer: tokenizer))
    }

    /// The reference "chat" prompt (p3): `<s>[INST] Write a short poem about the sea. [/INST]`.
    func testSingleUserTurnMatchesReferenceChatPrompt() throws {
        let p3 = try Reference.prompts()[3]
        XCTAssertEqual(p3.name, "chat")
        let ids = try template.tokens([user("Write a short poem about the sea.")], tokenizer: tokenizer)
        XCTAssertEqual(ids, p3.inputIDs)
        XCTAssertEqual(ids.first, 1, "BOS inserted as an id")
        XCTAssertEqual(ids.filter { $0 == 1 }.count, 1)
    }

    func testSystemPromptIsFoldedIntoFirstUserTurn() throws {
        let withSystem = try template.tokens([system("You are terse."), user("Hi"), assistant("Hello"), user("Bye")], tokenizer: tokenizer)
        let folded = try template.tokens([user("You are terse.\n\nHi"), assistant("Hello"), user("Bye")], tokenizer: tokenizer)
        XCTAssertEqual(withSystem, folded)
        // Only the first turn carries it.
        XCTAssertEqual(withSystem.suffix(tokenizer.encode("[INST] Bye [/INST]").count), ArraySlice(tokenizer.encode("[INST] Bye [/INST]")))
        // An empty system prompt changes nothing.
        XCTAssertEqual(try template.tokens([system(""), user("Hi")], tokenizer: tokenizer),
                       try template.tokens([user("Hi")], tokenizer: tokenizer))
    }

    func testAssistantTurnIsItsTextIdsThenEOS() throws {
        let ids = try template.tokens([user("Hi"), assistant("Hello there"), user("Again")], tokenizer: tokenizer)
        let expected: [Int32] = [1] + tokenizer.encode("[INST] Hi [/INST]") + tokenizer.encode("Hello there") + [2]
            + tokenizer.encode("[INST] Again [/INST]")
        XCTAssertEqual(ids, expected)
        XCTAssertEqual(ids.filter { $0 == 2 }.count, 1, "one EOS, after the answer")
        // Ends ready for an answer when the last message is the user's; a final assistant turn is closed.
        let closed = try template.tokens([user("Hi"), assistant("Hello there")], tokenizer: tokenizer)
        XCTAssertEqual(closed.last, 2)
    }

    func testSpecialTokenTextIsNeverTurnedIntoControlIds() throws {
        // A user typing "</s>" or "<s>" gets text pieces, not EOS/BOS ids.
        let ids = try template.tokens([user("a </s> b <s> c")], tokenizer: tokenizer)
        XCTAssertEqual(ids.filter { $0 == 1 }.count, 1)
        XCTAssertFalse(ids.contains(2))
    }

    func testRolesMustAlternate() {
        let bad: [[ChatMessage]] = [
            [user("a"), user("b")],
            [assistant("a")],
            [user("a"), assistant("b"), assistant("c")],
            [system("s"), assistant("a")],
            [user("a"), system("s")],
            [system("s"), system("t"), user("a")],
        ]
        for msgs in bad {
            XCTAssertThrowsError(try template.tokens(msgs, tokenizer: tokenizer), "\(msgs.map(\.role.rawValue))") { e in
                XCTAssertTrue("\(e)".contains("alternate"), "\(e)")
            }
        }
        XCTAssertNoThrow(try template.tokens([system("s"), user("a"), assistant("b"), user("c")], tokenizer: tokenizer))
    }
}
