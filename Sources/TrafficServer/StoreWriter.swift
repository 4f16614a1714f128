import Logging
import ServiceLifecycle
import TrafficCore
import TrafficStore

/// Writes closed windows to SQLite off the capture thread: the publisher hands each
/// record over without waiting, and the writer commits whatever has piled up in one
/// transaction, so a burst of windows costs one commit, not one each. It also prunes
/// windows older than the retention.
///
/// ```swift
/// let writer = StoreWriter(store: store, retention: 7 * 86_400 * 1_000_000_000, logger: logger)
/// // a subscriber of the publisher, and a service of the group (listed before the publisher)
/// ```
public final class StoreWriter: WindowSubscriber, ServiceLifecycle.Service {
    let store: WindowStore
    let retention: Int64?
    let logger: Logger
    /// Told once the last window is committed.
    let onFlushed: (@Sendable () -> Void)?
    private let pending = LockedValue<[WindowRecord]>([])
    private let wake: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation

    public init(store: WindowStore, retention: Int64?, logger: Logger, onFlushed: (@Sendable () -> Void)? = nil) {
        self.store = store
        self.retention = retention
        self.logger = logger
        self.onFlushed = onFlushed
        (wake, wakeContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func publish(_ record: WindowRecord) async {
        pending.withLock { $0.append(record) }
        wakeContinuation.yield()
    }

    public func finish() async {
        wakeContinuation.finish()
    }

    public func run() async throws {
        // Ends when the publisher has handed over the last window (not on the shutdown
        // signal), so the window closed at shutdown is written too. Pruning after each
        // commit is one indexed DELETE.
        for await _ in wake {
            await writePending()
            await prune()
        }
        await writePending()
        await prune()
        onFlushed?()
        // Wait for the group to ask (it stops services one at a time, this one last).
        try? await gracefulShutdown()
        try Task.checkCancellation()
    }

    private func writePending() async {
        let batch = pending.withLock { list -> [WindowRecord] in
            defer { list = [] }
            return list
        }
        guard !batch.isEmpty else { return }
        do {
            try await store.save(batch)
        } catch {
            logger.error("could not write \(batch.count) window(s) to the database: \(error)")
        }
    }

    private func prune() async {
        guard let retention else { return }
        do {
            let deleted = try await store.prune(retention: retention)
            if deleted > 0 { logger.debug("pruned \(deleted) window(s) older than the retention") }
        } catch {
            if !Task.isCancelled { logger.error("could not prune the database: \(error)") }
        }
    }
}
