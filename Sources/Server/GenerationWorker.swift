import Foundation
import Generation

/// What a queued generation reports, in order: any number of `.text`, then exactly one of
/// `.finished` or `.failed`.
public enum GenerationEvent: Sendable {
    case text(String)
    case finished(GenerationResult)
    case failed(String)
}

/// Why a job was refused or ended without a result.
public enum WorkerError: Error, Equatable, Sendable {
    /// More than `maxQueue` requests are already waiting.
    case queueFull(waiting: Int)
    /// The server is shutting down: no new work is started.
    case shuttingDown
}

/// One generation request: the prompt as token ids and how to sample. Its events arrive on
/// `events`; `cancel()` (from any thread) stops it before its next token, or skips it if it has
/// not started.
public final class GenerationJob: @unchecked Sendable {
    public let prompt: [Int32]
    public let maxTokens: Int
    public let sampling: SamplingOptions
    public let stop: [String]
    public let events: AsyncStream<GenerationEvent>
    let continuation: AsyncStream<GenerationEvent>.Continuation
    private let lock = NSLock()
    private var cancelled = false
    private var cancelReason: WorkerError?

    public init(prompt: [Int32], maxTokens: Int, sampling: SamplingOptions, stop: [String] = []) {
        precondition(!prompt.isEmpty && maxTokens > 0)
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stop = stop
        (events, continuation) = AsyncStream<GenerationEvent>.makeStream(bufferingPolicy: .unbounded)
        // A consumer that goes away (its task cancelled, the stream dropped) cancels the work.
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel() }
        }
    }

    /// Asks the worker to stop this job before its next token (idempotent, thread-safe).
    public func cancel() { lock.lock(); cancelled = true; lock.unlock() }

    func cancel(because reason: WorkerError) {
        lock.lock(); cancelled = true; if cancelReason == nil { cancelReason = reason }; lock.unlock()
    }

    public var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }
    /// Set when the server (not the client) cancelled the job, e.g. at shutdown.
    public var serverCancelReason: WorkerError? { lock.lock(); defer { lock.unlock() }; return cancelReason }

    /// Waits for the end of the job, ignoring the text pieces.
    public func result() async -> Result<GenerationResult, GenerationFailure> {
        for await event in events {
            switch event {
            case .text: continue
            case .finished(let r): return .success(r)
            case .failed(let m): return .failure(GenerationFailure(message: m))
            }
        }
        return .failure(GenerationFailure(message: "generation ended without a result"))
    }
}

public struct GenerationFailure: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Counters of what the worker did, for /health and tests.
public struct WorkerStats: Sendable {
    public var completed = 0
    public var cancelled = 0
    public var failed = 0
    public var rejected = 0
    /// The last finished generation (including cancelled ones).
    public var last: GenerationResult?
    public var running = false
    public var waiting = 0
}

/// The one place that runs the model: a dedicated thread (never an event loop or a Swift
/// concurrency thread, since generation is long blocking CPU work) takes jobs from a FIFO queue
/// and runs them one at a time on the single `Session`. At most `maxQueue` jobs wait behind the
/// running one; more are refused with `WorkerError.queueFull`.
public final class GenerationWorker: @unchecked Sendable {
    public let session: Session
    public let maxQueue: Int
    private let condition = NSCondition()
    private var queue: [GenerationJob] = []
    private var running: GenerationJob?
    private var stopping = false      // no new jobs; queued ones are refused
    private var exitWhenIdle = false  // the thread leaves once the queue is empty
    private var finished = false
    private var started = false
    private var counters = WorkerStats()
    private var graceTimer: DispatchWorkItem?
    /// Called on the generation thread as each job starts (tests use it to hold a job running).
    var onJobStart: ((GenerationJob) -> Void)?

    public init(session: Session, maxQueue: Int) {
        self.session = session
        self.maxQueue = max(0, maxQueue)
    }

    /// Starts the generation thread (idempotent).
    public func start() {
        condition.lock(); defer { condition.unlock() }
        guard !started else { return }
        started = true
        let thread = Thread { [self] in self.loop() }
        thread.name = "octet-generation"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Queues `job`, or throws `queueFull` / `shuttingDown` without queuing it.
    public func submit(_ job: GenerationJob) throws {
        condition.lock(); defer { condition.unlock() }
        if stopping { counters.rejected += 1; throw WorkerError.shuttingDown }
        queue.removeAll { j in
            guard j.isCancelled else { return false }
            j.continuation.finish(); return true
        }
        // Capacity: one running plus maxQueue waiting.
        let inSystem = queue.count + (running == nil ? 0 : 1)
        if inSystem >= maxQueue + 1 { counters.rejected += 1; throw WorkerError.queueFull(waiting: queue.count) }
        queue.append(job)
        condition.signal()
    }

    public var stats: WorkerStats {
        condition.lock(); defer { condition.unlock() }
        var s = counters
        s.running = running != nil
        s.waiting = queue.count
        return s
    }

    public var isShuttingDown: Bool { condition.lock(); defer { condition.unlock() }; return stopping }

    /// Stops taking work: queued jobs fail with `shuttingDown`; the running one may finish for
    /// `grace` seconds, then is cancelled. Called at SIGTERM/SIGINT; a second call cancels at once.
    public func beginShutdown(grace: Double) {
        condition.lock()
        let again = stopping
        stopping = true
        let dropped = queue
        queue.removeAll()
        let current = running
        condition.unlock()
        for j in dropped { j.cancel(because: .shuttingDown); j.continuation.yield(.failed("the server is shutting down")); j.continuation.finish() }
        guard let current else { return }
        if again || grace <= 0 {
            current.cancel(because: .shuttingDown)
        } else {
            let item = DispatchWorkItem { current.cancel(because: .shuttingDown) }
            condition.lock(); graceTimer = item; condition.unlock()
            DispatchQueue.global().asyncAfter(deadline: .now() + grace, execute: item)
        }
    }

    /// Lets the thread finish what is queued, then exit; blocks until it has (bounded by `timeout`).
    @discardableResult
    public func stop(timeout: Double = 30) -> Bool {
        condition.lock()
        exitWhenIdle = true
        condition.broadcast()
        let deadline = Date().addingTimeInterval(timeout)
        while started && !finished {
            if !condition.wait(until: deadline) { break }
        }
        let ok = finished || !started
        graceTimer?.cancel()
        condition.unlock()
        return ok
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !exitWhenIdle { condition.wait() }
            if queue.isEmpty {
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let job = queue.removeFirst()
            running = job
            condition.unlock()

            let outcome = run(job)

            // Count first, then tell the client: whoever sees the answer sees the counters too.
            condition.lock()
            running = nil
            switch outcome {
            case .finished(let r):
                if r.finishReason == .cancelled { counters.cancelled += 1 } else { counters.completed += 1 }
                counters.last = r
            case .failed: counters.failed += 1
            case .skipped: counters.cancelled += 1
            }
            condition.unlock()
            switch outcome {
            case .finished(let r): job.continuation.yield(.finished(r))
            case .failed(let message): job.continuation.yield(.failed(message))
            case .skipped: break
            }
            job.continuation.finish()
        }
    }

    private enum Outcome { case finished(GenerationResult), failed(String), skipped }

    private func run(_ job: GenerationJob) -> Outcome {
        onJobStart?(job)
        if job.isCancelled { return .skipped }
        session.sampling = job.sampling
        do {
            return .finished(try session.generate(prompt: job.prompt, maxTokens: job.maxTokens, stop: job.stop,
                                                  shouldContinue: { !job.isCancelled },
                                                  onText: { job.continuation.yield(.text($0)) }))
        } catch {
            // The cache may hold a half-evaluated prompt: forget it rather than trust it.
            session.reset()
            return .failed("\(error)")
        }
    }
}
