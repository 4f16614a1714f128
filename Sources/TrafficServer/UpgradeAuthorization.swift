import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// trafficmon's HTTP/1 + WebSocket channel: Hummingbird's, with its idle timeout for
/// keep-alive connections and NIO's decoder limit on the head's size, plus small handlers
/// around the HTTP decoder:
/// - a request NIO cannot parse (garbage, a NUL in a header) gets `400` with a JSON
///   error, and a head over the size limit `431`, and the connection closes, instead of
///   hanging;
/// - a request's head (and body) must arrive within `limits.requestHeadTimeout`, and at
///   most `limits.maxConnections` connections are open (`ConnectionTable`, `RequestClock`);
/// - a WebSocket upgrade that must be refused loses its `Upgrade` header and goes down
///   the ordinary HTTP path, where the router answers like on every other route (the NIO
///   upgrader alone would answer a bare `400`): without a valid bearer token (with
///   tokens), `BearerAuthMiddleware`'s `401`; from a page on another site (its `Origin`
///   is not this server), the stream route's `403`; with a `Host` the server does not
///   answer to, `HostCheckMiddleware`'s `421`.
///
/// ```swift
/// let server = HTTPServerBuilder.trafficmon(webSocketRouter: router, requiringTokens: tokens,
///                                           hostCheck: check, limits: limits, connections: table)
/// ```
extension HTTPServerBuilder {
    static func trafficmon<WSResponderBuilder: HTTPResponderBuilder & _HB_SendableMetatype>(
        webSocketRouter: WSResponderBuilder, requiringTokens tokens: [String], hostCheck: HostCheck,
        limits: HTTPLimits, connections: ConnectionTable
    ) -> HTTPServerBuilder where WSResponderBuilder.Responder.Context: WebSocketRequestContext {
        let webSocketResponder = webSocketRouter.buildResponder()
        let tokenBytes = tokens.map { Array($0.utf8) }
        let decoder = HTTP1Channel.Configuration.DecoderConfiguration(
            maxHeaderFieldSize: limits.maxHeadBytes, maxHeaderListSize: limits.maxHeadBytes, maxHeaderFieldCount: 200)
        let http1 = HTTP1Channel.Configuration(idleTimeout: TimeAmount(limits.idleTimeout), httpDecoderConfiguration: decoder)
        return .init { responder in
            GuardedChannel(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder, configuration: .init(http1: http1)),
                tokens: tokenBytes, hostCheck: hostCheck, connections: connections,
                requestTimeout: TimeAmount(limits.requestHeadTimeout), idleTimeout: TimeAmount(limits.idleTimeout))
        }
    }
}

struct GuardedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let tokens: [[UInt8]]
    let hostCheck: HostCheck
    let connections: ConnectionTable
    let requestTimeout: TimeAmount
    let idleTimeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // The base configures the pipeline synchronously on the channel's event loop.
        let negotiated = base.setup(channel: channel, logger: logger)
        let clock = RequestClock(table: connections, timeout: requestTimeout, idleTimeout: idleTimeout, channel: channel)
        let bound = NIOLoopBound(clock, eventLoop: channel.eventLoop)
        let eventLoop = channel.eventLoop
        let admitted = connections.admit(close: { eventLoop.execute { bound.value.end() } })
        if let id = admitted {
            clock.id = id
            let table = connections
            channel.closeFuture.whenComplete { _ in table.remove(id) }
        }
        do {
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(RequestStartHandler(clock: clock), position: .before(decoder))
            try channel.pipeline.syncOperations.addHandler(
                UpgradeGuardHandler(tokens: tokens, hostCheck: hostCheck), position: .after(decoder))
            try channel.pipeline.syncOperations.addHandler(RequestEndHandler(clock: clock), position: .after(decoder))
            try channel.pipeline.syncOperations.addHandler(BadRequestHandler(), position: .after(decoder))
            // At the cap with every connection busy, this one goes as soon as it is active.
            if admitted == nil { clock.refused = true } else { clock.opened(channel) }
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

/// Answers a request the HTTP decoder rejects with `400 {"error":...}` (`431` for a head
/// over the size limit) and closes.
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
        let tooLarge = (error as? HTTPParserError) == .headerOverflow
        let body = ByteBuffer(string: tooLarge
            ? "{\"error\":\"the request line and header fields are larger than the server accepts\"}"
            : "{\"error\":\"the request is not valid HTTP/1.1\"}")
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json; charset=utf-8")
        headers.add(name: "content-length", value: "\(body.readableBytes)")
        headers.add(name: "connection", value: "close")
        let status: HTTPResponseStatus = tooLarge ? .requestHeaderFieldsTooLarge : .badRequest
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            // As if the client had closed: the upgrade handler, still waiting for a whole
            // head, then ends without reporting an error.
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            context.close(promise: nil)
        }
    }
}

/// Strips `Upgrade` from upgrade requests that carry no valid bearer token (when tokens
/// are set), come from another site's page, or name a `Host` the server does not answer
/// to; steps out of the pipeline once an allowed upgrade goes through (WebSocket frames
/// follow).
final class UpgradeGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    let tokens: [[UInt8]]
    let hostCheck: HostCheck

    init(tokens: [[UInt8]], hostCheck: HostCheck) {
        self.tokens = tokens
        self.hostCheck = hostCheck
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data), head.headers.contains(name: "upgrade") else {
            context.fireChannelRead(data)
            return
        }
        let sameSite = head.headers.first(name: "origin").map {
            StreamRoute.sameOrigin($0, host: head.headers.first(name: "host"))
        } ?? true
        let hosts = head.headers["host"]
        let hostAllowed = hosts.count <= 1 && hostCheck.allows(hosts.first)
        if sameSite && hostAllowed && (tokens.isEmpty || authorized(head)) {
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
