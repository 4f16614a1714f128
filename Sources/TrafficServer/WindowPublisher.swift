import Foundation
import Logging
import ServiceLifecycle
import TrafficCapture
import TrafficCore

/// Something that wants every closed window, in order (the store, the WebSocket hub): the
/// record and its JSON, rendered once for all of them.
public protocol WindowSubscriber: Sendable {
    func publish(_ rendered: RenderedRecord) async
    /// Called once after the last window, at shutdown.
    func finish() async
}

extension WindowSubscriber {
    public func finish() async {}
}

/// The hand-off from the capture thread to the async world. The capture thread
/// `send`s each closed window (waiting only if `capacity` windows are already queued,
/// so memory stays bounded); `WindowPublisher` turns them into records off the
/// capture thread and fans them out.
public final class WindowChannel: Sendable {
    let stream: AsyncStream<ClosedWindow>
    let continuation: AsyncStream<ClosedWindow>.Continuation
    let slots: Slots

    public init(capacity: Int = 8) {
        (stream, continuation) = AsyncStream.makeStream(of: ClosedWindow.self)
        slots = Slots(capacity: capacity)
    }

    /// Called on the capture thread.
    public func send(_ closed: ClosedWindow) {
        slots.acquire()
        if case .terminated = continuation.yield(closed) {
            // Nobody reads any more (shutdown): give the slot back.
            slots.release()
        }
    }

    /// No more windows will come.
    public func finish() {
        continuation.finish()
    }
}

/// Builds each closed window's record and publishes it: history, metrics, subscribers.
public struct WindowPublisher: ServiceLifecycle.Service {
    let channel: WindowChannel
    let state: TrafficState
    let subscribers: [any WindowSubscriber]
    let logger: Logger
    /// With no store behind it, the publisher's end is when the data is safe.
    let marksFlushed: Bool

    public init(channel: WindowChannel, state: TrafficState, subscribers: [any WindowSubscriber], marksFlushed: Bool, logger: Logger) {
        self.channel = channel
        self.state = state
        self.subscribers = subscribers
        self.marksFlushed = marksFlushed
        self.logger = logger
    }

    public func run() async throws {
        // Not cancelled on graceful shutdown: it ends when the capture has closed its
        // last window and finished the channel, so that window still reaches everyone.
        for await closed in channel.stream {
            let built = closed.build(tracking: state.metrics.trackedParties())
            closed.recycle()
            channel.slots.release()
            let rendered = RenderedRecord(built.record)
            // Counters first: once a window is in the history, they include it.
            state.metrics.record(built)
            state.append(rendered)
            for subscriber in subscribers { await subscriber.publish(rendered) }
        }
        for subscriber in subscribers { await subscriber.finish() }
        if marksFlushed { state.noteFlushed() }
        logger.debug("window publisher finished")
        // The group stops services one at a time; returning before it asks would count as
        // finishing unexpectedly. (Cancelled instead: end now.)
        try? await gracefulShutdown()
        try Task.checkCancellation()
    }
}

/// A counting gate: `acquire` blocks while `capacity` slots are taken.
final class Slots: @unchecked Sendable {
    private let condition = NSCondition()
    private var free: Int

    init(capacity: Int) {
        free = capacity
    }

    func acquire() {
        condition.lock()
        while free == 0 { condition.wait() }
        free -= 1
        condition.unlock()
    }

    func release() {
        condition.lock()
        free += 1
        condition.signal()
        condition.unlock()
    }
}
