/// A Mixtral-family model's shape and constants, named as everywhere in Octet.
public struct ModelConfig: Sendable, Equatable, Codable {
    public var nVocab: Int
    public var nEmbd: Int
    public var nLayers: Int
    public var nHeads: Int
    public var nKVHeads: Int
    public var headDim: Int
    /// Hidden size of one expert's (or the dense) feed-forward network.
    public var nFF: Int
    /// Experts per layer; 0 for a dense model (one always-chosen FFN).
    public var nExperts: Int
    public var nExpertsUsed: Int
    public var ropeTheta: Float
    /// Dimensions of each head that RoPE rotates (= headDim for Mixtral).
    public var ropeDim: Int
    public var normEps: Float
    public var contextLength: Int

    public init(nVocab: Int, nEmbd: Int, nLayers: Int, nHeads: Int, nKVHeads: Int, headDim: Int, nFF: Int,
                nExperts: Int, nExpertsUsed: Int, ropeTheta: Float, ropeDim: Int, normEps: Float, contextLength: Int) {
        self.nVocab = nVocab; self.nEmbd = nEmbd; self.nLayers = nLayers; self.nHeads = nHeads
        self.nKVHeads = nKVHeads; self.headDim = headDim; self.nFF = nFF; self.nExperts = nExperts
        self.nExpertsUsed = nExpertsUsed; self.ropeTheta = ropeTheta; self.ropeDim = ropeDim
        self.normEps = normEps; self.contextLength = contextLength
    }

    public var isMoE: Bool { nExperts > 0 }

    /// Checks the numbers fit together; `source` names the file for the message.
    public func validate(source: String) throws {
        func fail(_ m: String) -> CheckpointError { CheckpointError(source, "inconsistent model configuration: \(m)") }
        for (name, v) in [("vocab", nVocab), ("embedding length", nEmbd), ("layers", nLayers), ("heads", nHeads),
                          ("KV heads", nKVHeads), ("head dim", headDim), ("FFN length", nFF), ("context length", contextLength)] where v <= 0 {
            throw fail("\(name) is \(v)")
        }
        if nHeads % nKVHeads != 0 { throw fail("\(nHeads) heads are not a multiple of \(nKVHeads) KV heads") }
        if headDim % 2 != 0 || ropeDim % 2 != 0 || ropeDim > headDim { throw fail("head dim \(headDim) / RoPE dim \(ropeDim)") }
        if nExperts < 0 || (nExperts > 0 && !(1...nExperts).contains(nExpertsUsed)) { throw fail("\(nExpertsUsed) of \(nExperts) experts used per token") }
        if !(ropeTheta > 0) || !(normEps > 0) { throw fail("RoPE theta \(ropeTheta), norm eps \(normEps)") }
    }
}
