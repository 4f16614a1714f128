import Foundation
import Synchronization
import TrafficCore

/// Fans every closed window out to the WebSocket clients of `/stats/stream`.
///
/// Each client has a small queue; a client that falls `queueLimit` windows behind is
/// disconnected (close code 1008, "too slow") instead of holding memory or anyone
/// else back, and the others go on unaffected.
///
/// ```swift
/// let (id, messages) = hub.subscribe()
/// for await text in messages { try await outbound.write(.text(text)) }
/// hub.unsubscribe(id)
/// ```
public final class StreamHub: WindowSubscriber {
    public let queueLimit: Int
    private let clients = LockedValue<[UInt64: Client]>([:])
    private let nextID = Atomic<UInt64>(1)
    private let dropped = Atomic<Int>(0)

    /// Clients dropped so far for falling `queueLimit` windows behind.
    public var droppedCount: Int { dropped.load(ordering: .relaxed) }

    struct Client {
        var continuation: AsyncStream<String>.Continuation
        var onKick: (@Sendable () -> Void)?
        var tooSlow = false
    }

    public init(queueLimit: Int = 32) {
        self.queueLimit = queueLimit
    }

    public var clientCount: Int { clients.withLock { $0.count } }

    /// Registers a client; its stream yields one JSON record per closed window.
    public func subscribe() -> (id: UInt64, messages: AsyncStream<String>) {
        let id = nextID.add(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingOldest(queueLimit))
        clients.withLock { $0[id] = Client(continuation: continuation) }
        return (id, stream)
    }

    /// What to do (besides ending its stream) when a client is dropped: cancel its writer.
    public func onKick(_ id: UInt64, _ action: @escaping @Sendable () -> Void) {
        let kicked = clients.withLock { list -> Bool in
            guard list[id] != nil else { return true }
            list[id]?.onKick = action
            return list[id]?.tooSlow ?? false
        }
        if kicked { action() }
    }

    /// Whether the hub dropped this client for falling behind.
    public func wasTooSlow(_ id: UInt64) -> Bool {
        clients.withLock { $0[id]?.tooSlow ?? false }
    }

    public func unsubscribe(_ id: UInt64) {
        let client = clients.withLock { $0.removeValue(forKey: id) }
        client?.continuation.finish()
    }

    public func publish(_ rendered: RenderedRecord) async {
        // One string for every client (they share its storage).
        let text = String(decoding: rendered.json, as: UTF8.self)
        var kicks: [@Sendable () -> Void] = []
        clients.withLock { list in
            for (id, client) in list where !client.tooSlow {
                if case .dropped = client.continuation.yield(text) {
                    list[id]?.tooSlow = true
                    dropped.add(1, ordering: .relaxed)
                    client.continuation.finish()
                    if let kick = client.onKick { kicks.append(kick) }
                }
            }
        }
        for kick in kicks { kick() }
    }

    /// Shutdown: every client's stream ends (they get a normal close).
    public func finish() async {
        let all = clients.withLock { list -> [Client] in Array(list.values) }
        for client in all { client.continuation.finish() }
    }
}
