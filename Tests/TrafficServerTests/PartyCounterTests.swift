import Foundation
import Testing
import TrafficCore
import TrafficServer
import TrafficTestSupport

/// The sticky per-party counters (`trafficmon_client_*_total`, `trafficmon_server_*_total`):
/// windows go through the real aggregator, each built with the parties the metrics track,
/// as the publisher does.
@Suite struct PartyCounterTests {
    static let t0: Int64 = 1_700_000_000 * 1_000_000_000
    static let window: Int64 = 5_000_000_000
    static let local = LocalNetworks([NetworkPrefix(address: IPAddress(ipv4: 0x0A00_0000), length: 29)])
    static let server = IPAddress("10.0.0.1")!
    static let otherServer = IPAddress("10.0.0.2")!

    /// Feeds `windows` (each a list of (client, server, bytes) sent in one window) through an
    /// aggregator with `top`, recording every closed window into `metrics`.
    static func run(_ windows: [[(String, IPAddress, Int)]], top: Int, into metrics: TrafficMetrics) {
        let aggregator = WindowAggregator(configuration: .init(windowLength: window, localNetworks: local, top: top)) { closed in
            metrics.record(closed.build(tracking: metrics.trackedParties()))
            closed.recycle()
        }
        for (w, packets) in windows.enumerated() {
            for (i, (client, server, bytes)) in packets.enumerated() {
                let attribution = Attribution(
                    client: IPAddress(client)!, server: server, direction: .inbound, service: Service(ipProtocol: 6, port: 443))
                aggregator.add(attribution, timestamp: t0 + Int64(w) * window + Int64(i) * 1_000_000, wireLength: bytes)
            }
        }
        aggregator.finish()
    }

    static func exposition(_ metrics: TrafficMetrics) throws -> PromExposition {
        try PromExposition.parse(String(decoding: metrics.exposition(format: .prometheus), as: UTF8.self))
    }

    /// A party enters the top, drops out of it and comes back: from its admission on, every
    /// window adds its exact bytes, listed or not; before it, nothing.
    @Test func aPartyKeepsExactTotalsOutsideTheTop() throws {
        let metrics = TrafficMetrics(top: 2, version: "t")
        Self.run([
            [("198.51.100.1", Self.server, 5000), ("198.51.100.2", Self.server, 4000), ("198.51.100.3", Self.server, 100)],
            [("198.51.100.1", Self.server, 10), ("198.51.100.2", Self.server, 5000), ("198.51.100.3", Self.server, 4000)],
            [("198.51.100.3", Self.otherServer, 9000), ("198.51.100.4", Self.otherServer, 8000), ("198.51.100.1", Self.server, 30)],
            [("198.51.100.5", Self.server, 100)],
        ], top: 2, into: metrics)
        let m = try Self.exposition(metrics)
        func bytes(_ client: String) -> Double? { m.value("trafficmon_client_bytes_total", ["client": client, "direction": "in"]) }
        #expect(bytes("198.51.100.1") == 5040)       // 5000 (admitted) + 10 + 30 while out of the top
        #expect(bytes("198.51.100.2") == 9000)       // absent from the last two windows: + 0
        #expect(bytes("198.51.100.3") == 13000)      // admitted in the second window: its first 100 bytes came before
        #expect(bytes("198.51.100.4") == 8000)
        #expect(bytes("198.51.100.5") == 100)
        #expect(m.value("trafficmon_client_bytes_total", ["client": "198.51.100.1", "direction": "out"]) == 0)
        #expect(m.value("trafficmon_client_packets_total", ["client": "198.51.100.1", "direction": "in"]) == 3)
        #expect(m.value("trafficmon_party_series", ["side": "client"]) == 5)
        // Servers the same way: 10.0.0.1 in every window, 10.0.0.2 in the third only.
        #expect(m.value("trafficmon_server_bytes_total", ["server": "10.0.0.1", "direction": "in"]) == Double(5000 + 4000 + 100 + 10 + 5000 + 4000 + 30 + 100))
        #expect(m.value("trafficmon_server_bytes_total", ["server": "10.0.0.2", "direction": "in"]) == 17000)
        #expect(m.types["trafficmon_client_bytes_total"] == "counter" && m.types["trafficmon_server_packets_total"] == "counter")
    }

    /// Without a place in any window's top for longer than the TTL the series goes; when the
    /// party comes back it starts again from that window (a counter reset for Prometheus).
    @Test func aPartyLeavesAfterTheTTLAndComesBackReset() throws {
        let metrics = TrafficMetrics(top: 1, version: "t", partyTTL: 10_000_000_000)
        let busy = ("203.0.113.50", Self.server, 100)
        var windows: [[(String, IPAddress, Int)]] = [[("198.51.100.1", Self.server, 5000)]]
        // Windows ending 10, 15 and 20 s in: 198.51.100.1 sends a little, never in the top.
        for _ in 0..<3 { windows.append([("203.0.113.50", Self.server, 1000), ("198.51.100.1", Self.server, 1)]) }
        Self.run(windows, top: 1, into: metrics)
        var m = try Self.exposition(metrics)
        // Listed last at 5 s; still there at 15 s (10 s later), gone at 20 s.
        #expect(m.value("trafficmon_client_bytes_total", ["client": "198.51.100.1", "direction": "in"]) == nil)
        #expect(m.value("trafficmon_client_bytes_total", ["client": "203.0.113.50", "direction": "in"]) == 3000)

        let again = TrafficMetrics(top: 1, version: "t", partyTTL: 10_000_000_000)
        Self.run(windows + [[("198.51.100.1", Self.server, 700), busy]], top: 1, into: again)
        m = try Self.exposition(again)
        #expect(m.value("trafficmon_client_bytes_total", ["client": "198.51.100.1", "direction": "in"]) == 700)

        // With the TTL one window longer, the quiet windows are counted while the series lasts.
        let longer = TrafficMetrics(top: 1, version: "t", partyTTL: 15_000_000_000)
        Self.run(windows, top: 1, into: longer)
        m = try Self.exposition(longer)
        #expect(m.value("trafficmon_client_bytes_total", ["client": "198.51.100.1", "direction": "in"]) == 5003)
    }

    /// 1,000,000 spoofed sources (50,000 new ones in each of 20 windows): the top of every
    /// window is new, parties are admitted up to --max-party-series and the rest refused,
    /// and the exposition stays within its bound.
    @Test func aMillionSpoofedSourcesKeepTheSeriesBounded() throws {
        let top = 50, maxPartySeries = 500
        let metrics = TrafficMetrics(top: top, version: "t", maxPartySeries: maxPartySeries)
        let aggregator = WindowAggregator(configuration: .init(windowLength: Self.window, localNetworks: Self.local, top: top)) { closed in
            metrics.record(closed.build(tracking: metrics.trackedParties()))
            closed.recycle()
        }
        let service = Service(ipProtocol: 17, port: 53)
        for n in 0..<1_000_000 {
            let source = IPAddress(ipv4: 0x6440_0000 &+ UInt32(n))
            aggregator.add(
                Attribution(client: source, server: Self.server, direction: .inbound, service: service),
                timestamp: Self.t0 + Int64(n / 50_000) * Self.window + Int64(n % 50_000) * 1000, wireLength: 64)
        }
        aggregator.finish()
        let m = try Self.exposition(metrics)
        #expect(m.value("trafficmon_windows_closed_total") == 20)
        #expect(m.value("trafficmon_party_series", ["side": "client"]) == Double(maxPartySeries))
        #expect(m.value("trafficmon_party_series_refused_total", ["side": "client"]) == Double(20 * top - maxPartySeries))
        #expect(m.labelValues("trafficmon_client_bytes_total", "client").count == maxPartySeries)
        CardinalityTests.expectWithinFamilyBounds(m, top: top, maxPartySeries: maxPartySeries)
        // The one server carries everything, exactly.
        #expect(m.value("trafficmon_server_bytes_total", ["server": "10.0.0.1", "direction": "in"]) == 64_000_000)
    }
}
