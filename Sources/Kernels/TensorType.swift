/// The storage type of a tensor, with ggml's type ids where ggml has one.
///
/// Memory layout convention used everywhere in Octet: row-major, dimension 0 (`ne0`) is the row
/// length, as GGUF stores it. A quantized row of `n` values is `n / blockSize` blocks.
public enum TensorType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q8_0 = 8
    case bf16 = 30
    /// Octet's own type, outside ggml's id range: blocks of 32 values, an f16 scale `d` followed by
    /// 32 FP8 E4M3 bytes (value = d × e4m3). See README "File format".
    case fp8_e4m3 = 1000

    /// Values per block (1 for plain float types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q8_0, .fp8_e4m3: return 32
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0, .fp8_e4m3: return 34
        }
    }

    /// Bytes of a row of `n` values; `nil` when `n` is not a whole number of blocks.
    public func rowBytes(_ n: Int) -> Int? {
        guard n >= 0, n % blockSize == 0 else { return nil }
        let (p, o) = (n / blockSize).multipliedReportingOverflow(by: blockBytes)
        return o ? nil : p
    }

    /// ggml's name for the type ("Q8_0", "BF16"…), and ours for FP8.
    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q8_0: return "Q8_0"
        case .bf16: return "BF16"
        case .fp8_e4m3: return "FP8_E4M3"
        }
    }

    public var description: String { name }

    /// Parses a user-facing name: `q8_0`, `fp8`, `bf16`, `f16`, `f32` (case-insensitive).
    public init?(userName: String) {
        switch userName.lowercased() {
        case "f32": self = .f32
        case "f16": self = .f16
        case "bf16": self = .bf16
        case "q8_0", "q8", "int8": self = .q8_0
        case "fp8", "fp8_e4m3", "e4m3": self = .fp8_e4m3
        default: return nil
        }
    }
}
