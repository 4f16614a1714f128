import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficTestSupport

/// Builds in-process `TrafficServer`s over capture files the tests write, and waits
/// for their replays.
enum HTTPHarness {
    static let nanos: Int64 = 1_000_000_000

    /// `--local-net` for `SyntheticTraffic`'s servers.
    static func localNetworks(_ cidrs: [String] = SyntheticTraffic.localNetworks) throws -> LocalNetworks {
        LocalNetworks(try cidrs.map { try NetworkPrefix(parsing: $0) })
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "trafficmon-test")
        logger.logLevel = .warning
        return logger
    }

    /// A server replaying `capture`; `configure` changes its settings (limits, listen
    /// address, allowed hosts), `options` its store and tokens.
    static func server(
        capture: URL, top: Int = 50, windowLength: Int64 = 5_000_000_000, maxClients: Int = 100_000,
        historySize: Int = 720, enableDebugInject: Bool = false, maxPartySeries: Int = 1000,
        partyTTL: Int64 = 600_000_000_000, localNetworks: [String] = SyntheticTraffic.localNetworks,
        options: TrafficServer.Options = .init(), configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> TrafficServer {
        let aggregation = WindowAggregator.Configuration(
            windowLength: windowLength, localNetworks: try Self.localNetworks(localNetworks), maxClients: maxClients, top: top)
        var settings = configuration(top: top, historySize: historySize, enableDebugInject: enableDebugInject)
        settings.maxPartySeries = maxPartySeries
        settings.partyTTL = partyTTL
        configure(&settings)
        return try await TrafficServer(
            configuration: settings, source: try PacketSource.openFile(capture.path), aggregation: aggregation, options: options,
            logger: quietLogger)
    }

    /// The server settings of the test servers (version 9.9.9-test).
    static func configuration(top: Int, historySize: Int, enableDebugInject: Bool) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.top = top
        configuration.historySize = historySize
        configuration.enableDebugInject = enableDebugInject
        configuration.version = "9.9.9-test"
        return configuration
    }

    /// Writes `traffic` as a pcap file in `directory`.
    static func write(_ traffic: SyntheticTraffic, in directory: URL, name: String = "capture.pcap") throws -> URL {
        let url = directory.appendingPathComponent(name)
        try traffic.pcap().write(to: url)
        return url
    }

    struct Timeout: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out waiting for \(what)" }
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes.
    static func waitUntil(
        _ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool
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

    // MARK: HTTP helpers

    static func get(_ client: some TestClientProtocol, _ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .get, headers: headers, body: nil)
    }

    static func text(_ response: TestResponse) -> String {
        String(decoding: response.body.readableBytesView, as: UTF8.self)
    }

    static func bytes(_ response: TestResponse) -> [UInt8] {
        Array(response.body.readableBytesView)
    }

    /// `/metrics` as parsed samples (Prometheus text format).
    static func metrics(_ client: some TestClientProtocol) async throws -> PromExposition {
        let response = try await get(client, "/metrics")
        #expect(response.status == .ok)
        return try PromExposition.parse(text(response))
    }

    struct History: Decodable {
        var windows: [WindowRecord]
    }

    /// `/stats/history?limit=N`, decoded.
    static func history(_ client: some TestClientProtocol, limit: Int = 10_000) async throws -> [WindowRecord] {
        let response = try await get(client, "/stats/history?limit=\(limit)")
        #expect(response.status == .ok)
        return try JSONDecoder().decode(History.self, from: Data(bytes(response))).windows
    }

    /// `/stats/current`, decoded.
    static func current(_ client: some TestClientProtocol) async throws -> WindowRecord {
        let response = try await get(client, "/stats/current")
        #expect(response.status == .ok)
        return try JSONDecoder().decode(WindowRecord.self, from: Data(bytes(response)))
    }

    /// Runs `program` with `input` on stdin; returns status, stdout and stderr.
    static func run(_ program: String, _ arguments: [String], input: Data) throws -> (status: Int32, stdout: Data, stderr: Data) {
        let result = try TestProcess.run(URL(fileURLWithPath: program), arguments, input: input)
        return (result.status, result.stdout, Data(result.stderr.utf8))
    }

    /// The first existing path of `name` on PATH (or the usual system directories).
    static func which(_ name: String) -> String? { TestProcess.which(name) }
}
