import ArgumentParser
import GGUF
import Kernels
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a GGUF file's metadata and tensors.",
        discussion: "With --json, prints {\"alignment\", \"metadata\", \"tensors\": [{\"name\", \"type\", \"shape\", \"offset\", \"bytes\"}]} for scripts; shape is [ne0, ne1, …] as GGUF stores it and offset is absolute.")

    @Argument(help: "A .gguf file.")
    var file: String

    @Flag(help: "Machine-readable output.")
    var json = false

    @Flag(help: "Print long arrays (the vocabulary) in full in the text view.")
    var full = false

    func run() throws {
        try reportingErrors {
            let g = try GGUFFile(path: file)
            if json { try printJSON(g) } else { printText(g) }
        }
    }

    func jsonValue(_ v: GGUFValue) -> Any {
        switch v {
        case .string(let s): return s
        case .bool(let b): return b
        case .float32(let f): return Double(f)
        case .float64(let d): return d
        case .array(_, let items): return items.map(jsonValue)
        default: return v.int ?? 0
        }
    }

    func printJSON(_ g: GGUFFile) throws {
        var md: [String: Any] = [:]
        for (k, v) in g.metadata { md[k] = jsonValue(v) }
        let tensors: [[String: Any]] = g.tensors.map {
            ["name": $0.name, "type": $0.type.name, "shape": $0.shape, "offset": g.dataOffset + $0.offset, "bytes": $0.byteCount ?? 0]
        }
        let obj: [String: Any] = ["alignment": g.alignment, "metadata": md, "tensors": tensors]
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
        FileHandle.standardOutput.write(data)
        print()
    }

    func describe(_ v: GGUFValue) -> String {
        switch v {
        case .string(let s): return s.count > 120 && !full ? "\"\(s.prefix(117))…\" (\(s.count) chars)" : "\"\(s)\""
        case .array(let t, let items):
            if items.count > 8 && !full { return "[\(items.prefix(5).map(describe).joined(separator: ", ")), …] (\(items.count) \(t))" }
            return "[\(items.map(describe).joined(separator: ", "))]"
        case .float32(let f): return "\(f)"
        case .float64(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        default: return "\(v.int ?? 0)"
        }
    }

    func printText(_ g: GGUFFile) {
        print("\(g.path): GGUF v\(g.version), \(g.metadata.count) metadata keys, \(g.tensors.count) tensors, alignment \(g.alignment), data at \(g.dataOffset)")
        for (k, v) in g.metadata { print("  \(k) = \(describe(v))") }
        print()
        print("  " + "name".padding(toLength: 32, withPad: " ", startingAt: 0) + " type      shape                     offset        bytes  expert slices")
        var total = 0
        let page = MappedFile.pageSize
        for t in g.tensors {
            let bytes = t.byteCount ?? 0
            total += bytes
            let off = g.dataOffset + t.offset
            var slices = ""
            if t.shape.count == 3 {
                let slice = bytes / t.shape[2]
                let aligned = off % page == 0 && slice % page == 0
                slices = "\(t.shape[2]) × \(slice) B, " + (aligned ? "page-aligned" : "NOT page-aligned")
            }
            print("  " + t.name.padding(toLength: 32, withPad: " ", startingAt: 0) + " "
                  + t.type.name.padding(toLength: 9, withPad: " ", startingAt: 0) + " "
                  + "\(t.shape)".padding(toLength: 20, withPad: " ", startingAt: 0)
                  + String(format: " %12d %12d  ", off, bytes) + slices)
        }
        print(String(format: "\n  total tensor data: %.3f GB (%d bytes); file %d bytes", Double(total) / 1e9, total, g.file.size))
    }
}
