import Checkpoint
/// Mixtral's routing rule: take the top-k router logits (highest first, ties to the lower index),
/// then a softmax over just those k — the same as renormalising the top-k of a softmax over all.
public enum ExpertRouter {
    /// Writes the k chosen expert indices and their weights (summing to 1).
    @inlinable
    public static func route(_ logits: UnsafePointer<Float>, count n: Int, k: Int,
                             experts: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>) {
        for j in 0..<k { experts[j] = -1 }
        for e in 0..<n {
            // Insert e into the sorted top-k list.
            var pos = k
            while pos > 0 && (experts[pos - 1] < 0 || logits[Int(experts[pos - 1])] < logits[e]) { pos -= 1 }
            if pos < k {
                var j = k - 1
                while j > pos { experts[j] = experts[j - 1]; j -= 1 }
                experts[pos] = Int32(e)
            }
        }
        let top = logits[Int(experts[0])]
        var sum: Float = 0
        for j in 0..<k { weights[j] = expf(logits[Int(experts[j])] - top); sum += weights[j] }
        for j in 0..<k { weights[j] /= sum }
    }
}

#if canImport(Glibc)
import Glibc
#endif
