/// A binary max-heap of candidate BPE merges.
///
/// Order: higher score first; among equal scores, the smaller left symbol index
/// (the leftmost pair) first — the same order SentencePiece's agenda uses.
struct MergeQueue {
    /// A candidate merge of symbol `left` with symbol `right` into a piece of `size` bytes.
    struct Candidate {
        var score: Float
        var left: Int32
        var right: Int32
        var size: Int32
    }

    private var heap: [Candidate] = []

    init(reservingCapacity capacity: Int) {
        heap.reserveCapacity(capacity)
    }

    var isEmpty: Bool { heap.isEmpty }

    @inline(__always)
    private static func precedes(_ a: Candidate, _ b: Candidate) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }

    mutating func push(_ candidate: Candidate) {
        heap.append(candidate)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Candidate? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        heap[0] = last
        var parent = 0
        let count = heap.count
        while true {
            let left = 2 * parent + 1
            if left >= count { break }
            var best = left
            let right = left + 1
            if right < count && Self.precedes(heap[right], heap[left]) { best = right }
            guard Self.precedes(heap[best], heap[parent]) else { break }
            heap.swapAt(best, parent)
            parent = best
        }
        return top
    }
}
