#ifndef OCTET_CHINTS_H
#define OCTET_CHINTS_H
// Compiler hints the Swift kernels need and Swift cannot spell. Each inlines to nothing but
// the hint: this header is the whole module.

/// A read-prefetch hint for the cache line at `p` (x86 `prefetcht0`).
static inline __attribute__((always_inline)) void octet_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/// A read-prefetch hint that fills L2 but not L1 (x86 `prefetcht1`).
static inline __attribute__((always_inline)) void octet_prefetch_l2(const void *p) {
    __builtin_prefetch(p, 0, 2);
}

/// Eight Int32 lanes; Swift sees this type as `SIMD8<Int32>`.
typedef int octet_int32x8 __attribute__((ext_vector_type(8)));

/// Returns `v` unchanged, but hides how it was computed from the optimizer: an empty asm
/// statement, no instruction. Where one FP8 block's converted weights serve four vectors, LLVM
/// would otherwise take the vectors apart into lanes and rebuild them per vector. (`target("avx")` lets the
/// header parse in modules built without `-target-cpu haswell`, e.g. the tests.)
static inline __attribute__((always_inline, target("avx"))) octet_int32x8 octet_opaque(octet_int32x8 v) {
    __asm__("" : "+x"(v));
    return v;
}
#endif
