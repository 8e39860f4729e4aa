import Foundation
import Generation
import Tokenizer

/// Fingerprint of a vocabulary: FNV-1a 64 over every piece's UTF-8 followed by a 0 byte.
public enum TokenizerFingerprint {
    public static func hash(_ v: Vocabulary) -> UInt64 {
        var h = FNV1a64()
        for p in v.pieces { h.add(p.utf8); h.add(CollectionOfOne(0)) }
        return h.value
    }

    /// Throws unless both models have the same vocabulary (size and pieces).
    public static func checkSame(base: Vocabulary, quant: Vocabulary, baseName: String = "BASE", quantName: String = "QUANT") throws {
        guard base.count == quant.count else {
            throw EvaluationError("the models have different vocabularies: \(baseName) has \(base.count) tokens, \(quantName) \(quant.count); KL divergence needs the same vocabulary")
        }
        if let i = base.pieces.indices.first(where: { base.pieces[$0] != quant.pieces[$0] }) {
            throw EvaluationError("the models have different vocabularies: token \(i) is '\(base.pieces[i])' in \(baseName) but '\(quant.pieces[i])' in \(quantName)")
        }
    }
}

/// What a base-logits file was made from; the file can be reused only for the same values.
public struct BaseLogitsHeader: Codable, Sendable, Equatable {
    public var format = "octet-base-logits"
    public var version = 1
    public var text: String
    public var text_fnv1a64: String
    public var text_bytes: Int
    public var text_tokens: Int
    public var vocab_size: Int
    public var tokenizer_fnv1a64: String
    public var ctx: Int
    public var kv_type: String
    /// Tokens kept per position (min of the requested k and the vocabulary).
    public var top_k: Int
    public var chunks: Int
    public var positions_per_chunk: Int
    public var layers: Int
    public var experts: Int
    public var experts_used: Int
    public var base_model: String
    public var base_format: String
}

/// The base model's side of a comparison, for every scored position: its top-k logits with the
/// log-sum-exp and the log of the remaining mass (see ``TopKBaseRow`` for the KL estimate and
/// its error bound), the next token and its logit, and the expert choices.
///
/// On disk: the 8 bytes `OCTETBL1`, a little-endian UInt32 length, the header as JSON, then one
/// zstd frame holding, little-endian and in this order, for n positions: targets Int32[n],
/// target logits Float32[n], log-sum-exp Float64[n], log rest mass Float64[n], top ids Int32[n·k],
/// top logits Float32[n·k], experts UInt8[n·layers·experts_used] (each layer's ids ascending).
public struct BaseLogitsFile: Sendable {
    public var header: BaseLogitsHeader
    public var targets: [Int32] = []
    public var targetLogits: [Float] = []
    public var logSumExp: [Double] = []
    public var logRestMass: [Double] = []
    public var topIDs: [Int32] = []
    public var topLogits: [Float] = []
    public var experts: [UInt8] = []

    static let magic = Array("OCTETBL1".utf8)

    public init(header: BaseLogitsHeader) { self.header = header }

    public var count: Int { targets.count }
    var routeWidth: Int { header.layers * header.experts_used }

    public func row(_ i: Int) -> TopKBaseRow {
        let k = header.top_k
        return TopKBaseRow(ids: Array(topIDs[(i * k)..<((i + 1) * k)]), logits: Array(topLogits[(i * k)..<((i + 1) * k)]),
                           logSumExp: logSumExp[i], logRestMass: logRestMass[i], targetLogit: targetLogits[i])
    }

    public func expertChoices(_ i: Int) -> ArraySlice<UInt8> { experts[(i * routeWidth)..<((i + 1) * routeWidth)] }

    /// Adds one scored position (its expert choices go in with ``appendExperts(_:)``).
    public mutating func append(_ r: TopKBaseRow, target: Int32) {
        precondition(r.ids.count == header.top_k)
        targets.append(target); targetLogits.append(r.targetLogit)
        logSumExp.append(r.logSumExp); logRestMass.append(r.logRestMass)
        topIDs += r.ids; topLogits += r.logits
    }

    /// Adds expert choices: `layers × experts_used` ids per position, as ``WindowRunner`` gives them.
    public mutating func appendExperts(_ e: [UInt8]) {
        precondition(routeWidth == 0 ? e.isEmpty : e.count % routeWidth == 0)
        experts += e
    }

    // MARK: - Matching

    /// Throws a one-line error naming the first thing that differs from what this run needs.
    public func check(text: EvaluationText, vocabulary: Vocabulary, ctx: Int, kvType: String, path: String) throws {
        let h = header
        if h.text_fnv1a64 != FNV1a64.hex(text.hash) || h.text_bytes != text.byteCount {
            throw EvaluationError("\(path) was saved for a different text (\(h.text), \(h.text_bytes) bytes, FNV-1a \(h.text_fnv1a64)) than \(text.name) (\(text.byteCount) bytes, FNV-1a \(FNV1a64.hex(text.hash)))")
        }
        if h.vocab_size != vocabulary.count || h.tokenizer_fnv1a64 != FNV1a64.hex(TokenizerFingerprint.hash(vocabulary)) {
            throw EvaluationError("\(path) was saved with a different tokenizer (\(h.vocab_size) tokens, FNV-1a \(h.tokenizer_fnv1a64)) than the model's (\(vocabulary.count) tokens, FNV-1a \(FNV1a64.hex(TokenizerFingerprint.hash(vocabulary))))")
        }
        if h.ctx != ctx {
            throw EvaluationError("\(path) was saved with --ctx \(h.ctx), not \(ctx); use --ctx \(h.ctx) or save the base again")
        }
        if h.kv_type != kvType {
            throw EvaluationError("\(path) was saved with --kv-type \(h.kv_type), not \(kvType); use --kv-type \(h.kv_type) or save the base again")
        }
    }

    /// Throws unless the stored next tokens are those of `plan` (same tokenization). The plan may
    /// score fewer windows than the file holds (`--chunks`): the file's first ones are used.
    public func check(plan: ScoringPlan, path: String) throws {
        guard header.chunks >= plan.chunkCount, header.positions_per_chunk == plan.positionsPerChunk,
              count == header.chunks * header.positions_per_chunk else {
            throw EvaluationError("\(path) holds \(count) positions in \(header.chunks) windows, but this text gives \(plan.tokensScored) in \(plan.chunkCount)")
        }
        var i = 0
        for c in 0..<plan.chunkCount {
            for p in plan.scoredPositions {
                if targets[i] != plan.target(chunk: c, position: p) {
                    throw EvaluationError("\(path): the text tokenizes differently than when the file was saved (window \(c), position \(p))")
                }
                i += 1
            }
        }
    }

    // MARK: - I/O

    public func write(to path: String) throws {
        var payload: [UInt8] = []
        func put<T>(_ a: [T]) { a.withUnsafeBytes { payload += $0 } }
        put(targets); put(targetLogits); put(logSumExp); put(logRestMass); put(topIDs); put(topLogits); put(experts)
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        let json = Array(try enc.encode(header))
        var out = Self.magic
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { out += $0 }
        out += json
        do { out += try Zstd.compress(payload, level: 6) } catch { throw EvaluationError("\(path): \(error)") }
        do { try Data(out).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw EvaluationError("\(path): cannot write (\(error.localizedDescription))")
        }
    }

    /// Reads only the header (cheap; enough to check that the file fits).
    public static func readHeader(_ bytes: [UInt8], path: String) throws -> (BaseLogitsHeader, Int) {
        guard bytes.count >= 12, Array(bytes[0..<8]) == magic else {
            throw EvaluationError("\(path) is not a base-logits file (made by octet compare --save-base)")
        }
        let n = Int(UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24)
        guard 12 + n <= bytes.count else { throw EvaluationError("\(path) is truncated") }
        let h: BaseLogitsHeader
        do { h = try JSONDecoder().decode(BaseLogitsHeader.self, from: Data(bytes[12..<(12 + n)])) } catch {
            throw EvaluationError("\(path): unreadable header (\(error))")
        }
        guard h.format == "octet-base-logits", h.version == 1 else {
            throw EvaluationError("\(path): format \(h.format) version \(h.version) is not supported")
        }
        return (h, 12 + n)
    }

    public static func read(path: String) throws -> BaseLogitsFile {
        guard let d = FileManager.default.contents(atPath: path) else { throw EvaluationError("\(path): cannot read") }
        let bytes = Array(d)
        let (h, start) = try readHeader(bytes, path: path)
        let payload: [UInt8]
        do { payload = try Zstd.decompress(Array(bytes[start...])) } catch { throw EvaluationError("\(path): \(error)") }
        let n = h.chunks * h.positions_per_chunk, k = h.top_k, w = h.layers * h.experts_used
        let expected = n * (4 + 4 + 8 + 8) + n * k * 8 + n * w
        guard payload.count == expected else {
            throw EvaluationError("\(path) is corrupt: \(payload.count) bytes of data where the header implies \(expected)")
        }
        var f = BaseLogitsFile(header: h)
        var off = 0
        func take<T>(_ count: Int, _: T.Type) -> [T] {
            let size = count * MemoryLayout<T>.stride
            defer { off += size }
            return [T](unsafeUninitializedCapacity: count) { buf, got in
                payload.withUnsafeBytes { src in
                    UnsafeMutableRawBufferPointer(buf).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[off..<(off + size)]))
                }
                got = count
            }
        }
        f.targets = take(n, Int32.self); f.targetLogits = take(n, Float.self)
        f.logSumExp = take(n, Double.self); f.logRestMass = take(n, Double.self)
        f.topIDs = take(n * k, Int32.self); f.topLogits = take(n * k, Float.self)
        f.experts = take(n * w, UInt8.self)
        return f
    }
}
