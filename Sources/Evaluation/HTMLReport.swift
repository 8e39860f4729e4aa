import Foundation

/// A self-contained HTML page for a ``ComparisonReport``: summary figures, the distribution of
/// per-token KL divergence (log-x histogram), routing agreement per layer, perplexity per window,
/// and the full table. Inline CSS and SVG only: no script, no network.
public enum HTMLReport {
    public static func render(_ r: ComparisonReport) -> String {
        var cards = [
            card("Δ perplexity", String(format: "%+.2f %%", r.delta_ppl_percent),
                 String(format: "%.3f → %.3f", r.base.perplexity, r.quant.perplexity)),
            card("mean KL divergence", String(format: "%.4g", r.kl.mean), String(format: "± %.2g nats per token", r.kl.mean_stderr)),
            card("top-1 agreement", String(format: "%.2f %%", r.top1_agreement * 100), "same most likely token"),
        ]
        if let ra = r.routing_agreement {
            cards.append(card("routing agreement", String(format: "%.2f %%", ra.overall * 100), "same \(ra.experts_used) experts chosen"))
        }
        var body = """
        <h1>What quantization costs</h1>
        <p class="sub"><b>base</b> \(esc(r.base.model)) <span>(\(esc(r.base.format)))</span><br>
        <b>quantized</b> \(esc(r.quant.model)) <span>(\(esc(r.quant.format)))</span><br>
        <b>text</b> \(esc(r.text)) — \(r.tokens_scored) tokens scored in \(r.chunks) windows of \(r.ctx), \(r.kv_type) KV cache</p>
        <div class="cards">\(cards.joined())</div>
        <h2>KL divergence per token</h2>
        <p class="note">How far the quantized model's next-token distribution is from the base's, for every scored token (nats, log scale).
        Lines: median, mean, 99th percentile.\(r.kl.method == "exact" ? "" : " Estimated from the base's top tokens (\(esc(r.kl.method))); each value is a lower bound.")</p>
        \(histogram(r))
        """
        if let ra = r.routing_agreement {
            body += """
            <h2>Routing agreement per layer</h2>
            <p class="note">Share of tokens for which the quantized model sent the token to the same \(ra.experts_used) experts as the base. Dashed: all layers.\(routingFloor(ra) > 0 ? " The axis starts at \(Int(routingFloor(ra) * 100)) %." : "")</p>
            \(routingBars(ra))
            """
        }
        if r.chunk_perplexity.base.count > 1 {
            body += """
            <h2>Perplexity change per window</h2>
            <p class="note">Quantized against base perplexity for each window of \(r.ctx) tokens (its second half scored); orange: worse, blue: better. Hover a bar for the values.</p>
            \(chunkBars(r.chunk_perplexity))
            """
        }
        body += "<h2>All figures</h2><table>"
        for (k, v) in r.tableRows() { body += "<tr><th>\(esc(k))</th><td>\(esc(v))</td></tr>" }
        body += "</table>"
        body += """
        <p class="note">Perplexity: exp of the mean negative log-likelihood of the true next token (± one standard error).
        KL divergence: Σ p<sub>base</sub> log(p<sub>base</sub>/p<sub>quant</sub>) over the vocabulary, per token.
        Δp: p<sub>quant</sub> − p<sub>base</sub> of the base's most likely token. Made by <code>octet compare</code>.</p>
        """
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>octet compare — \(esc(r.quant.model))</title>
        <style>
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2330;background:#f6f7f9;margin:0}
        main{max-width:980px;margin:0 auto;padding:28px 36px 48px;background:#fff;min-height:100vh;box-shadow:0 0 24px #0001}
        h1{font-size:26px;margin:0 0 6px}h2{font-size:18px;margin:30px 0 4px;border-bottom:1px solid #e3e6ec;padding-bottom:4px}
        .sub{color:#333;margin:0 0 16px}.sub span{color:#778}.note{color:#5b6475;font-size:13px;margin:2px 0 8px}
        .cards{display:flex;gap:12px;flex-wrap:wrap}.card{flex:1;min-width:170px;border:1px solid #e3e6ec;border-radius:10px;padding:12px 14px;background:#fbfcfe}
        .card .k{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#667}.card .v{font-size:26px;font-weight:650;margin:2px 0}.card .d{font-size:12px;color:#778}
        table{border-collapse:collapse;width:100%;font-size:14px}th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #eef0f3}th{font-weight:500;color:#445;width:34%}
        td{font-variant-numeric:tabular-nums}svg{display:block;margin:6px 0}svg text{font:12px system-ui,sans-serif;fill:#445}
        </style></head><body><main>
        \(body)
        </main></body></html>

        """
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func card(_ k: String, _ v: String, _ d: String) -> String {
        "<div class=\"card\"><div class=\"k\">\(esc(k))</div><div class=\"v\">\(esc(v))</div><div class=\"d\">\(esc(d))</div></div>"
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    /// Counts per log-spaced bin as bars; the values below the first edge get their own bar on the left.
    static func histogram(_ r: ComparisonReport) -> String {
        let h = r.kl_histogram
        let W = 900.0, H = 330.0, left = 56.0, right = 16.0, top = 56.0, bottom = 46.0
        let belowW = h.below > 0 ? 46.0 : 0
        let x0 = left + belowW, x1 = W - right, y0 = top, y1 = H - bottom
        let lo = h.log10_edges.first!, hi = h.log10_edges.last!
        func x(_ e: Double) -> Double { x0 + (e - lo) / (hi - lo) * (x1 - x0) }
        let maxCount = Double(max(h.counts.max() ?? 0, h.below, 1))
        func y(_ c: Double) -> Double { y1 - c / maxCount * (y1 - y0) }
        var s = "<svg width=\"\(Int(W))\" height=\"\(Int(H))\" viewBox=\"0 0 \(Int(W)) \(Int(H))\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"KL divergence histogram\">"
        // Grid and y axis.
        for t in niceTicks(maxCount) {
            s += "<line x1=\"\(f(left))\" x2=\"\(f(x1))\" y1=\"\(f(y(t)))\" y2=\"\(f(y(t)))\" stroke=\"#eceef2\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(y(t) + 4))\" text-anchor=\"end\">\(Int(t))</text>"
        }
        if h.below > 0 {
            s += "<rect x=\"\(f(left + 6))\" y=\"\(f(y(Double(h.below))))\" width=\"\(f(belowW - 14))\" height=\"\(f(y1 - y(Double(h.below))))\" fill=\"#b8bfcc\"><title>\(h.below) tokens below 1e\(Int(lo))</title></rect>"
            s += "<text x=\"\(f(left + belowW / 2 - 1))\" y=\"\(f(y1 + 16))\" text-anchor=\"middle\">&lt;1e\(Int(lo))</text>"
        }
        for (i, c) in h.counts.enumerated() where c > 0 {
            let a = x(h.log10_edges[i]), b = x(h.log10_edges[i + 1])
            s += "<rect x=\"\(f(a + 0.5))\" y=\"\(f(y(Double(c))))\" width=\"\(f(max(b - a - 1, 0.5)))\" height=\"\(f(y1 - y(Double(c))))\" fill=\"#4c72b0\"><title>\(c) tokens with KL in [1e\(String(format: "%.2f", h.log10_edges[i])), 1e\(String(format: "%.2f", h.log10_edges[i + 1])))</title></rect>"
        }
        // X axis with decades.
        s += "<line x1=\"\(f(x0))\" x2=\"\(f(x1))\" y1=\"\(f(y1))\" y2=\"\(f(y1))\" stroke=\"#667\"/>"
        var e = lo
        while e <= hi + 1e-9 {
            s += "<line x1=\"\(f(x(e)))\" x2=\"\(f(x(e)))\" y1=\"\(f(y1))\" y2=\"\(f(y1 + 5))\" stroke=\"#667\"/>"
            s += "<text x=\"\(f(x(e)))\" y=\"\(f(y1 + 18))\" text-anchor=\"middle\">1e\(Int(e.rounded()))</text>"
            e += 1
        }
        s += "<text x=\"\(f((x0 + x1) / 2))\" y=\"\(f(H - 6))\" text-anchor=\"middle\">KL(base ‖ quantized) per token, nats</text>"
        // Markers.
        for (k, (label, v, color)) in [("median", r.kl.median, "#2a9d8f"), ("mean", r.kl.mean, "#e76f51"), ("p99", r.kl.p99, "#8e44ad")].enumerated() where v > 0 {
            let lv = log10(v)
            guard lv >= lo && lv <= hi else { continue }
            // Labels on three rows above the bars, so that close markers stay readable.
            let ly = 14 + 15 * Double(k)
            s += "<line x1=\"\(f(x(lv)))\" x2=\"\(f(x(lv)))\" y1=\"\(f(ly - 10))\" y2=\"\(f(y1))\" stroke=\"\(color)\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>"
            s += "<text x=\"\(f(x(lv) + 4))\" y=\"\(f(ly))\" style=\"fill:\(color)\">\(label) \(String(format: "%.3g", v))</text>"
        }
        return s + "</svg>"
    }

    /// Where the routing axis starts: 0 when agreement is low, otherwise just below the lowest
    /// layer, in 5 % steps (at most 95 %).
    static func routingFloor(_ ra: ComparisonReport.Routing) -> Double {
        min(max(((ra.per_layer.min() ?? 0) - 0.02) * 20, 0).rounded(.down) / 20, 0.95)
    }

    static func routingBars(_ ra: ComparisonReport.Routing) -> String {
        let n = ra.per_layer.count
        let W = 900.0, H = 260.0, left = 70.0, right = 16.0, top = 18.0, bottom = 40.0
        let x0 = left, x1 = W - right, y0 = top, y1 = H - bottom
        let floorV = routingFloor(ra)
        func y(_ v: Double) -> Double { y1 - (max(v, floorV) - floorV) / (1 - floorV) * (y1 - y0) }
        let slot = (x1 - x0) / Double(max(n, 1)), bw = min(slot * 0.7, 60)
        var s = "<svg width=\"\(Int(W))\" height=\"\(Int(H))\" viewBox=\"0 0 \(Int(W)) \(Int(H))\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"routing agreement per layer\">"
        for k in 0...4 {
            let t = floorV + (1 - floorV) * Double(k) / 4
            s += "<line x1=\"\(f(x0))\" x2=\"\(f(x1))\" y1=\"\(f(y(t)))\" y2=\"\(f(y(t)))\" stroke=\"#eceef2\"/>"
            s += "<text x=\"\(f(x0 - 6))\" y=\"\(f(y(t) + 4))\" text-anchor=\"end\">\(String(format: floorV == 0 ? "%.0f %%" : "%.1f %%", t * 100))</text>"
        }

        for (l, v) in ra.per_layer.enumerated() {
            let cx = x0 + slot * (Double(l) + 0.5)
            s += "<rect x=\"\(f(cx - bw / 2))\" y=\"\(f(y(v)))\" width=\"\(f(bw))\" height=\"\(f(y1 - y(v)))\" fill=\"#55a868\"><title>layer \(l): \(String(format: "%.2f", v * 100)) %</title></rect>"
            if n <= 40 {
                s += "<text x=\"\(f(cx))\" y=\"\(f(y(v) - 4))\" text-anchor=\"middle\">\(String(format: n <= 16 ? "%.1f" : "%.0f", v * 100))</text>"
            }
            if n <= 40 || l % 4 == 0 {
                s += "<text x=\"\(f(cx))\" y=\"\(f(y1 + 16))\" text-anchor=\"middle\">\(l)</text>"
            }
        }
        s += "<line x1=\"\(f(x0))\" x2=\"\(f(x1))\" y1=\"\(f(y(ra.overall)))\" y2=\"\(f(y(ra.overall)))\" stroke=\"#c44e52\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>"
        s += "<line x1=\"\(f(x0))\" x2=\"\(f(x1))\" y1=\"\(f(y1))\" y2=\"\(f(y1))\" stroke=\"#667\"/>"
        s += "<text x=\"\(f((x0 + x1) / 2))\" y=\"\(f(H - 6))\" text-anchor=\"middle\">layer</text>"
        return s + "</svg>"
    }

    /// Per window: the change of perplexity in %, as bars around 0.
    static func chunkBars(_ c: ComparisonReport.ChunkSeries) -> String {
        let d = zip(c.base, c.quant).map { ($1 / $0 - 1) * 100 }
        let W = 900.0, H = 240.0, left = 64.0, right = 16.0, top = 14.0, bottom = 40.0
        let x0 = left, x1 = W - right, y0 = top, y1 = H - bottom
        var m = d.map(abs).max() ?? 0
        if m <= 0 { m = 1 }
        m *= 1.1
        let n = d.count
        func y(_ v: Double) -> Double { y0 + (m - v) / (2 * m) * (y1 - y0) }
        let slot = (x1 - x0) / Double(max(n, 1)), bw = max(min(slot * 0.75, 40), 1)
        var s = "<svg width=\"\(Int(W))\" height=\"\(Int(H))\" viewBox=\"0 0 \(Int(W)) \(Int(H))\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"perplexity change per window\">"
        for k in -2...2 {
            let v = m / 1.1 * Double(k) / 2
            s += "<line x1=\"\(f(x0))\" x2=\"\(f(x1))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" stroke=\"\(k == 0 ? "#667" : "#eceef2")\"/>"
            s += "<text x=\"\(f(x0 - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(String(format: "%+.3g %%", v))</text>"
        }
        for (i, v) in d.enumerated() {
            let cx = x0 + slot * (Double(i) + 0.5)
            let top = min(y(v), y(0)), h = abs(y(v) - y(0))
            s += "<rect x=\"\(f(cx - bw / 2))\" y=\"\(f(top))\" width=\"\(f(bw))\" height=\"\(f(max(h, 0.5)))\" fill=\"\(v > 0 ? "#dd8452" : "#4c72b0")\"><title>window \(i): \(String(format: "%.3f → %.3f (%+.3f %%)", c.base[i], c.quant[i], v))</title></rect>"
        }
        let step = max(1, n / 12)
        for i in stride(from: 0, to: n, by: step) {
            s += "<text x=\"\(f(x0 + slot * (Double(i) + 0.5)))\" y=\"\(f(y1 + 16))\" text-anchor=\"middle\">\(i)</text>"
        }
        s += "<text x=\"\(f((x0 + x1) / 2))\" y=\"\(f(H - 6))\" text-anchor=\"middle\">window</text>"
        return s + "</svg>"
    }

    /// Round tick values from 0 to about `maxValue`.
    static func niceTicks(_ maxValue: Double) -> [Double] {
        let raw = maxValue / 4
        let mag = pow(10, (log10(max(raw, 1))).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        return stride(from: 0.0, through: maxValue, by: max(step, 1)).map { $0 }
    }
}
