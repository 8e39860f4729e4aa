import Foundation
import Engine
#if canImport(Glibc)
import Glibc
#endif

/// Saving and restoring a conversation with its KV cache, so a long chat resumes without
/// re-evaluating it. File: zstd frame of [magic "OCTETSES", u32 version, u32 JSON length, JSON
/// header, raw K/V rows of every layer for the cached positions].
extension Session {
    struct ArchiveHeader: Codable {
        var version = 1
        var nLayers: Int, nEmbd: Int, nVocab: Int, kvRowLength: Int
        var kvType: String
        var position: Int
        var cachedTokens: [Int32]
        var history: [Int32]
        var messages: [ChatMessage]
    }

    static let archiveMagic = Array("OCTETSES".utf8)

    public func save(to path: String) throws {
        busy.lock(); defer { busy.unlock() }
        let c = model.config
        let header = ArchiveHeader(nLayers: c.nLayers, nEmbd: c.nEmbd, nVocab: c.nVocab, kvRowLength: transformer.cache.rowLength,
                                   kvType: transformer.cache.type.rawValue, position: transformer.position,
                                   cachedTokens: cachedTokens, history: history, messages: messages)
        let json = try JSONEncoder().encode(header)
        var raw = Session.archiveMagic
        withUnsafeBytes(of: UInt32(1).littleEndian) { raw += $0 }
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { raw += $0 }
        raw += json
        transformer.cache.append(positions: transformer.position, to: &raw)
        let packed = try Zstd.compress(raw)
        let tmp = path + ".partial"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(packed)) else {
            throw EngineError("\(path): cannot write")
        }
        if rename(tmp, path) != 0 {
            unlink(tmp)
            throw EngineError("\(path): cannot write (\(String(cString: strerror(errno))))")
        }
    }

    public func load(from path: String) throws {
        busy.lock(); defer { busy.unlock() }
        guard let data = FileManager.default.contents(atPath: path) else { throw EngineError("\(path): cannot read") }
        let raw: [UInt8]
        do { raw = try Zstd.decompress(Array(data)) } catch { throw EngineError("\(path): not an Octet session (\(error))") }
        guard raw.count >= 16, Array(raw[0..<8]) == Session.archiveMagic else { throw EngineError("\(path): not an Octet session file") }
        let jsonLen = Int(raw[12]) | Int(raw[13]) << 8 | Int(raw[14]) << 16 | Int(raw[15]) << 24
        guard 16 + jsonLen <= raw.count, let h = try? JSONDecoder().decode(ArchiveHeader.self, from: Data(raw[16..<(16 + jsonLen)])) else {
            throw EngineError("\(path): corrupt session header")
        }
        let c = model.config, cache = transformer.cache
        guard h.nLayers == c.nLayers, h.nEmbd == c.nEmbd, h.nVocab == c.nVocab, h.kvRowLength == cache.rowLength else {
            throw EngineError("\(path): saved with a different model (\(h.nLayers) layers, dim \(h.nEmbd), vocab \(h.nVocab))")
        }
        guard h.kvType == cache.type.rawValue else { throw EngineError("\(path): saved with --kv-type \(h.kvType); start the chat with the same") }
        guard h.version == 1 else { throw EngineError("\(path): session format version \(h.version) is not supported (this Octet reads version 1)") }
        guard h.position >= 0, h.position == h.cachedTokens.count else {
            throw EngineError("\(path): corrupt session (\(h.cachedTokens.count) cached tokens but \(h.position) positions of keys and values)")
        }
        guard h.cachedTokens.allSatisfy({ $0 >= 0 && Int($0) < c.nVocab }), h.history.allSatisfy({ $0 >= 0 && Int($0) < c.nVocab }),
              h.history.count >= h.cachedTokens.count, Array(h.history.prefix(h.cachedTokens.count)) == h.cachedTokens else {
            throw EngineError("\(path): corrupt session (token ids out of range, or the cache is not a prefix of the conversation)")
        }
        guard h.position <= cache.contextLength else { throw EngineError("\(path): \(h.position) tokens do not fit the context of \(cache.contextLength)") }
        let kvBytes = cache.serializedByteCount(positions: h.position)
        guard raw.count == 16 + jsonLen + kvBytes else { throw EngineError("\(path): truncated session data") }
        raw.withUnsafeBytes { all in cache.restore(positions: h.position, from: UnsafeRawBufferPointer(rebasing: all[(16 + jsonLen)...])) }
        transformer.reset()
        transformer.setPosition(h.position)
        restoreConversation(cached: h.cachedTokens, history: h.history, messages: h.messages)
    }
}
