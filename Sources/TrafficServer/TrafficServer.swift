import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import ServiceLifecycle
import TrafficCapture
import TrafficCore
import TrafficFlows
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
    public typealias Context = TrafficRequestContext

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
    /// The open HTTP connections.
    let connections: ConnectionTable
    /// The HTTP application with trafficmon's services inside it (what tests drive with
    /// `application.test(...)`). `runService()` runs the same routes and services for
    /// production, in the order that shuts down cleanly.
    public let application: Application<RouterResponder<Context>>
    /// Capture, publisher and store, in start order.
    let services: [any ServiceLifecycle.Service]
    let makeApplication: @Sendable ([any ServiceLifecycle.Service]) -> Application<RouterResponder<Context>>
    let logger: Logger

    /// Builds the server over one input; with a store, the history it holds is loaded first.
    public init(
        configuration: ServerConfiguration, source: PacketSource, aggregation: WindowAggregator.Configuration,
        options: Options = Options(), logger: Logger
    ) async throws {
        try await self.init(configuration: configuration, sources: [source], aggregation: aggregation, options: options, logger: logger)
    }

    /// Builds the server over `sources` (a capture file, or live handles: several
    /// interfaces, several handles each) and `collectors` (flow inputs, live, beside or
    /// instead of the interfaces); with a store, the history it holds is loaded first.
    public init(
        configuration: ServerConfiguration, sources: [PacketSource], collectors: [FlowCollector] = [],
        aggregation: WindowAggregator.Configuration, options: Options = Options(), logger: Logger
    ) async throws {
        var aggregation = aggregation
        aggregation.top = configuration.top
        let channel = WindowChannel()
        let engine = CaptureEngine(sources: sources, counting: collectors, configuration: aggregation) { closed in channel.send(closed) }
        let state = TrafficState(
            configuration: configuration, engine: engine, collectors: collectors, windowLength: aggregation.windowLength,
            store: options.store)
        if let store = options.store {
            for record in try await store.recent(limit: configuration.historySize) { state.append(record) }
        }
        self.state = state
        let hub = StreamHub(queueLimit: options.streamQueueLimit)
        self.hub = hub

        let router = Router(context: Context.self)
        router.add(middleware: JSONErrorMiddleware())
        let hostCheck = HostCheck(listen: configuration.listen, allowedHosts: configuration.allowedHosts)
        if hostCheck.enforced { router.add(middleware: HostCheckMiddleware(check: hostCheck)) }
        if !options.authTokens.isEmpty {
            router.add(middleware: BearerAuthMiddleware(tokens: options.authTokens, openPaths: LivePage<Context>.paths.union(["/healthz"])))
        }
        MetricsRoute(state: state).add(to: router)
        StatsRoutes(state: state).add(to: router)
        StreamRoute(hub: hub).add(to: router)
        HealthRoutes(state: state).add(to: router)
        LivePage(authRequired: !options.authTokens.isEmpty).add(to: router)
        if configuration.enableDebugInject { InjectRoute(state: state).add(to: router) }

        var subscribers: [any WindowSubscriber] = [hub]
        var services: [any ServiceLifecycle.Service] = []
        let storeMetrics = StoreMetrics(registry: state.metrics.registry)
        if let store = options.store {
            let historySize = configuration.historySize
            // While the store fails, at least an hour of 5 s windows waits (more with a
            // longer --history); those in the history ring share its memory.
            let writer = StoreWriter(
                store: store, retention: options.retention, logger: logger, queueLimit: max(historySize, 720), metrics: storeMetrics,
                history: { state.rendered(limit: historySize) }, onFlushed: { state.noteFlushed() })
            subscribers.append(writer)
            services.append(writer)
        }
        services.append(WindowPublisher(
            channel: channel, state: state, subscribers: subscribers, marksFlushed: options.store == nil, logger: logger))
        services.append(CaptureService(engine: engine, channel: channel, state: state, logger: logger))

        let connections = ConnectionTable(limit: configuration.limits.maxConnections, registry: state.metrics.registry)
        self.connections = connections
        var server: HTTPServerBuilder = .trafficmon(
            webSocketRouter: router, requiringTokens: options.authTokens, hostCheck: hostCheck, limits: configuration.limits,
            connections: connections)
        if let tls = options.tls {
            server = try .tls(server, tlsConfiguration: tls)
        }
        let scheme = options.tls == nil ? "http" : "https"
        let address = BindAddress.hostname(configuration.listen.host, port: configuration.listen.port)
        let listen = configuration.listen
        let responder = router.buildResponder()
        let serverBuilder = server
        makeApplication = { services in
            Application(
                responder: responder, server: serverBuilder,
                configuration: .init(address: address, serverName: "trafficmon"),
                services: services,
                onServerRunning: { channel in
                    let port = channel.localAddress?.port ?? listen.port
                    let host = listen.host.contains(":") ? "[\(listen.host)]" : listen.host
                    logger.info("serving \(scheme)://\(host):\(port)")
                },
                logger: logger)
        }
        self.services = services
        self.logger = logger
        application = makeApplication(services)
    }

    /// Runs the server until SIGINT/SIGTERM. Shutdown order: the capture closes its open
    /// window, the publisher hands it to the stream and the store, the store commits it,
    /// and only then does HTTP stop, within `shutdownTimeout` even if clients hang on.
    public func runService(shutdownTimeout: Duration = .milliseconds(1500)) async throws {
        var configuration = ServiceGroupConfiguration(
            services: [makeApplication([])] + services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownTimeout
        configuration.maximumCancellationDuration = .milliseconds(500)
        let group = ServiceGroup(configuration: configuration)
        let (outcomes, outcome) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        let runner = Task {
            do {
                try await group.run()
                outcome.yield(.success(()))
            } catch {
                outcome.yield(.failure(error))
            }
        }
        // A connection that never finishes (an idle keep-alive, a half-sent request, a
        // WebSocket peer that ignores the close) can hold an HTTP server's shutdown
        // forever. Once the capture has closed its window and the data is stored, that is
        // no reason to keep the process: give HTTP `shutdownTimeout`, then return.
        let watchdog = Task {
            while !(state.shutdownRequested && state.isFlushed) { try await Task.sleep(for: .milliseconds(100)) }
            try await Task.sleep(for: shutdownTimeout)
            outcome.yield(.success(()))
        }
        defer { watchdog.cancel() }
        for await result in outcomes {
            switch result {
            case .success:
                return
            case .failure(let error):
                // After a signal, whatever the slowest connection did is not a failure.
                if state.shutdownRequested { return }
                runner.cancel()
                throw error
            }
        }
    }
}
