#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small persistent pool of worker threads that run one parallel section at a time.
///
/// The calling thread is worker 0 and takes part in the work; `threads - 1` more threads sleep on a
/// condition variable between sections (they never spin: on a shared 2-core laptop a spinning
/// barrier can slow decoding by an order of magnitude). A section allocates nothing.
public final class WorkerPool: @unchecked Sendable {
    /// Number of workers, the calling thread included.
    public let threads: Int

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var generation = 0
    private var pending = 0
    private var stopping = false
    private var body: ((Int, Int) -> Void)?
    private var handles: [pthread_t] = []

    /// - Parameter threads: workers including the caller; defaults to the number of online CPUs.
    public init(threads: Int = WorkerPool.onlineCPUs) {
        self.threads = max(1, threads)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
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
        pthread_cond_destroy(wake); pthread_cond_destroy(done); pthread_mutex_destroy(mutex)
        wake.deallocate(); done.deallocate(); mutex.deallocate()
    }

    public static var onlineCPUs: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Runs `body(worker, workers)` once on every worker and returns when all have finished.
    public func run(_ body: (_ worker: Int, _ workers: Int) -> Void) {
        if threads == 1 { body(0, 1); return }
        withoutActuallyEscaping(body) { section in
            pthread_mutex_lock(mutex)
            self.body = section
            pending = threads - 1
            generation &+= 1
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
            section(0, threads)
            pthread_mutex_lock(mutex)
            while pending > 0 { pthread_cond_wait(done, mutex) }
            self.body = nil
            pthread_mutex_unlock(mutex)
        }
    }

    /// Splits `0..<count` into one contiguous chunk per worker (chunk boundaries multiples of
    /// `granularity`) and runs `body` on each non-empty chunk.
    public func parallelFor(_ count: Int, granularity: Int = 1, _ body: (Range<Int>) -> Void) {
        run { w, n in
            let r = WorkerPool.chunk(count, worker: w, of: n, granularity: granularity)
            if !r.isEmpty { body(r) }
        }
    }

    /// The share of `0..<count` that worker `w` of `n` takes.
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
            do {
                // The copy must be released before reporting done: `run` checks that the
                // non-escaping closure did not outlive the section.
                let section = body
                pthread_mutex_unlock(mutex)
                section?(index, threads)
            }
            pthread_mutex_lock(mutex)
            pending -= 1
            if pending == 0 { pthread_cond_signal(done) }
            pthread_mutex_unlock(mutex)
        }
    }
}

private final class WorkerStart {
    let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) { self.pool = pool; self.index = index }
}
