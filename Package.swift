// swift-tools-version:6.0
import PackageDescription

/// Hot code is compiled for Haswell-class x86-64 (AVX2, FMA, F16C); the `octet` binary checks the CPU
/// at start-up and refuses to run on a machine without them instead of dying with SIGILL.
/// The library modules are optimised in debug builds too (`-O` after SwiftPM's `-Onone`): the
/// tests run whole models through them, and what they measure (e.g. that decoding allocates
/// nothing per token) is a property of the optimised code users run.
let simd: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell", "-enforce-exclusivity=unchecked"]),
    .unsafeFlags(["-O"], .when(configuration: .debug)),
]

let package = Package(
    name: "Octet",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "octet", targets: ["OctetCLI"]),
        .library(name: "Octet", targets: ["GGUF", "Kernels", "Checkpoint", "Converter", "Tokenizer", "Engine", "Generation", "Evaluation"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    ],
    targets: [
        // File format: GGUF v3 reader (mapped, validated) and streaming writer. Knows no model.
        .target(name: "GGUF", dependencies: ["Kernels"], swiftSettings: simd),
        // Quantized types (Q8_0, FP8 E4M3, BF16, F16), scalar twins, SIMD kernels, worker pool.
        .target(name: "Kernels", dependencies: ["CHints", "Q8_0Kernels", "AVX512Kernels"], swiftSettings: simd),
        // The Q8_0 integer products, written once for AVX2 and AVX-VNNI; the one module built with
        // AVX-VNNI, whose two VNNI entry points Kernels calls only on CPUs that have it.
        .target(name: "Q8_0Kernels", dependencies: ["CHints"], swiftSettings: [
            .unsafeFlags(["-target-cpu", "haswell", "-Xcc", "-mavxvnni", "-enforce-exclusivity=unchecked"]),
            .unsafeFlags(["-O"], .when(configuration: .debug)),
        ]),
        // The float, FP8 and Q8_0 products on AVX-512, with the AVX2 kernels' bits: the one module
        // built with AVX-512, whose entry points Kernels calls only on CPUs that have it.
        .target(name: "AVX512Kernels", dependencies: ["CHints", "Q8_0Kernels"], swiftSettings: [
            .unsafeFlags(["-target-cpu", "haswell", "-Xcc", "-mavx512f", "-Xcc", "-mavx512bw", "-Xcc", "-mavx512vl",
                          "-Xcc", "-mavx512dq", "-Xcc", "-mavx512vnni", "-enforce-exclusivity=unchecked"]),
            .unsafeFlags(["-O"], .when(configuration: .debug)),
        ]),
        // Two compiler hints Swift cannot spell: a prefetch and an optimization barrier (header-only C).
        .target(name: "CHints"),
        // SentencePiece BPE tokenizer; pure: takes bytes, never does I/O.
        .target(name: "Tokenizer", swiftSettings: simd),
        // 16-bit checkpoint readers (Hugging Face safetensors, Mistral consolidated), mapped.
        .target(name: "Checkpoint", dependencies: ["Kernels"], swiftSettings: simd),
        // Checkpoint -> GGUF conversion, streaming, parallel quantization.
        .target(name: "Converter", dependencies: ["GGUF", "Kernels", "Checkpoint", "Tokenizer"], swiftSettings: simd),
        // Mixtral forward pass over mapped tensors: config, weights, KV cache, MoE.
        .target(name: "Engine", dependencies: ["GGUF", "Kernels", "CHints", "Checkpoint", "Tokenizer"], swiftSettings: simd),
        // Sampling, chat template, sessions: text in, text out.
        .target(name: "Generation", dependencies: ["Engine", "Tokenizer", "Kernels"], swiftSettings: simd),
        // Quality of a quantized model against the original: perplexity, KL divergence, agreement.
        .target(name: "Evaluation", dependencies: ["Engine", "Tokenizer", "Kernels", "Generation"], swiftSettings: simd),
        // OpenAI-compatible HTTP server over one Session (the only module that imports Hummingbird).
        .target(name: "Server", dependencies: ["Engine", "Generation", "Tokenizer", "Kernels", .product(name: "Hummingbird", package: "hummingbird")], swiftSettings: simd),
        // The thin command-line executable.
        .executableTarget(
            name: "OctetCLI",
            dependencies: [
                "GGUF", "Kernels", "Checkpoint", "Converter", "Tokenizer", "Engine", "Generation", "Evaluation", "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: simd),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "Kernels"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Q8_0Kernels", "AVX512Kernels"], swiftSettings: simd),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer"]),
        .testTarget(name: "ConverterTests", dependencies: ["Converter", "GGUF", "Checkpoint", "Kernels"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Converter", "GGUF", "Checkpoint", "Kernels"]),
        .testTarget(name: "GenerationTests", dependencies: ["Generation", "Engine", "Tokenizer"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Engine", "Generation", .product(name: "HummingbirdTesting", package: "hummingbird")]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Engine", "Converter", "Checkpoint", "GGUF", "Kernels"]),
    ],
    swiftLanguageModes: [.v5]
)
