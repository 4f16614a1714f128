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
/// - a WebSocket upgrade that must be refused loses its `Upgrade` header and goes down
///   the ordinary HTTP path, where the router answers like on every other route (the NIO
///   upgrader alone would answer a bare `400`): without a valid bearer token (with
///   tokens), `BearerAuthMiddleware`'s `401`; from a page on another site (its `Origin`
///   is not this server), the stream route's `403`.
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
            try channel.pipeline.syncOperations.addHandler(UpgradeGuardHandler(tokens: tokens), position: .after(decoder))
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

/// Strips `Upgrade` from upgrade requests that carry no valid bearer token (when tokens
/// are set) or come from another site's page; steps out of the pipeline once an allowed
/// upgrade goes through (WebSocket frames follow).
final class UpgradeGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
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
        let sameSite = head.headers.first(name: "origin").map {
            StreamRoute.sameOrigin($0, host: head.headers.first(name: "host"))
        } ?? true
        if sameSite && (tokens.isEmpty || authorized(head)) {
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

    private func authorized(_ head: HTTPRequestHead) -> Bool {
        typealias Auth = BearerAuthMiddleware<BasicRequestContext>
        let headers = head.headers
        let token = Auth.offeredToken(
            path: String(head.uri.prefix { $0 != "?" }), authorization: headers.first(name: "authorization"),
            upgrade: headers.first(name: "upgrade"),
            webSocketProtocol: headers[canonicalForm: "sec-websocket-protocol"].joined(separator: ","))
        return token.map { Auth.matches($0, any: tokens) } ?? false
    }
}
