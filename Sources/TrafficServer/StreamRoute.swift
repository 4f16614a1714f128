import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging

/// `WS /stats/stream`: a text message (a window record) per closed window.
struct StreamRoute {
    /// Where the stream is served.
    static let path = "/stats/stream"
    /// The subprotocol the server answers with when a client offers it.
    static let subprotocol = "trafficmon"

    let hub: StreamHub

    /// Whether an upgrade with this `Origin` may read the stream: a browser's page origin
    /// (`http(s)://host[:port]`, or `null` from a sandbox or a file) must name `host` (the
    /// request's Host). Other values come from non-browser clients (some libraries send
    /// `ws://host`) and are not a cross-site page.
    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        let lowered = origin.lowercased()
        if lowered == "null" { return false }
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") else { return true }
        guard let host, let schemeEnd = lowered.range(of: "://") else { return false }
        let authority = lowered[schemeEnd.upperBound...].prefix { $0 != "/" }
        return authority == host.lowercased()
    }

    func add(to router: Router<TrafficRequestContext>) {
        router.ws(RouterPath(Self.path), shouldUpgrade: { request, _ in
            // A page on another site must not read the stream through the visitor's
            // browser (cross-site WebSocket hijacking): a browser's upgrade carries Origin,
            // and it must name this server as the request's Host does.
            if let origin = request.headers[.origin], !Self.sameOrigin(origin, host: request.head.authority) {
                throw HTTPError(.forbidden, message: "a WebSocket from another site (Origin \(origin.prefix(80))) is not allowed")
            }
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
