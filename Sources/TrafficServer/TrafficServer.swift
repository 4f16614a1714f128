import Hummingbird
import Logging
import ServiceLifecycle
import TrafficCapture
import TrafficCore

/// Puts trafficmon's server together: the capture engine on its thread, the window
/// publisher, and the Hummingbird application with its routes, as services of one
/// group (shut down in reverse: HTTP first, then the capture closes its open window,
/// then the publisher hands that window to everyone).
///
/// ```swift
/// let server = TrafficServer(configuration: config, source: try PacketSource.openFile("x.pcap"),
///                            aggregation: .init(localNetworks: local, top: 50), logger: logger)
/// try await server.application.runService()
/// ```
public struct TrafficServer: Sendable {
    public typealias Context = BasicRequestContext

    public let state: TrafficState
    public let application: Application<RouterResponder<Context>>

    public init(
        configuration: ServerConfiguration, source: PacketSource, aggregation: WindowAggregator.Configuration,
        subscribers: [any WindowSubscriber] = [], logger: Logger
    ) {
        var aggregation = aggregation
        aggregation.top = configuration.top
        let channel = WindowChannel()
        let engine = CaptureEngine(source: source, configuration: aggregation) { closed in channel.send(closed) }
        let state = TrafficState(configuration: configuration, engine: engine, windowLength: aggregation.windowLength)
        self.state = state

        let router = Router(context: Context.self)
        router.add(middleware: JSONErrorMiddleware())
        MetricsRoute(state: state).add(to: router)
        StatsRoutes(state: state).add(to: router)
        HealthRoutes(state: state).add(to: router)
        LandingPage(state: state).add(to: router)
        if configuration.enableDebugInject { InjectRoute(state: state).add(to: router) }

        let publisher = WindowPublisher(channel: channel, state: state, subscribers: subscribers, logger: logger)
        let capture = CaptureService(engine: engine, channel: channel, logger: logger)
        application = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "trafficmon"),
            services: [publisher, capture],
            logger: logger)
    }
}
