#if canImport(Glibc)
import Glibc
#endif
import Kernels
import Checkpoint

/// Storage type of cached keys and values.
public enum KVType: String, Sendable, CaseIterable {
    case f16, f32
    var bytes: Int { self == .f16 ? 2 : 4 }
}

/// Keys and values of every layer for positions 0..<contextLength. Per layer, keys and then
/// values, each laid out KV head by KV head: [nKVHeads, contextLength, headDim]. One head's rows
/// are consecutive, so attention (one KV head per work item) reads one sequential stream that
/// the hardware prefetcher follows, rather than every other `headDim` span of whole rows.
///
/// The whole context is reserved as one anonymous mapping up front, but the kernel commits pages
/// only as positions are written, so the cache grows on demand with no copying and no allocation
/// in the token loop.
public final class KVCache: @unchecked Sendable {
    public let type: KVType
    public let nLayers: Int
    public let nKVHeads: Int
    public let headDim: Int
    /// Elements of one position's keys (or values) across the KV heads: nKVHeads × headDim.
    public let rowLength: Int
    public let contextLength: Int
    private let base: UnsafeMutableRawPointer
    private let byteCount: Int

    public init(config c: ModelConfig, type: KVType, contextLength: Int) throws {
        self.type = type
        nLayers = c.nLayers
        nKVHeads = c.nKVHeads
        headDim = c.headDim
        rowLength = c.nKVHeads * c.headDim
        self.contextLength = contextLength
        byteCount = max(1, c.nLayers * 2 * contextLength * rowLength * type.bytes)
        guard let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              p != MAP_FAILED else {
            throw EngineError("cannot reserve \(byteCount / 1_000_000) MB of address space for a \(contextLength)-token KV cache")
        }
        base = p
    }

    deinit { munmap(base, byteCount) }

    /// Bytes of keys+values for one position across all layers.
    public var bytesPerPosition: Int { nLayers * 2 * rowLength * type.bytes }

    /// Elements from one KV head's rows to the next head's: contextLength × headDim.
    @inline(__always)
    var headStride: Int { contextLength * headDim }

    /// Layer `layer`'s keys: KV head h's key for position j is `headDim` elements at
    /// `(h · headStride + j · headDim)` elements in.
    @inline(__always)
    func keys(_ layer: Int) -> UnsafeMutableRawPointer { base + (2 * layer) * contextLength * rowLength * type.bytes }
    /// Layer `layer`'s values, laid out as ``keys(_:)``.
    @inline(__always)
    func values(_ layer: Int) -> UnsafeMutableRawPointer { base + (2 * layer + 1) * contextLength * rowLength * type.bytes }

    /// Stores one position's key and value rows (floats, `rowLength` each, KV head after KV head)
    /// for `layer`.
    @inline(__always)
    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        for h in 0..<nKVHeads {
            let off = h * headStride + position * headDim
            let key = key + h * headDim, value = value + h * headDim
            switch type {
            case .f32:
                (keys(layer).assumingMemoryBound(to: Float.self) + off).update(from: key, count: headDim)
                (values(layer).assumingMemoryBound(to: Float.self) + off).update(from: value, count: headDim)
            case .f16:
                let k = keys(layer).assumingMemoryBound(to: Float16.self) + off
                let v = values(layer).assumingMemoryBound(to: Float16.self) + off
                for i in 0..<headDim { k[i] = Float16(key[i]); v[i] = Float16(value[i]) }
            }
        }
    }

    /// Bytes of positions 0..<count in the layout sessions are saved in, whatever the cache's own:
    /// for each layer its keys then its values, position by position, each position's
    /// `rowLength` elements KV head after KV head.
    public func serializedByteCount(positions count: Int) -> Int { nLayers * 2 * count * rowLength * type.bytes }

    /// Appends positions `0..<count` of every layer to `out` in the saved layout
    /// (``serializedByteCount(positions:)`` bytes).
    public func append(positions count: Int, to out: inout [UInt8]) {
        out.reserveCapacity(out.count + serializedByteCount(positions: count))
        let span = headDim * type.bytes
        for l in 0..<nLayers {
            for block in [keys(l), values(l)] {
                for j in 0..<count {
                    for h in 0..<nKVHeads {
                        out += UnsafeRawBufferPointer(start: block + (h * headStride + j * headDim) * type.bytes, count: span)
                    }
                }
            }
        }
    }

    /// Restores positions `0..<count` from `bytes` in the saved layout (``append(positions:to:)``).
    public func restore(positions count: Int, from bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == serializedByteCount(positions: count))
        let span = headDim * type.bytes
        var o = 0
        for l in 0..<nLayers {
            for block in [keys(l), values(l)] {
                for j in 0..<count {
                    for h in 0..<nKVHeads {
                        (block + (h * headStride + j * headDim) * type.bytes).copyMemory(from: bytes.baseAddress! + o, byteCount: span)
                        o += span
                    }
                }
            }
        }
    }
}
