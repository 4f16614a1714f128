import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging

/// `WS /stats/stream`: a text message (a window record) per closed window.
struct StreamRoute {
    /// The subprotocol the server answers with when a client offers it.
    static let subprotocol = "trafficmon"

    let hub: StreamHub

    func add(to router: Router<TrafficRequestContext>) {
        router.ws("/stats/stream", shouldUpgrade: { request, _ in
            // A browser that offers subprotocols (the live page offers "trafficmon" beside
            // its token) fails the connection unless the server picks one of them.
            let offered = request.headers[.secWebSocketProtocol]?.split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) } ?? []
            return offered.contains(Self.subprotocol) ? .upgrade([.secWebSocketProtocol: Self.subprotocol]) : .upgrade([:])
        }) { inbound, outbound, context in
            let (id, messages) = hub.subscribe()
            defer { hub.unsubscribe(id) }
            let writer = Task {
                for await text in messages {
                    try await outbound.write(.text(text))
                }
            }
            let channel = context.requestContext.channel
            // A client that fell behind is cut off at once: its socket no longer drains,
            // so neither a pending write nor a close frame would ever complete.
            hub.onKick(id) {
                writer.cancel()
                // The handler tries a 1008 close frame; if the socket does not drain within
                // 2 s, the connection is cut.
                channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The client closing (or vanishing) ends the inbound sequence.
                group.addTask {
                    for try await _ in inbound {}
                }
                group.addTask {
                    _ = await writer.result
                }
                // A connection reset on an idle socket may only surface at the next write:
                // look at the channel now and then, so a vanished client is let go promptly.
                group.addTask {
                    while channel.isActive { try await Task.sleep(for: .milliseconds(500)) }
                }
                _ = try await group.next()
                group.cancelAll()
                writer.cancel()
            }
            if hub.wasTooSlow(id) {
                context.logger.info("dropped a /stats/stream client that fell \(hub.queueLimit) windows behind")
                try? await outbound.close(.policyViolation, reason: "too slow: fell \(hub.queueLimit) windows behind")
            }
        }
    }
}
