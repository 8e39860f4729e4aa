/// Why a model could not be loaded or run; names the file and the tensor or key at fault.
public struct EngineError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
