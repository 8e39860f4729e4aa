#ifndef OCTET_CPREFETCH_H
#define OCTET_CPREFETCH_H
/// A read-prefetch hint for the cache line at `p` (x86 `prefetcht0`). Swift has no spelling
/// for it; this header is the whole module.
static inline __attribute__((always_inline)) void octet_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}
#endif
