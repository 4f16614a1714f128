import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// Makes a WebSocket upgrade without a valid bearer token get the same `401` JSON answer
/// as any other route, instead of the bare `400` a refused upgrade gets from the NIO
/// upgrader: a small handler right after the HTTP decoder strips the `Upgrade` header from
/// unauthorized upgrade requests, so they go down the ordinary HTTP path, where
/// `BearerAuthMiddleware` answers them.
///
/// ```swift
/// let server = HTTPServerBuilder.http1WebSocketUpgrade(webSocketRouter: router, requiringTokens: tokens)
/// ```
extension HTTPServerBuilder {
    static func http1WebSocketUpgrade<WSResponderBuilder: HTTPResponderBuilder & _HB_SendableMetatype>(
        webSocketRouter: WSResponderBuilder, requiringTokens tokens: [String]
    ) -> HTTPServerBuilder where WSResponderBuilder.Responder.Context: WebSocketRequestContext {
        let webSocketResponder = webSocketRouter.buildResponder()
        let tokenBytes = tokens.map { Array($0.utf8) }
        return .init { responder in
            UpgradeAuthorizationChannel(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder, configuration: .init()),
                tokens: tokenBytes)
        }
    }
}

struct UpgradeAuthorizationChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let tokens: [[UInt8]]

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // The base configures the pipeline synchronously on the channel's event loop.
        let negotiated = base.setup(channel: channel, logger: logger)
        do {
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(UpgradeAuthorizationHandler(tokens: tokens), position: .after(decoder))
        } catch {
            logger.error("cannot install the WebSocket authorization handler: \(error)")
            channel.close(promise: nil)
        }
        return negotiated
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Strips `Upgrade` from upgrade requests that carry no valid bearer token; steps out
/// of the pipeline once an authorized upgrade goes through (WebSocket frames follow).
final class UpgradeAuthorizationHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    let tokens: [[UInt8]]

    init(tokens: [[UInt8]]) {
        self.tokens = tokens
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data), head.headers.contains(name: "upgrade") else {
            context.fireChannelRead(data)
            return
        }
        if authorized(head.headers) {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        head.headers.remove(name: "upgrade")
        let connection = head.headers[canonicalForm: "connection"].filter { $0.lowercased() != "upgrade" }
        head.headers.remove(name: "connection")
        for token in connection { head.headers.add(name: "connection", value: String(token)) }
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    private func authorized(_ headers: HTTPHeaders) -> Bool {
        guard let token = BearerAuthMiddleware<BasicRequestContext>.bearerToken(headers.first(name: "authorization")) else {
            return false
        }
        return BearerAuthMiddleware<BasicRequestContext>.matches(token, any: tokens)
    }
}
