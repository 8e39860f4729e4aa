#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A small persistent pool of worker threads that run one parallel section at a time.
///
/// The calling thread takes part in every section. Work is cut into chunks handed out from an
/// atomic counter, so whichever threads are actually running take the chunks: when another
/// process holds the other core, the caller simply does more of the work instead of waiting at a
/// barrier for a descheduled worker. Idle workers sleep on a condition variable; nothing spins
/// (on a shared 2-core laptop a spinning barrier can slow decoding by an order of magnitude).
/// A section in the context form allocates nothing.
public final class WorkerPool: @unchecked Sendable {
    /// Number of threads, the calling thread included.
    public let threads: Int
    /// Bytes of per-thread scratch (see ``scratch(_:)``).
    public let scratchBytes: Int
    private let scratchBase: UnsafeMutableRawPointer

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let finished = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var generation = 0
    private var stopping = false
    /// Workers currently holding the section's closure (mutex-protected).
    private var active = 0
    private var body: SectionBody?
    private var context: UnsafeRawPointer?
    /// The section: `count` items in units of `granule` (the last unit may be short).
    private var count = 0, granule = 1, unitCount = 0, minChunkUnits = 1
    private let nextUnit = Atomic<Int>(0)
    private let unitsDone = Atomic<Int>(0)
    private var handles: [pthread_t] = []

    /// - Parameters:
    ///   - threads: threads including the caller; defaults to the number of online CPUs.
    ///   - scratchBytes: per-thread scratch for kernels that stage data, e.g. the block scales of
    ///     a group of Q8_0 rows for the batched products (8 Mixtral FFN rows and a tile: 21.5 KB).
    public init(threads: Int = WorkerPool.onlineCPUs, scratchBytes: Int = 256 << 10) {
        self.threads = max(1, threads)
        self.scratchBytes = (max(scratchBytes, 64) + 63) & ~63
        scratchBase = .allocate(byteCount: self.threads * self.scratchBytes, alignment: 64)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(finished, nil)
        for index in 1..<self.threads {
            let box = Unmanaged.passRetained(WorkerStart(pool: self, index: index))
            var handle = pthread_t()
            let rc = pthread_create(&handle, nil, { arg in
                let start = Unmanaged<WorkerStart>.fromOpaque(arg!).takeRetainedValue()
                start.pool.workerLoop(index: start.index)
                return nil
            }, box.toOpaque())
            precondition(rc == 0, "pthread_create failed: \(rc)")
            handles.append(handle)
        }
    }

    deinit {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for h in handles { pthread_join(h, nil) }
        pthread_cond_destroy(wake); pthread_cond_destroy(finished); pthread_mutex_destroy(mutex)
        wake.deallocate(); finished.deallocate(); mutex.deallocate()
        scratchBase.deallocate()
    }

    /// Thread `thread`'s scratch: ``scratchBytes`` bytes, 64-byte aligned, for the duration of a
    /// section body running as that thread (the `thread` argument of the body).
    public func scratch(_ thread: Int) -> UnsafeMutableRawPointer {
        precondition(thread >= 0 && thread < threads)
        return scratchBase + thread * scratchBytes
    }

    public static var onlineCPUs: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// The body of an allocation-free parallel section, called as `body(context, lo, hi, thread)`
    /// for the rows `lo..<hi`. A C function pointer: the closure literal captures nothing, and
    /// reads what it needs through `context`.
    public typealias SectionBody = @convention(c) (UnsafeRawPointer, Int, Int, Int) -> Void

    /// Runs `body(context, lo, hi, thread)` over chunks covering `0..<count` exactly once, on
    /// whichever threads are free; `thread` (0..<threads) identifies the running thread for
    /// per-thread scratch. Chunk boundaries are multiples of `granularity`. Chunks shrink as the
    /// section drains (each takes 1/(2·threads) of what is left, down to 1/(16·threads) of the
    /// whole), so the threads finish close together: the last chunk, which one thread runs
    /// while the others wait, is small. Allocates nothing: the form for code inside the token loop.
    public func parallelFor(_ count: Int, granularity: Int = 1, context: UnsafeRawPointer, _ body: SectionBody) {
        parallelFor(count, granularity: granularity, context: context, body, first: {})
    }

    /// ``parallelFor(_:granularity:context:_:)`` where the calling thread first runs `first`,
    /// after waking the workers, which meanwhile start on the chunks: a short serial job that the
    /// section does not depend on (e.g. asking for pages a later section needs) overlaps with it.
    public func parallelFor(_ count: Int, granularity: Int = 1, context: UnsafeRawPointer, _ body: SectionBody,
                            first: () -> Void) {
        if count <= 0 { first(); return }
        let g = max(1, granularity)
        let units = (count + g - 1) / g
        if threads == 1 || units == 1 {
            first()
            body(context, 0, count, 0)
            return
        }
        pthread_mutex_lock(mutex)
        self.body = body
        self.context = context
        self.count = count
        granule = g
        unitCount = units
        minChunkUnits = max(1, units / (16 * threads))
        nextUnit.store(0, ordering: .relaxed)
        unitsDone.store(0, ordering: .relaxed)
        generation &+= 1
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        first()
        work(body, context, thread: 0)
        pthread_mutex_lock(mutex)
        while unitsDone.load(ordering: .acquiring) < units || active > 0 { pthread_cond_wait(finished, mutex) }
        self.body = nil
        self.context = nil
        pthread_mutex_unlock(mutex)
    }

    /// ``parallelFor(_:granularity:context:_:)`` with `context` pointing at a copy of `value`
    /// for the duration of the call.
    @inlinable
    public func parallelFor<Context>(_ count: Int, granularity: Int = 1, with value: Context, _ body: SectionBody,
                                     first: () -> Void = {}) {
        withUnsafePointer(to: value) { parallelFor(count, granularity: granularity, context: UnsafeRawPointer($0), body, first: first) }
    }

    /// Closure form of ``parallelFor(_:granularity:context:_:)``: `body(range, thread)`. Making the
    /// closure reachable from the workers boxes it (one small allocation per call), so code run
    /// per token uses the context form.
    public func parallelFor(_ count: Int, granularity: Int = 1, _ body: (Range<Int>, Int) -> Void) {
        withoutActuallyEscaping(body) { section in
            var box = section
            withUnsafePointer(to: &box) { p in
                parallelFor(count, granularity: granularity, context: UnsafeRawPointer(p)) { ctx, lo, hi, thread in
                    ctx.assumingMemoryBound(to: ((Range<Int>, Int) -> Void).self).pointee(lo..<hi, thread)
                }
            }
        }
    }

    /// Single-argument form of ``parallelFor(_:granularity:_:)``.
    public func parallelFor(_ count: Int, granularity: Int = 1, _ body: (Range<Int>) -> Void) {
        parallelFor(count, granularity: granularity) { (r: Range<Int>, _: Int) in body(r) }
    }

    /// Claims and runs chunks until none are left.
    private func work(_ body: SectionBody, _ context: UnsafeRawPointer, thread: Int) {
        var next = nextUnit.load(ordering: .relaxed)
        while next < unitCount {
            let size = max(minChunkUnits, (unitCount - next) / (2 * threads))
            let end = min(unitCount, next + size)
            let (claimed, seen) = nextUnit.compareExchange(expected: next, desired: end, ordering: .relaxed)
            if !claimed { next = seen; continue }
            body(context, next * granule, min(count, end * granule), thread)
            unitsDone.wrappingAdd(end - next, ordering: .releasing)
            next = nextUnit.load(ordering: .relaxed)
        }
    }

    /// The share of `0..<count` that worker `w` of `n` takes in a static split.
    @inlinable
    public static func chunk(_ count: Int, worker w: Int, of n: Int, granularity g: Int = 1) -> Range<Int> {
        let units = (count + g - 1) / g
        let lo = min(count, (units * w / n) * g)
        let hi = min(count, (units * (w + 1) / n) * g)
        return lo..<hi
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            pthread_mutex_lock(mutex)
            while generation == seen && !stopping { pthread_cond_wait(wake, mutex) }
            if stopping { pthread_mutex_unlock(mutex); return }
            seen = generation
            // The section's context lives on the caller's stack: it is used only until this
            // worker reports back below, which `parallelFor` waits for.
            guard let section = body, let context else { pthread_mutex_unlock(mutex); continue }
            active += 1
            pthread_mutex_unlock(mutex)
            work(section, context, thread: index)
            pthread_mutex_lock(mutex)
            active -= 1
            pthread_cond_signal(finished)
            pthread_mutex_unlock(mutex)
        }
    }
}

private final class WorkerStart {
    let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) { self.pool = pool; self.index = index }
}
