import Foundation

/// Mean with its standard error, and order statistics, of a sample (per-token KL values).
///
/// Percentiles interpolate linearly between order statistics — the value at rank q·(n−1) of the
/// sorted sample — which is NumPy's default (`np.percentile(x, q)`, method "linear").
public struct KLStats: Sendable, Equatable {
    public var count: Int
    public var mean: Double
    /// Standard error of the mean: sample standard deviation (n − 1) / √n; 0 for n < 2.
    public var meanStderr: Double
    public var median: Double
    public var p99: Double
    public var max: Double

    public init(_ values: [Double]) {
        count = values.count
        guard !values.isEmpty else { mean = 0; meanStderr = 0; median = 0; p99 = 0; max = 0; return }
        let n = Double(values.count)
        mean = values.reduce(0, +) / n
        if values.count > 1 {
            let m = mean
            let ss = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
            meanStderr = (ss / (n - 1)).squareRoot() / n.squareRoot()
        } else {
            meanStderr = 0
        }
        let sorted = values.sorted()
        median = Self.percentile(sorted: sorted, 50)
        p99 = Self.percentile(sorted: sorted, 99)
        max = sorted.last!
    }

    /// The `q`-th percentile (0…100) of an ascending sample, linear interpolation.
    public static func percentile(sorted s: [Double], _ q: Double) -> Double {
        precondition(!s.isEmpty)
        let rank = q / 100 * Double(s.count - 1)
        let lo = Int(rank.rounded(.down)), hi = Swift.min(lo + 1, s.count - 1)
        let f = rank - Double(lo)
        return s[lo] + (s[hi] - s[lo]) * f
    }
}

/// Counts of per-token values in logarithmic bins (for the KL-divergence plot).
public struct LogHistogram: Sendable, Codable, Equatable {
    /// Bin edges as powers of ten: bin i holds values in [10^edges[i], 10^edges[i+1]).
    public var log10_edges: [Double]
    public var counts: [Int]
    /// Values below the first edge (zeros included).
    public var below: Int

    /// Bins of `binsPerDecade` per decade from the decade of the smallest positive value (at
    /// least `10^floorExponent`) to the decade above the largest.
    public init(_ values: [Double], binsPerDecade: Int = 4, floorExponent: Double = -9) {
        let positive = values.filter { $0 > 0 }
        guard let lo = positive.min(), let hi = positive.max() else {
            log10_edges = [floorExponent, floorExponent + 1]; counts = [0]; below = values.count; return
        }
        let first = Swift.max(floorExponent, log10(lo).rounded(.down))
        let last = Swift.max(first + 1, log10(hi).rounded(.down) + 1)
        let nBins = Int((last - first) * Double(binsPerDecade))
        log10_edges = (0...nBins).map { first + Double($0) / Double(binsPerDecade) }
        counts = Array(repeating: 0, count: nBins)
        below = 0
        for v in values {
            guard v > 0, log10(v) >= first else { below += 1; continue }
            let b = Int(((log10(v) - first) * Double(binsPerDecade)).rounded(.down))
            counts[Swift.min(Swift.max(b, 0), nBins - 1)] += 1
        }
    }
}
