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

/// Keys and values of every layer for positions 0..<contextLength: per layer a [ctx, nKVHeads·headDim]
/// matrix of keys and one of values.
///
/// The whole context is reserved as one anonymous mapping up front, but the kernel commits pages
/// only as positions are written, so the cache grows on demand with no copying and no allocation
/// in the token loop.
public final class KVCache: @unchecked Sendable {
    public let type: KVType
    public let nLayers: Int
    public let rowLength: Int
    public let contextLength: Int
    private let base: UnsafeMutableRawPointer
    private let byteCount: Int

    public init(config c: ModelConfig, type: KVType, contextLength: Int) throws {
        self.type = type
        nLayers = c.nLayers
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

    @inline(__always)
    func keys(_ layer: Int) -> UnsafeMutableRawPointer { base + (2 * layer) * contextLength * rowLength * type.bytes }
    @inline(__always)
    func values(_ layer: Int) -> UnsafeMutableRawPointer { base + (2 * layer + 1) * contextLength * rowLength * type.bytes }

    /// Stores one position's key and value rows (floats) for `layer`.
    @inline(__always)
    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let off = position * rowLength
        switch type {
        case .f32:
            (keys(layer).assumingMemoryBound(to: Float.self) + off).update(from: key, count: rowLength)
            (values(layer).assumingMemoryBound(to: Float.self) + off).update(from: value, count: rowLength)
        case .f16:
            let k = keys(layer).assumingMemoryBound(to: Float16.self) + off
            let v = values(layer).assumingMemoryBound(to: Float16.self) + off
            for i in 0..<rowLength { k[i] = Float16(key[i]); v[i] = Float16(value[i]) }
        }
    }

    /// Copies positions `0..<count` of every layer to `out` (for saving a session), and back.
    public func withContents<R>(positions count: Int, _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        let n = count * rowLength * type.bytes
        var parts: [UnsafeRawBufferPointer] = []
        for l in 0..<nLayers {
            parts.append(UnsafeRawBufferPointer(start: keys(l), count: n))
            parts.append(UnsafeRawBufferPointer(start: values(l), count: n))
        }
        return try body(parts)
    }

    /// Restores positions `0..<count` from buffers laid out as ``withContents(positions:_:)`` gives them.
    public func restore(positions count: Int, from parts: [UnsafeRawBufferPointer]) {
        for l in 0..<nLayers {
            keys(l).copyMemory(from: parts[2 * l].baseAddress!, byteCount: parts[2 * l].count)
            values(l).copyMemory(from: parts[2 * l + 1].baseAddress!, byteCount: parts[2 * l + 1].count)
        }
    }
}
