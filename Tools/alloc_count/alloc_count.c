/*
 * alloc_count: an LD_PRELOAD shim that counts heap allocation calls (glibc).
 *
 *   cc -O2 -shared -fPIC -o liballoc_count.so Tools/alloc_count/alloc_count.c
 *   ALLOC_COUNT_REPORT=1 LD_PRELOAD=$PWD/liballoc_count.so octet generate ...
 *
 * Every malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc and pvalloc
 * call (any thread) is counted, then forwarded to glibc's own allocator (__libc_*), so the
 * program behaves as without the shim. A process can read the counters in-process with
 * dlsym(RTLD_DEFAULT, "octet_alloc_count") (GenerationTests does), and with
 * ALLOC_COUNT_REPORT set the totals are printed to stderr at exit:
 *   alloc_count: allocations=N frees=N bytes=N
 * To find where allocations come from, octet_alloc_trace(N) (in-process, via dlsym) prints the
 * call stacks of the next N allocations to stderr; from outside, ALLOC_COUNT_TRACE=N with
 * ALLOC_COUNT_TRACE_AFTER=K prints the stacks of allocations K+1 … K+N (pipe through
 * swift-demangle; resolve bare addresses with addr2line -f -e BINARY).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <string.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static _Atomic unsigned long long n_alloc, n_free, n_bytes;

static _Atomic int trace_left;
void octet_alloc_trace(int n);
static __thread int in_trace;

static void trace(size_t bytes) {
    if (in_trace || atomic_load_explicit(&trace_left, memory_order_relaxed) <= 0) return;
    if (atomic_fetch_sub(&trace_left, 1) <= 0) return;
    in_trace = 1;
    void *frames[32];
    int n = backtrace(frames, 32);
    char line[64];
    int len = snprintf(line, sizeof line, "alloc_count: allocation of %zu bytes at\n", bytes);
    if (write(2, line, (size_t)len) < 0) {}
    backtrace_symbols_fd(frames, n, 2);
    in_trace = 0;
}

static unsigned long long trace_after;  /* ALLOC_COUNT_TRACE_AFTER */
static int trace_pending;                /* ALLOC_COUNT_TRACE, armed once trace_after is reached */

static inline void count(size_t bytes) {
    unsigned long long k = atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
    if (trace_pending && k == trace_after && !in_trace) {
        int n = trace_pending;
        trace_pending = 0;
        octet_alloc_trace(n);
    }
    atomic_fetch_add_explicit(&n_bytes, bytes, memory_order_relaxed);
    if (atomic_load_explicit(&trace_left, memory_order_relaxed) > 0) trace(bytes);
}

/* Print the call stacks of the next n allocations (0 stops). */
void octet_alloc_trace(int n) {
    if (n > 0) {  /* backtrace() allocates on first use (it loads libgcc_s): do that now */
        void *f[2];
        in_trace = 1; backtrace(f, 2); in_trace = 0;
    }
    atomic_store(&trace_left, n);
}

/* Allocation calls so far (every thread). */
unsigned long long octet_alloc_count(void) { return atomic_load(&n_alloc); }
unsigned long long octet_free_count(void) { return atomic_load(&n_free); }
unsigned long long octet_alloc_bytes(void) { return atomic_load(&n_bytes); }

void *malloc(size_t n) { count(n); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count(a * b); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count(n); return __libc_realloc(p, n); }
void free(void *p) {
    if (p) atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
    __libc_free(p);
}
void *memalign(size_t align, size_t n) { count(n); return __libc_memalign(align, n); }
void *aligned_alloc(size_t align, size_t n) { count(n); return __libc_memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    count(n);
    void *p = __libc_memalign(align, n);
    if (!p && n) return ENOMEM;
    *out = p;
    return 0;
}
void *valloc(size_t n) { count(n); return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n); }
void *pvalloc(size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    count(n);
    return __libc_memalign(page, (n + page - 1) / page * page);
}

__attribute__((constructor)) static void setup(void) {
    const char *n = getenv("ALLOC_COUNT_TRACE"), *after = getenv("ALLOC_COUNT_TRACE_AFTER");
    if (n && atoi(n) > 0) {
        trace_after = after ? strtoull(after, NULL, 10) : 0;
        if (trace_after == 0) octet_alloc_trace(atoi(n)); else trace_pending = atoi(n);
    }
}

__attribute__((destructor)) static void report(void) {
    if (getenv("ALLOC_COUNT_REPORT"))
        fprintf(stderr, "alloc_count: allocations=%llu frees=%llu bytes=%llu\n",
                (unsigned long long)n_alloc, (unsigned long long)n_free, (unsigned long long)n_bytes);
}
