import Foundation
import Logging
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficTestSupport

/// The server suites' one harness: in-process `TrafficServer`s over capture files the tests
/// write (or an empty one, whose windows then come from injects on the wall clock), and
/// the waits for their replays. Its HTTP helpers are in `ServerHarness+HTTP.swift`, the
/// external programs it runs in `ServerHarness+Programs.swift`, and the records it makes
/// in `ServerHarness+Records.swift`.
///
/// ```swift
/// let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir)))
/// try await server.application.test(.router) { client in
///     try await ServerHarness.waitForReplay(server, windows: 3)
///     let metrics = try await ServerHarness.metrics(client)
/// }
/// ```
enum ServerHarness {
    /// One second in nanoseconds.
    static let second: Int64 = 1_000_000_000

    /// `--local-net` for `SyntheticTraffic`'s servers.
    static func localNetworks(_ cidrs: [String] = SyntheticTraffic.localNetworks) throws -> LocalNetworks {
        LocalNetworks(try cidrs.map { try NetworkPrefix(parsing: $0) })
    }

    /// The servers' logger: errors only.
    static var logger: Logger {
        var logger = Logger(label: "trafficmon-test")
        logger.logLevel = .error
        return logger
    }

    /// A server over `source` (a capture file: `.file(url)`); `configure` changes its
    /// settings (limits, listen address, allowed hosts), `aggregate` its counting (named
    /// networks, origins, service ports), `options` its store, tokens, TLS and queue limit.
    static func server(
        source: PacketSource, windowLength: Int64 = 5 * second, top: Int = 50, maxClients: Int = 100_000,
        historySize: Int = 720, enableDebugInject: Bool = false, maxPartySeries: Int = 1000,
        partyTTL: Int64 = 600 * second, localNetworks: [String] = SyntheticTraffic.localNetworks,
        options: TrafficServer.Options = .init(), logger: Logger = logger,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        aggregate: (inout WindowAggregator.Configuration) -> Void = { _ in }
    ) async throws -> TrafficServer {
        var aggregation = WindowAggregator.Configuration(
            windowLength: windowLength, localNetworks: try Self.localNetworks(localNetworks), maxClients: maxClients, top: top)
        aggregate(&aggregation)
        var settings = configuration(top: top, historySize: historySize, enableDebugInject: enableDebugInject)
        settings.maxPartySeries = maxPartySeries
        settings.partyTTL = partyTTL
        configure(&settings)
        return try await TrafficServer(configuration: settings, source: source, aggregation: aggregation, options: options, logger: logger)
    }

    /// The server settings of the test servers (version 9.9.9-test).
    private static func configuration(top: Int, historySize: Int, enableDebugInject: Bool) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.top = top
        configuration.historySize = historySize
        configuration.enableDebugInject = enableDebugInject
        configuration.version = "9.9.9-test"
        return configuration
    }

    // MARK: Capture files

    /// Writes `traffic` as a pcap file in `directory`.
    static func write(_ traffic: SyntheticTraffic, in directory: URL, name: String = "capture.pcap", snapLength: Int = 262_144) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try traffic.pcap(snapLength: snapLength).write(to: url)
        return url
    }

    /// A capture file holding only its header: the replay ends at once and windows then
    /// come from injects, closed on the wall clock.
    static func emptyCapture(in directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("empty.pcap")
        try PcapWriter(linkType: 1).write(to: url)
        return url
    }

    // MARK: Waiting

    struct Timeout: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out waiting for \(what)" }
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes.
    static func waitUntil(
        _ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if try await condition() { return }
            if clock.now >= deadline { throw Timeout(what: what) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits until the file has been read to its end and `windows` closed windows reached the history.
    static func waitForReplay(_ server: TrafficServer, windows: Int, timeout: Duration = .seconds(60)) async throws {
        try await waitUntil("the replay to finish with \(windows) windows in the history", timeout: timeout) {
            server.state.engine.status == .replayed && server.state.history(limit: 10_000).count >= windows
        }
    }

    /// Waits until a replay has been read to its end and its last window (marked partial)
    /// has been published: the engine says `replayed` as soon as it has closed that window,
    /// a moment before the publisher has handed it on.
    static func waitForReplayEnd(_ server: TrafficServer, timeout: Duration = .seconds(60)) async throws {
        try await waitUntil("the replay's last window in the history", timeout: timeout) {
            server.state.engine.status == .replayed && server.state.history(limit: 1).last?.partial == true
        }
    }

    // MARK: Injects

    /// Counts one packet of `size` bytes from a distinct client per `index` (10.64.x.y), inbound TCP/8000.
    static func inject(_ server: TrafficServer, clientIndex: Int, size: Int = 1200) {
        let ip = IPAddress(ipv4: 0x0A40_0000 | UInt32(truncatingIfNeeded: clientIndex & 0x3F_FFFF))
        server.state.engine.inject(
            Attribution(client: ip, direction: .inbound, service: Service(label: "TCP/8000")!), wireLength: size)
    }

    /// Wall-clock nanoseconds.
    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }
}

extension PacketSource {
    /// The capture file at `url`, to replay.
    static func file(_ url: URL) throws -> PacketSource {
        try openFile(url.path)
    }
}
