import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import ServiceLifecycle
import TrafficCapture
import TrafficCore
import TrafficStore

/// Puts trafficmon's server together: the capture engine on its thread, the window
/// publisher and its subscribers (the SQLite writer, the WebSocket hub), and the
/// Hummingbird application with its routes, as services of one group. Shutdown runs
/// in reverse: HTTP first, then the capture closes its open window, then the
/// publisher hands that window to everyone, then the store writes it.
///
/// ```swift
/// let server = try await TrafficServer(configuration: config, source: try PacketSource.openFile("x.pcap"),
///                                      aggregation: .init(localNetworks: local), logger: logger)
/// try await server.application.runService()
/// ```
public struct TrafficServer: Sendable {
    public typealias Context = BasicWebSocketRequestContext

    /// Persistence and security options.
    public struct Options: Sendable {
        /// Where closed windows are kept (nil: memory only).
        public var store: WindowStore?
        /// Windows older than this (before the newest) are pruned from the store.
        public var retention: Int64?
        /// Bearer tokens; empty means no authentication.
        public var authTokens: [String] = []
        /// Serve HTTPS with this configuration.
        public var tls: TLSConfiguration?
        /// WebSocket clients further behind than this many windows are dropped.
        public var streamQueueLimit = 32

        public init() {}
    }

    public let state: TrafficState
    public let hub: StreamHub
    public let application: Application<RouterResponder<Context>>

    /// Builds the server; with a store, the history it holds is loaded first.
    public init(
        configuration: ServerConfiguration, source: PacketSource, aggregation: WindowAggregator.Configuration,
        options: Options = Options(), logger: Logger
    ) async throws {
        var aggregation = aggregation
        aggregation.top = configuration.top
        let channel = WindowChannel()
        let engine = CaptureEngine(source: source, configuration: aggregation) { closed in channel.send(closed) }
        let state = TrafficState(
            configuration: configuration, engine: engine, windowLength: aggregation.windowLength, store: options.store)
        if let store = options.store {
            for record in try await store.recent(limit: configuration.historySize) { state.append(record) }
        }
        self.state = state
        let hub = StreamHub(queueLimit: options.streamQueueLimit)
        self.hub = hub

        let router = Router(context: Context.self)
        router.add(middleware: JSONErrorMiddleware())
        if !options.authTokens.isEmpty { router.add(middleware: BearerAuthMiddleware(tokens: options.authTokens)) }
        MetricsRoute(state: state).add(to: router)
        StatsRoutes(state: state).add(to: router)
        StreamRoute(hub: hub).add(to: router)
        HealthRoutes(state: state).add(to: router)
        LandingPage(state: state).add(to: router)
        if configuration.enableDebugInject { InjectRoute(state: state).add(to: router) }

        var subscribers: [any WindowSubscriber] = [hub]
        var services: [any ServiceLifecycle.Service] = []
        if let store = options.store {
            let writer = StoreWriter(store: store, retention: options.retention, logger: logger)
            subscribers.append(writer)
            services.append(writer)
        }
        services.append(WindowPublisher(channel: channel, state: state, subscribers: subscribers, logger: logger))
        services.append(CaptureService(engine: engine, channel: channel, logger: logger))

        var server: HTTPServerBuilder = options.authTokens.isEmpty
            ? .http1WebSocketUpgrade(webSocketRouter: router)
            : .http1WebSocketUpgrade(webSocketRouter: router, requiringTokens: options.authTokens)
        if let tls = options.tls {
            server = try .tls(server, tlsConfiguration: tls)
        }
        let scheme = options.tls == nil ? "http" : "https"
        application = Application(
            router: router, server: server,
            configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "trafficmon"),
            services: services,
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.listen.port
                let host = configuration.listen.host.contains(":") ? "[\(configuration.listen.host)]" : configuration.listen.host
                logger.info("serving \(scheme)://\(host):\(port)")
            },
            logger: logger)
    }
}
