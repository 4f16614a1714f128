import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import TrafficCore

/// How long an HTTP client may take and how many may be connected at once, so that a slow
/// or half-open client cannot hold the server.
///
/// ```swift
/// var limits = HTTPLimits()
/// limits.maxConnections = 64
/// ```
public struct HTTPLimits: Sendable, Equatable {
    /// A request's head (and its body, if any) must have arrived this long after its
    /// first byte.
    public var requestHeadTimeout: Duration = .seconds(10)
    /// A connection with no request in progress (a new one that sends nothing, an idle
    /// keep-alive one) is closed after this long.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections open at once; at the cap, the oldest connection still sending a request
    /// (else the one idle longest) is closed to make way for a new one.
    public var maxConnections = 512
    /// Request line and header fields together, in bytes (a longer head gets 431).
    public var maxHeadBytes = 16 * 1024

    public init() {}
}

/// The open connections of one server and what each is doing, so that a new connection at
/// the cap can take the place of one that is only holding a descriptor.
///
/// A connection is *evictable* while no request of it is being answered: waiting for a
/// request (idle keep-alive, or connected and silent) or still sending one. Connections
/// being answered and WebSockets are never closed to make room; when every connection is
/// one of those, a new connection is closed at once instead.
final class ConnectionTable: Sendable {
    enum Phase: Sendable {
        /// Connected (or between requests) and nothing sent yet.
        case waiting
        /// Some of a request has arrived, not all of it.
        case sendingRequest
        /// A request is being answered, or the connection is a WebSocket.
        case busy
    }

    struct Entry {
        /// Closes the connection (on its event loop).
        let close: @Sendable () -> Void
        var phase: Phase
        /// When the connection entered `phase` (the order of eviction).
        var since: NIODeadline
    }

    /// Why the server closed a connection, as the `reason` label of the counter.
    enum CloseReason: String, CaseIterable {
        /// Its request head (or body) did not arrive in time.
        case requestTimeout = "request_timeout"
        /// No request for the idle timeout.
        case idle
        /// Closed to make room for a new connection at the cap.
        case evicted
        /// A new connection at the cap when no other could make room.
        case refused
    }

    let limit: Int
    private let table = LockedValue<(nextID: Int, entries: [Int: Entry])>((0, [:]))
    private let open: Gauge
    private let closed: [CloseReason: Counter]

    init(limit: Int, registry: PrometheusCollectorRegistry) {
        self.limit = max(1, limit)
        open = registry.makeGauge(descriptor: HTTPMetricNames.connections)
        var closed: [CloseReason: Counter] = [:]
        for reason in CloseReason.allCases {
            closed[reason] = registry.makeCounter(descriptor: HTTPMetricNames.connectionsClosed, labels: [("reason", reason.rawValue)])
        }
        self.closed = closed
    }

    /// Connections open now.
    var count: Int { table.withLock { $0.entries.count } }

    /// Connections registered since the server started (each `admit`).
    var admitted: Int { table.withLock { $0.nextID } }

    /// Connections open now in `phase`.
    func count(in phase: Phase) -> Int { table.withLock { $0.entries.values.count { $0.phase == phase } } }

    /// Registers a new connection. At the cap, the oldest connection still sending a
    /// request is closed to make room (else the one waiting longest for a request); if
    /// every other connection is busy, `nil`: the caller closes the new one.
    func admit(close: @escaping @Sendable () -> Void) -> Int? {
        let now = NIODeadline.now()
        let (id, victim) = table.withLock { t -> (Int?, (@Sendable () -> Void)?) in
            let id = t.nextID
            t.nextID += 1
            guard t.entries.count >= limit else {
                t.entries[id] = Entry(close: close, phase: .waiting, since: now)
                return (id, nil)
            }
            var best: (id: Int, entry: Entry)?
            for (candidate, entry) in t.entries where entry.phase != .busy {
                guard let current = best else {
                    best = (candidate, entry)
                    continue
                }
                // Still sending beats waiting; then the older one goes.
                let rank = entry.phase == .sendingRequest ? 0 : 1
                let currentRank = current.entry.phase == .sendingRequest ? 0 : 1
                if rank < currentRank || (rank == currentRank && entry.since < current.entry.since) {
                    best = (candidate, entry)
                }
            }
            guard let best else { return (nil, nil) }
            t.entries[best.id] = nil
            t.entries[id] = Entry(close: close, phase: .waiting, since: now)
            return (id, best.entry.close)
        }
        if let victim {
            closed[.evicted]?.increment()
            victim()
        }
        if id == nil { closed[.refused]?.increment() }
        open.set(Double(count))
        return id
    }

    func update(_ id: Int, to phase: Phase, since: NIODeadline = .now()) {
        table.withLock { t in
            guard t.entries[id] != nil else { return }
            t.entries[id]?.phase = phase
            t.entries[id]?.since = since
        }
    }

    func remove(_ id: Int) {
        let remaining = table.withLock { t -> Int in
            t.entries[id] = nil
            return t.entries.count
        }
        open.set(Double(remaining))
    }

    /// Counts a connection the server closed for `reason`.
    func noteClosed(_ reason: CloseReason) {
        closed[reason]?.increment()
    }
}

enum HTTPMetricNames {
    static var connections: MetricNameDescriptor {
        Names.d("trafficmon_http_connections", "HTTP connections open now (WebSockets included).")
    }
    static var connectionsClosed: MetricNameDescriptor {
        Names.d(
            "trafficmon_http_connections_closed_total",
            "HTTP connections the server closed on its own: reason=request_timeout (a request not sent in time), "
                + "idle (no request for the idle timeout), evicted (made room at --max-connections), refused (--max-connections reached and every connection busy).")
    }
}

/// One connection's request clock, shared by the two handlers that watch it: one before
/// the HTTP decoder sees a request's first bytes, one after it sees the request end and the
/// response end. Lives on the channel's event loop.
///
/// NIO's `IdleStateHandler` is not enough here: any byte resets it, so a client that sends
/// a header a byte at a time would never time out. Hummingbird's idle timeout closes idle
/// keep-alive connections, but only once a first request has arrived (before that, the
/// WebSocket upgrade handler waits for a whole head), and it does not bound a head that
/// trickles in.
final class RequestClock {
    /// The connection's entry in `table` (set once admitted).
    var id = -1
    let table: ConnectionTable
    /// How long a request may take to arrive, from its first byte.
    let timeout: TimeAmount
    /// How long a connection may wait with no request.
    let idleTimeout: TimeAmount
    let channel: any Channel
    /// Ends the connection the way a client closing it would (set by `RequestEndHandler`,
    /// which is where the event must start): the WebSocket upgrade handler, still waiting
    /// for a first head, then ends quietly instead of reporting an error for a connection
    /// closed under it.
    var endAction: (() -> Void)?
    /// No room for this connection: it is closed once active.
    var refused = false
    private var phase: ConnectionTable.Phase = .waiting
    /// Requests whose head has arrived and whose response has not ended.
    private var answering = 0
    /// Bytes arrived while a request was being answered: the next request's start.
    private var nextStart: NIODeadline?
    private var upgraded = false
    /// Whether the connection became a WebSocket (HTTP handlers then see bytes, not parts).
    var isWebSocket: Bool { upgraded }
    private var deadline: Scheduled<Void>?

    init(table: ConnectionTable, timeout: TimeAmount, idleTimeout: TimeAmount, channel: any Channel) {
        self.table = table
        self.timeout = timeout
        self.idleTimeout = idleTimeout
        self.channel = channel
    }

    /// The connection is open and waits for its first request.
    func opened(_ channel: any Channel) {
        arm(channel, from: .now(), idle: true)
    }

    /// Closes the connection (a late request, or making room for another).
    func end() {
        disarm()
        if let endAction {
            endAction()
        } else {
            channel.close(promise: nil)
        }
    }

    /// Bytes before the decoder.
    func bytesArrived(_ channel: any Channel) {
        guard !upgraded else { return }
        switch phase {
        case .waiting:
            phase = .sendingRequest
            let now = NIODeadline.now()
            table.update(id, to: .sendingRequest, since: now)
            arm(channel, from: now)
        case .sendingRequest:
            break
        case .busy:
            if nextStart == nil { nextStart = .now() }
        }
    }

    /// The decoder has produced a whole request head.
    func headArrived(_ channel: any Channel) {
        guard !upgraded else { return }
        answering += 1
        if phase == .waiting {
            // Pipelined behind the last one, before `bytesArrived` could see it start.
            phase = .sendingRequest
            arm(channel, from: nextStart ?? .now())
        }
        nextStart = nil
    }

    /// The request has been read to its end: it is being answered.
    func requestEnded() {
        guard !upgraded else { return }
        disarm()
        phase = .busy
        table.update(id, to: .busy)
    }

    /// A response has been written to its end.
    func responseEnded(_ channel: any Channel) {
        guard !upgraded else { return }
        answering = max(0, answering - 1)
        guard answering == 0, phase == .busy else { return }
        if let start = nextStart {
            // The next request began while this one was answered.
            nextStart = nil
            phase = .sendingRequest
            table.update(id, to: .sendingRequest, since: start)
            arm(channel, from: start)
        } else {
            // Idle keep-alive (Hummingbird's idle timeout would close it too, once its
            // handler is in place after a first request).
            phase = .waiting
            table.update(id, to: .waiting)
            arm(channel, from: .now(), idle: true)
        }
    }

    /// The connection became a WebSocket: no more HTTP requests, never evicted.
    func becameWebSocket() {
        upgraded = true
        disarm()
        phase = .busy
        table.update(id, to: .busy)
    }

    func closed() {
        disarm()
        endAction = nil
    }

    /// Closes the connection at `start` plus the request timeout (or the idle timeout).
    private func arm(_ channel: any Channel, from start: NIODeadline, idle: Bool = false) {
        disarm()
        deadline = channel.eventLoop.assumeIsolated().scheduleTask(deadline: start + (idle ? idleTimeout : timeout)) { [self] in
            deadline = nil
            guard channel.isActive else { return }
            table.noteClosed(idle ? .idle : .requestTimeout)
            end()
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}

/// Before the HTTP decoder: tells the clock when a request's first bytes arrive.
final class RequestStartHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let clock: RequestClock

    init(clock: RequestClock) {
        self.clock = clock
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        if clock.refused { clock.end() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !clock.refused else { return }
        clock.bytesArrived(context.channel)
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clock.closed()
        context.fireChannelInactive()
    }
}

/// After the HTTP decoder: tells the clock when a request has arrived and when its
/// response has been written (or the connection became a WebSocket).
final class RequestEndHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart
    let clock: RequestClock

    init(clock: RequestClock) {
        self.clock = clock
    }

    func handlerAdded(context: ChannelHandlerContext) {
        clock.endAction = {
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        clock.endAction = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After an upgrade, WebSocket bytes pass by.
        guard !clock.isWebSocket else {
            context.fireChannelRead(data)
            return
        }
        switch unwrapInboundIn(data) {
        case .head: clock.headArrived(context.channel)
        case .body: break
        case .end: clock.requestEnded()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !clock.isWebSocket else {
            context.write(data, promise: promise)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status == .switchingProtocols: clock.becameWebSocket()
        case .end: clock.responseEnded(context.channel)
        default: break
        }
        context.write(data, promise: promise)
    }
}
