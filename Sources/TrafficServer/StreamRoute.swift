import Hummingbird
import HummingbirdWebSocket
import Logging

/// `WS /stats/stream`: a text message (a window record) per closed window.
struct StreamRoute<Context: RequestContext & WebSocketRequestContext> {
    let hub: StreamHub

    func add(to router: Router<Context>) {
        router.ws("/stats/stream") { inbound, outbound, context in
            let (id, messages) = hub.subscribe()
            defer { hub.unsubscribe(id) }
            let writer = Task {
                for await text in messages {
                    try await outbound.write(.text(text))
                }
            }
            hub.onKick(id) { writer.cancel() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The client closing (or vanishing) ends the inbound sequence.
                group.addTask {
                    for try await _ in inbound {}
                }
                group.addTask {
                    _ = await writer.result
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
