import Checkpoint
import Foundation
import GGUF
import Kernels
import Tokenizer

/// A model ready to run: its weights (mapped), its tokenizer and chat template.
///
/// `path` may be a GGUF file (ours or llama.cpp's) or a 16-bit checkpoint folder read directly.
public final class Model: @unchecked Sendable {
    public let path: String
    public let weights: ModelWeights
    public let vocabulary: Vocabulary
    public let chatTemplate: String?
    /// "GGUF Q8_0", "Hugging Face safetensors (bf16)" …
    public let formatDescription: String
    /// Keeps the mapped file(s) alive.
    private let owner: AnyObject

    public var config: ModelConfig { weights.config }

    public init(path: String) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw EngineError("\(path): no such file or folder")
        }
        if !isDir.boolValue && !path.hasSuffix(".safetensors") {
            let g: GGUFFile
            do { g = try GGUFFile(path: path) } catch { throw EngineError("\(error)") }
            weights = try ModelWeights(gguf: g)
            vocabulary = try Model.vocabulary(gguf: g)
            chatTemplate = g["tokenizer.chat_template"]?.string
            let types = Set(g.tensors.filter { $0.shape.count > 1 }.map(\.type.name)).sorted()
            formatDescription = "GGUF \(types.joined(separator: "+"))"
            owner = g
        } else {
            let ck: any Checkpoint
            do { ck = try openCheckpoint(path) } catch { throw EngineError("\(error)") }
            do { weights = try ModelWeights(checkpoint: ck) } catch { throw EngineError("\(error)") }
            guard let tp = ck.tokenizerModelPath, let data = FileManager.default.contents(atPath: tp) else {
                throw EngineError("\(path): no tokenizer.model beside the checkpoint")
            }
            do { vocabulary = try Vocabulary.fromSentencePieceModel(Array(data)) } catch { throw EngineError("\(tp): \(error)") }
            chatTemplate = ck.chatTemplate
            formatDescription = "\(ck.layoutName) (\(weights.tokenEmbedding.type.name))"
            owner = ck
        }
        guard vocabulary.count == weights.config.nVocab else {
            throw EngineError("\(path): tokenizer has \(vocabulary.count) tokens but the model's vocabulary is \(weights.config.nVocab)")
        }
    }

    static func vocabulary(gguf g: GGUFFile) throws -> Vocabulary {
        guard let model = g["tokenizer.ggml.model"]?.string else { throw EngineError("\(g.path): no tokenizer in the file (tokenizer.ggml.model)") }
        guard model == "llama" else { throw EngineError("\(g.path): tokenizer '\(model)' is not supported (Octet reads SentencePiece 'llama' tokenizers)") }
        guard let tokens = g["tokenizer.ggml.tokens"]?.array else { throw EngineError("\(g.path): missing tokenizer.ggml.tokens") }
        let pieces = tokens.map { $0.string ?? "" }
        let scores = g["tokenizer.ggml.scores"]?.array?.map { Float($0.double ?? 0) } ?? Array(repeating: 0, count: pieces.count)
        let types = g["tokenizer.ggml.token_type"]?.array?.map { TokenType(rawValue: Int32($0.int ?? 1)) ?? .normal }
            ?? Array(repeating: .normal, count: pieces.count)
        guard scores.count == pieces.count, types.count == pieces.count else {
            throw EngineError("\(g.path): tokenizer arrays have different lengths")
        }
        return Vocabulary(pieces: pieces, scores: scores, types: types,
                          bosID: Int32(g["tokenizer.ggml.bos_token_id"]?.int ?? 1),
                          eosID: Int32(g["tokenizer.ggml.eos_token_id"]?.int ?? 2),
                          unkID: Int32(g["tokenizer.ggml.unknown_token_id"]?.int ?? 0),
                          addBOS: g["tokenizer.ggml.add_bos_token"]?.bool ?? true,
                          addDummyPrefix: g["tokenizer.ggml.add_space_prefix"]?.bool ?? true)
    }
}
