import ArgumentParser
import Engine
import Foundation
import Kernels

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the logits of every position for given token ids (a diagnostic).",
        discussion: """
        The ids run exactly as given (no BOS is added), in one batch, or one at a time through the \
        KV cache with --incremental. Logits go to a little-endian float32 .npy of shape \
        [positions, vocab]; --experts writes {"experts": [[[e0, e1], …layers], …positions], "weights": …}.
        Uses an F32 KV cache unless --kv-type f16 is given.
        Example: octet logits model.gguf --ids 1,415,2936 -o logits.npy --experts experts.json
        """)

    @Argument(help: "GGUF file or checkpoint folder.")
    var model: String

    @Option(help: "Comma-separated token ids.")
    var ids: String

    @Option(name: .shortAndLong, help: "Output .npy file (default: print the argmax of each position).")
    var output: String?

    @Option(help: "Write the chosen experts per position and layer to this JSON file.")
    var experts: String?

    @Flag(help: "Feed the ids one at a time through the KV cache.")
    var incremental = false

    @Option(help: "KV cache type: f32 or f16.")
    var kvType: KVType = .f32

    @Flag(help: "Multiply Q8_0 weights by float activations instead of int8-quantized ones.")
    var floatActivations = false

    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try reportingErrors {
            let tokens = try ids.split(separator: ",").map { s -> Int32 in
                guard let v = Int32(s.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--ids: '\(s)' is not a token id") }
                return v
            }
            guard !tokens.isEmpty else { throw ValidationError("--ids is empty") }
            let m = try Model(path: model)
            let pool = WorkerPool(threads: runtime.threads)
            let batch = incremental ? 1 : min(tokens.count, 512)
            let tf = try Transformer(weights: m.weights, pool: pool, kvType: kvType, contextLength: runtime.ctx ?? max(tokens.count, 1),
                                     maxBatch: batch)
            tf.traceExperts = experts != nil
            tf.int8Activations = !floatActivations
            let V = m.config.nVocab
            var all = [Float](repeating: 0, count: tokens.count * V)
            var i = 0
            while i < tokens.count {
                let n = min(batch, tokens.count - i)
                try tokens[i..<(i + n)].withUnsafeBufferPointer { try tf.forward($0, logits: .all) }
                all.withUnsafeMutableBufferPointer { dst in
                    (dst.baseAddress! + i * V).update(from: tf.logits, count: n * V)
                }
                i += n
            }
            if let output {
                try NPY.write(all, shape: [tokens.count, V], to: output)
            } else {
                for p in 0..<tokens.count {
                    let row = all[(p * V)..<((p + 1) * V)]
                    let best = row.indices.max { row[$0] < row[$1] }! - p * V
                    print("position \(p): argmax \(best) (\(m.vocabulary.pieces[best])) logit \(row[p * V + best])")
                }
            }
            if let experts {
                let obj: [String: Any] = [
                    "experts": tf.expertTrace.map { $0.map { $0.experts } },
                    "weights": tf.expertTrace.map { $0.map { $0.weights.map(Double.init) } },
                ]
                try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: experts))
            }
        }
    }
}

/// Writes NumPy .npy files (format version 1.0, little-endian float32, C order).
enum NPY {
    static func write(_ values: [Float], shape: [Int], to path: String) throws {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let len = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(len & 0xFF), UInt8(len >> 8)])
        data.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
