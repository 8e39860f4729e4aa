/// Which experts' pages stay in memory when the model file does not fit in it.
///
/// Every chosen expert is counted as held. While memory suffices nothing is evicted (the budget
/// is ``unlimited``). When the kernel starts reclaiming our pages, which shows as held experts
/// found missing when chosen again, eviction starts: the budget becomes one less than the experts
/// held, and admitting an expert beyond it first gives back the least recently chosen one whole
/// (the caller's `evict`, ``MappedFile/evict(_:)``).
///
/// Left to itself, the kernel's reclaim under a memory limit unmaps pages one at a time (reverse
/// map walks, TLB shootdowns to the other core) and takes pages that readahead has just brought
/// in, before the kernels read them; those come back 4 KiB per page fault. Giving experts back
/// before the limit is reached keeps reclaim out of the token loop. On the bench model under a
/// cap of half its file size, decoding went from 16.5-26.5 to 31.4-39.2 tok/s, and the bytes read
/// from disk per token from 23-28 MB to 17-19 MB (README, "Performance").
///
/// Pure bookkeeping, driven by the transformer: ``beginPass(evict:)`` at each forward pass,
/// ``choose(layer:expert:chosenNow:evict:)`` for each chosen expert, ``reclaimed(singleToken:chosenLayer:chosenNow:evict:)``
/// when a page it should hold is missing. Allocates only in `init`.
struct ExpertCache {
    let layers: Int
    let experts: Int
    /// Experts allowed in memory at once; ``unlimited`` until the kernel reclaims.
    private(set) var budget = ExpertCache.unlimited
    /// Experts counted as in memory.
    private(set) var held = 0
    /// Clock of each expert's last choice (`layer * experts + expert`), −1 when not held, 0 when
    /// only earlier tokens of a multi-token pass chose it (see ``choose(layer:expert:byLastToken:chosenNow:evict:)``).
    private var lastUse: [Int]
    private var clock = 0
    /// Reclaims seen in the current window, and the passes the window has left.
    private var reclaimsInWindow = 0, windowLeft = 0
    private var passesToRelax = ExpertCache.relaxEvery
    private var loweredThisPass = false

    static let unlimited = Int.max
    /// Eviction starts after ``reclaimsToStart`` reclaims within ``window`` single-token passes:
    /// when memory nearly suffices, the odd page the kernel takes costs less than giving whole
    /// experts back (at a cap of 75 % of the bench model's file, starting at the first reclaim
    /// made decoding slower than leaving it to the kernel).
    static let window = 8
    /// One reclaim per layer in a window: with top-2 routing, 1 in 16 of the window's choices.
    /// Tuned on the 8-layer bench model (8 reclaims); a 32-layer model needs 32, the same rate.
    var reclaimsToStart: Int { max(1, layers) }
    /// While eviction is on, the budget rises by one every ``relaxEvery`` passes: the limit may
    /// have moved, and a budget lowered by a chance reclaim recovers.
    static let relaxEvery = 16

    init(layers: Int, experts: Int) {
        self.layers = layers
        self.experts = experts
        lastUse = Array(repeating: -1, count: layers * experts)
    }

    /// Whether the budget is below the number of experts (eviction is on).
    var isLimited: Bool { budget < layers * experts }

    func isHeld(layer: Int, expert: Int) -> Bool { lastUse[layer * experts + expert] >= 0 }

    /// Call at the start of each forward pass.
    mutating func beginPass(evict: (Int, Int) -> Void) {
        loweredThisPass = false
        if windowLeft > 0 { windowLeft -= 1 }
        guard isLimited else { return }
        passesToRelax -= 1
        if passesToRelax <= 0 {
            passesToRelax = ExpertCache.relaxEvery
            setBudget(budget + 1 >= layers * experts ? ExpertCache.unlimited : budget + 1, evict: evict)
        }
    }

    /// Records that `expert` of `layer` is chosen now. If that holds one expert more than the
    /// budget allows, `evict(layer, expert)` is called for the least recently chosen one, never
    /// one of `layer`'s experts for which `chosenNow` is true.
    ///
    /// `byLastToken` is false for an expert that only earlier tokens of a multi-token pass chose
    /// (a prompt needs nearly every expert of every layer): it is then counted as chosen before
    /// any other, and is the first to go once its layer is done. So after a prompt the experts
    /// held are, in every layer, those the prompt's last token chose (what the next token most
    /// likely needs), rather than all the experts of the last layers while the first layers,
    /// which the next token needs first, hold none.
    mutating func choose(layer: Int, expert: Int, byLastToken: Bool = true, chosenNow: (Int) -> Bool,
                         evict: (Int, Int) -> Void) {
        let i = layer * experts + expert
        if lastUse[i] < 0 {
            held += 1
            shrink(keepingLayer: layer, chosenNow: chosenNow, keeping: i, evict: evict)
        }
        clock += 1
        lastUse[i] = byLastToken ? clock : 0
    }

    /// Pages we count on were missing: a held expert chosen again (`singleToken`: in a decoding
    /// pass; a prompt's pass checks every expert it chose at once, and says little about
    /// decoding), or, once eviction is on, a shared weight. Starts eviction (see ``window``) or
    /// lowers the budget, at most once per pass: one reclaim takes pages from several experts.
    mutating func reclaimed(singleToken: Bool, chosenLayer: Int, chosenNow: (Int) -> Bool, evict: (Int, Int) -> Void) {
        if !isLimited {
            guard singleToken else { return }
            if windowLeft == 0 { windowLeft = ExpertCache.window; reclaimsInWindow = 0 }
            reclaimsInWindow += 1
            guard reclaimsInWindow >= reclaimsToStart else { return }
        }
        guard !loweredThisPass else { return }
        loweredThisPass = true
        setBudget(held - 1, chosenLayer: chosenLayer, chosenNow: chosenNow, evict: evict)
    }

    /// Sets the budget (at least 1) and evicts least recently chosen experts down to it, never
    /// one of `chosenLayer`'s experts for which `chosenNow` is true.
    mutating func setBudget(_ newBudget: Int, chosenLayer: Int = -1, chosenNow: (Int) -> Bool = { _ in false },
                            evict: (Int, Int) -> Void) {
        budget = max(1, newBudget)
        shrink(keepingLayer: chosenLayer, chosenNow: chosenNow, keeping: -1, evict: evict)
    }

    private mutating func shrink(keepingLayer layer: Int, chosenNow: (Int) -> Bool, keeping: Int, evict: (Int, Int) -> Void) {
        while held > budget {
            var victim = -1, oldest = Int.max
            for j in 0..<lastUse.count where lastUse[j] >= 0 && lastUse[j] < oldest && j != keeping {
                if j / experts == layer && chosenNow(j % experts) { continue }
                victim = j; oldest = lastUse[j]
            }
            guard victim >= 0 else { return }
            lastUse[victim] = -1
            held -= 1
            evict(victim / experts, victim % experts)
        }
    }
}
