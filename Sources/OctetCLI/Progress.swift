import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A progress line on stderr: a redrawn bar with rate and ETA on a terminal, plain lines at every
/// 10% otherwise (logs, CI).
final class ProgressLine {
    let label: String
    let unit: String
    let start = Date()
    var lastDecile = -1
    var lastDraw = Date.distantPast

    init(_ label: String, unit: String = "B") { self.label = label; self.unit = unit }

    func update(done: Int, total: Int, detail: String = "") {
        let frac = total > 0 ? Double(done) / Double(total) : 1
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        if stderrIsTerminal {
            if done < total && Date().timeIntervalSince(lastDraw) < 0.1 { return }
            lastDraw = Date()
            let width = 30, filled = Int(frac * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let line = "\(label) \(bar) \(Int(frac * 100))% \(human(done))/\(human(total)) \(human(Int(rate)))/s ETA \(Int(eta.rounded()))s \(detail)"
            fputs("\r\u{1B}[K" + line, stderr)
            if done >= total { fputs("\n", stderr) }
        } else {
            let decile = Int(frac * 10)
            if decile != lastDecile {
                lastDecile = decile
                fputs("\(label) \(Int(frac * 100))% (\(human(done))/\(human(total)), \(human(Int(rate)))/s, ETA \(Int(eta.rounded()))s)\n", stderr)
            }
        }
    }

    func human(_ n: Int) -> String {
        guard unit == "B" else { return "\(n) \(unit)" }
        let d = Double(n)
        if d >= 1e9 { return String(format: "%.2f GB", d / 1e9) }
        if d >= 1e6 { return String(format: "%.1f MB", d / 1e6) }
        if d >= 1e3 { return String(format: "%.0f kB", d / 1e3) }
        return "\(n) B"
    }
}
