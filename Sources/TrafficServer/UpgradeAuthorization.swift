import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// trafficmon's HTTP/1 + WebSocket channel: Hummingbird's, plus two small handlers
/// right after the HTTP decoder:
/// - a request NIO cannot parse (garbage, a NUL in a header) gets `400` with a JSON
///   error and the connection closes, instead of hanging;
/// - with tokens, a WebSocket upgrade without a valid bearer token loses its `Upgrade`
///   header and goes down the ordinary HTTP path, where `BearerAuthMiddleware` answers
///   `401` like on every other route (the NIO upgrader alone would answer a bare `400`).
/// Idle keep-alive connections are closed after `idleTimeout`.
///
/// ```swift
/// let server = HTTPServerBuilder.trafficmon(webSocketRouter: router, requiringTokens: tokens)
/// ```
extension HTTPServerBuilder {
    static func trafficmon<WSResponderBuilder: HTTPResponderBuilder & _HB_SendableMetatype>(
        webSocketRouter: WSResponderBuilder, requiringTokens tokens: [String], idleTimeout: TimeAmount = .seconds(75)
    ) -> HTTPServerBuilder where WSResponderBuilder.Responder.Context: WebSocketRequestContext {
        let webSocketResponder = webSocketRouter.buildResponder()
        let tokenBytes = tokens.map { Array($0.utf8) }
        return .init { responder in
            GuardedChannel(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    configuration: .init(http1: .init(idleTimeout: idleTimeout))),
                tokens: tokenBytes)
        }
    }
}

struct GuardedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let tokens: [[UInt8]]

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // The base configures the pipeline synchronously on the channel's event loop.
        let negotiated = base.setup(channel: channel, logger: logger)
        do {
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            if !tokens.isEmpty {
                try channel.pipeline.syncOperations.addHandler(UpgradeAuthorizationHandler(tokens: tokens), position: .after(decoder))
            }
            try channel.pipeline.syncOperations.addHandler(BadRequestHandler(), position: .after(decoder))
        } catch {
            logger.error("cannot set up the connection's handlers: \(error)")
            channel.close(promise: nil)
        }
        return negotiated
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Answers a request the HTTP decoder rejects with `400 {"error":...}` and closes.
final class BadRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if answered { return }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError, !answered else {
            context.fireErrorCaught(error)
            return
        }
        answered = true
        let body = ByteBuffer(string: "{\"error\":\"the request is not valid HTTP/1.1\"}")
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json; charset=utf-8")
        headers.add(name: "content-length", value: "\(body.readableBytes)")
        headers.add(name: "connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
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
        typealias Auth = BearerAuthMiddleware<BasicRequestContext>
        let protocols = headers[canonicalForm: "sec-websocket-protocol"].joined(separator: ",")
        guard let token = Auth.bearerToken(headers.first(name: "authorization")) ?? Auth.subprotocolToken(protocols) else {
            return false
        }
        return Auth.matches(token, any: tokens)
    }
}
