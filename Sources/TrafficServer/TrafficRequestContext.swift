import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// The request context of trafficmon's router: Hummingbird's basics, the WebSocket
/// handler slot, and the connection's channel (so `/stats/stream` can cut off a client
/// that stopped reading, instead of waiting on a socket that never drains).
public struct TrafficRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        channel = source.channel
    }
}
