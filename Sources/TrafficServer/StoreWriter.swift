import Logging
import Prometheus
import ServiceLifecycle
import TrafficCore
import TrafficStore

/// Writes closed windows to SQLite off the capture thread: the publisher hands each
/// record over without waiting, and the writer commits whatever has piled up in one
/// transaction, so a burst of windows costs one commit, not one each. It also prunes
/// windows older than the retention.
///
/// A store that fails (disk full, I/O error) stops nothing else: the windows stay queued in
/// memory (at most `queueLimit`; past that the oldest are given up and counted) and are
/// written, in order, once a write succeeds again; writes are retried with each new window
/// and on a timer (1 s, doubling up to 30 s). Every failure counts in
/// `trafficmon_store_errors_total`; an error line is logged at most once a minute, and a
/// line when writes resume. A database file removed or replaced while open is created
/// anew and gets the windows kept in memory (`history`).
///
/// ```swift
/// let writer = StoreWriter(store: store, retention: 7 * 86_400 * 1_000_000_000, logger: logger)
/// // a subscriber of the publisher, and a service of the group (listed before the publisher)
/// ```
public final class StoreWriter: WindowSubscriber, ServiceLifecycle.Service {
    let store: WindowStore
    let retention: Int64?
    let logger: Logger
    /// Windows waiting to be written, oldest first, at most this many.
    let queueLimit: Int
    /// Told once the last window is committed.
    let onFlushed: (@Sendable () -> Void)?
    /// The windows kept in memory, written into a database file created anew.
    let history: (@Sendable () -> [RenderedRecord])?
    let metrics: StoreMetrics
    private let pending = LockedValue<[RenderedRecord]>([])
    private let health = LockedValue<Health>(Health())
    private let wake: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation

    /// What the writer knows about the store's recent failures.
    struct Health {
        /// Whether the last write failed.
        var failing = false
        var retryDelay: Duration = .seconds(1)
        var retry: Task<Void, Never>?
        /// When the last error line was logged, and failures since.
        var lastLog: ContinuousClock.Instant?
        var unlogged = 0
        /// Windows given up since the last error line (the queue was full).
        var droppedUnlogged = 0
    }

    /// How often an error line may be logged.
    static let logInterval: Duration = .seconds(60)
    static let maximumRetryDelay: Duration = .seconds(30)

    public init(
        store: WindowStore, retention: Int64?, logger: Logger, queueLimit: Int = 720, metrics: StoreMetrics = StoreMetrics(),
        history: (@Sendable () -> [RenderedRecord])? = nil, onFlushed: (@Sendable () -> Void)? = nil
    ) {
        self.store = store
        self.retention = retention
        self.logger = logger
        self.queueLimit = max(1, queueLimit)
        self.metrics = metrics
        self.history = history
        self.onFlushed = onFlushed
        (wake, wakeContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func publish(_ rendered: RenderedRecord) async {
        let dropped = pending.withLock { list -> Int in
            list.append(rendered)
            let excess = max(0, list.count - queueLimit)
            list.removeFirst(excess)
            return excess
        }
        if dropped > 0 { giveUp(dropped) }
        wakeContinuation.yield()
    }

    public func finish() async {
        wakeContinuation.finish()
    }

    /// Windows waiting to be written.
    public var queued: Int { pending.withLock { $0.count } }

    public func run() async throws {
        // Ends when the publisher has handed over the last window (not on the shutdown
        // signal), so the window closed at shutdown is written too. Pruning after each
        // commit is one indexed DELETE.
        for await _ in wake {
            if await writePending() { await prune() }
        }
        health.withLock { $0.retry?.cancel() }
        if await writePending() {
            await prune()
        } else if queued > 0 {
            logger.error("\(queued) window(s) could not be written to the database before exit: \(store.path)")
        }
        onFlushed?()
        // Wait for the group to ask (it stops services one at a time, this one last).
        try? await gracefulShutdown()
        try Task.checkCancellation()
    }

    /// Writes what is queued; false when the store failed (the windows stay queued).
    private func writePending() async -> Bool {
        var batch = pending.withLock { $0 }
        guard !batch.isEmpty else { return true }
        do {
            do {
                try await store.save(batch)
            } catch .moved(_) {
                // Removed or replaced under us (a failure: what the file held is gone): start
                // a new file, and queue ahead what memory holds that the queue does not.
                metrics.errors.increment()
                try store.reopen()
                let queuedStarts = Set(batch.map(\.start))
                let kept = (history?() ?? []).filter { !queuedStarts.contains($0.start) }
                batch = pending.withLock { list in
                    list.insert(contentsOf: kept, at: 0)
                    return list
                }
                logger.error("database \(store.path) was removed or replaced while open; creating it anew with the \(batch.count) window(s) kept in memory")
                try await store.save(batch)
            }
        } catch {
            failed(error, queued: batch.count)
            return false
        }
        // What was written leads the queue (unless the queue overflowed meanwhile and let
        // some of it go).
        let written = Set(batch.map(\.start))
        pending.withLock { list in
            let count = list.prefix { written.contains($0.start) }.count
            list.removeFirst(count)
        }
        let resumed = health.withLock { h -> Bool in
            defer {
                h.failing = false
                h.retryDelay = .seconds(1)
                h.unlogged = 0
                h.lastLog = nil
            }
            return h.failing
        }
        if resumed { logger.notice("database writes resumed: wrote \(batch.count) window(s) that had waited") }
        return true
    }

    private func prune() async {
        guard let retention else { return }
        do {
            let deleted = try await store.prune(retention: retention)
            if deleted > 0 { logger.debug("pruned \(deleted) window(s) older than the retention") }
        } catch {
            if !Task.isCancelled { failed(error, queued: 0) }
        }
    }

    /// Counts a failure, logs it (at most once a minute) and schedules a retry.
    private func failed(_ error: any Error, queued: Int) {
        metrics.errors.increment()
        let now = ContinuousClock.now
        let (log, unlogged, dropped) = health.withLock { h -> (Bool, Int, Int) in
            h.failing = true
            h.unlogged += 1
            let due = h.lastLog.map { now - $0 >= Self.logInterval } ?? true
            defer {
                if due {
                    h.lastLog = now
                    h.unlogged = 0
                    h.droppedUnlogged = 0
                }
            }
            return (due, h.unlogged, h.droppedUnlogged)
        }
        if log {
            var line = "cannot write to the database: \(error)"
            if queued > 0 { line += "; \(queued) window(s) kept in memory until it works again" }
            if unlogged > 1 { line += " (\(unlogged) failures since the last message)" }
            if dropped > 0 { line += "; \(dropped) older window(s) given up (more than \(queueLimit) waited)" }
            logger.error("\(line)")
        }
        scheduleRetry()
    }

    /// Wakes the writer again after the retry delay (doubling up to 30 s while it fails).
    private func scheduleRetry() {
        health.withLock { h in
            h.retry?.cancel()
            let delay = h.retryDelay
            h.retryDelay = min(delay * 2, Self.maximumRetryDelay)
            let continuation = wakeContinuation
            h.retry = Task {
                try? await Task.sleep(for: delay)
                if !Task.isCancelled { continuation.yield() }
            }
        }
    }

    private func giveUp(_ count: Int) {
        metrics.droppedWindows.increment(by: Int64(count))
        health.withLock { $0.droppedUnlogged += count }
    }
}

/// The store's counters: failed writes and windows given up.
public struct StoreMetrics: Sendable {
    let errors: Counter
    let droppedWindows: Counter

    /// Counters in `registry` (a registry of their own by default, as in tests).
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        errors = registry.makeCounter(descriptor: Names.d(
            "trafficmon_store_errors_total",
            "Failed database writes (disk full, I/O error, file removed): the windows stay in memory and are written when the database works again."))
        droppedWindows = registry.makeCounter(descriptor: Names.d(
            "trafficmon_store_dropped_windows_total",
            "Closed windows never written to the database because too many waited while it failed."))
    }
}
