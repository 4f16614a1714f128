import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import TrafficCapture
import TrafficCore
import TrafficEnrichment
import TrafficServer
import TrafficTestSupport

/// Named networks, countries and ASes in `/metrics` and `/stats/history` of a replaying
/// server, against the capture's oracle: the counters hold exactly the truth's flows per
/// network (or country), every family adds up to the IP totals, and the series count stays
/// bounded by the flags whatever the traffic.
@Suite struct NetworkMetricsTests {
    struct Setup: Sendable {
        let dir: URL
        let truth: SyntheticTraffic.Truth
        let server: TrafficServer
    }

    static func setup(
        top: Int = 50, maxNetworkSeries: Int = 100, filler: Int = 0, databases: Bool = true, networks: Bool = true
    ) async throws -> Setup {
        let dir = try TestProcess.temporaryDirectory()
        let traffic = SyntheticTraffic(packets: 12_000, clients: 400, seconds: 15, seed: 61)
        let capture = try ServerHarness.write(traffic, in: dir)
        let named = networks
            ? try NetworksFile.parse(
                WhoFixtures.networksYAML(WhoFixtures.networkBlocks(.servers) + WhoFixtures.fillerBlocks(filler)), path: "networks.yaml")
            : nil
        var origins: MaxMindOrigins?
        if databases {
            let asn = dir.appendingPathComponent("asn.mmdb"), country = dir.appendingPathComponent("country.mmdb")
            try WhoFixtures.asnDatabase().write(to: asn)
            try WhoFixtures.countryDatabase().write(to: country)
            origins = try MaxMindOrigins(asnDatabase: asn.path, countryDatabase: country.path)
        }
        let server = try await ServerHarness.server(
            source: try .file(capture), top: top, configure: { $0.maxNetworkSeries = maxNetworkSeries },
            aggregate: { aggregation in
                aggregation.networks = named
                aggregation.origins = origins
            })
        return Setup(dir: dir, truth: traffic.truth, server: server)
    }

    /// `sum by (labels)` of a family, as exact integers.
    static func sums(_ m: PromExposition, _ family: String, by labels: [String]) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for s in m.samples(family) {
            result[labels.map { s.labels[$0] ?? "" }.joined(separator: "/"), default: 0] += s.value.promExactUInt ?? .max
        }
        return result
    }

    @Test func countersAndGaugesMatchTheOracleAndAddUp() async throws {
        let s = try await Self.setup(filler: 200)
        defer { try? FileManager.default.removeItem(at: s.dir) }
        try await s.server.application.test(.router) { client in
            try await ServerHarness.waitForReplay(s.server, windows: 3)
            let m = try await ServerHarness.metrics(client)
            let truth = s.truth
            let blocks = WhoFixtures.networkBlocks(.servers)

            // Counters per network, side and direction: the oracle's figures.
            let expected = WhoFixtures.networkTotals(truth, blocks: blocks)
            for (key, counts) in expected {
                let labels = ["network": key.network, "side": key.side, "direction": key.direction]
                #expect(m.value("trafficmon_network_bytes_total", labels)?.promExactUInt == counts.bytes, "\(key)")
                #expect(m.value("trafficmon_network_packets_total", labels)?.promExactUInt == counts.packets, "\(key)")
            }
            // Every network of the file up to --max-network-series has its series from the start,
            // with or without traffic; the filler blocks past it have none.
            let named = Set(m.labelValues("trafficmon_network_bytes_total", "network"))
            #expect(named.count == 100 + 2, "\(named.count)")
            #expect(named.contains("filler-0") && named.contains("unknown") && named.contains("other"))
            #expect(m.value("trafficmon_network_bytes_total", ["network": "filler-0", "side": "client", "direction": "in"]) == 0)
            #expect(m.value("trafficmon_network_bytes_total", ["network": "other", "side": "server", "direction": "out"]) == 0)

            // Each side adds up to the IP counters, in the counters and in the last window's gauges.
            let bytes = Self.sums(m, "trafficmon_bytes_total", by: ["direction"])
            let windowBytes = Self.sums(m, "trafficmon_window_bytes", by: ["direction"])
            for side in ["client", "server"] {
                for direction in ["in", "out"] {
                    #expect(Self.sums(m, "trafficmon_network_bytes_total", by: ["side", "direction"])["\(side)/\(direction)"] == bytes[direction])
                    #expect(Self.sums(m, "trafficmon_window_network_bytes", by: ["side", "direction"])["\(side)/\(direction)"] == windowBytes[direction])
                }
            }
            for direction in ["in", "out"] {
                #expect(Self.sums(m, "trafficmon_country_bytes_total", by: ["direction"])[direction] == bytes[direction])
                #expect(Self.sums(m, "trafficmon_window_asn_bytes", by: ["direction"])[direction] == windowBytes[direction])
                #expect(Self.sums(m, "trafficmon_window_asn_packets", by: ["direction"])[direction]
                    == m.value("trafficmon_window_packets", ["direction": direction])?.promExactUInt)
            }
            // Countries against the oracle.
            for (key, counts) in WhoFixtures.countryTotals(truth) {
                let parts = key.split(separator: "/").map(String.init)
                #expect(m.value("trafficmon_country_bytes_total", ["country": parts[0], "direction": parts[1]])?.promExactUInt == counts.bytes, "\(key)")
            }
            // The window gauges describe the newest window of the history.
            let newest = try #require(s.server.state.history(limit: 1).last)
            for a in newest.asns ?? [] {
                #expect(m.value("trafficmon_window_asn_bytes", ["asn": a.asn, "as_org": a.asOrg, "direction": "in"])?.promExactUInt == a.in.bytes)
            }
            // A quote and a backslash in an organisation survive the text format's escaping.
            #expect(newest.asns?.contains { $0.asn == "64500" } == true)
            #expect(m.value("trafficmon_window_asn_bytes", ["asn": "64500", "as_org": "Doc \"Net\" \\ Paris", "direction": "out"]) != nil)
            // promtool finds nothing to say about the new families (HELP, TYPE, names, labels).
            let promtool = try #require(MetricsTests.promtool, "promtool is not installed: scripts/install-deps --test")
            let text = try await ServerHarness.get(client, "/metrics")
            let check = try await TestProcess.run(program: promtool, ["check", "metrics"], input: Data(ServerHarness.bytes(text)))
            let said = check.stdoutText + check.stderr
            #expect(check.status == 0 && said.isEmpty, "promtool: \(said)")
            // Labels of the file, once per network.
            #expect(m.value("trafficmon_network_info", ["network": "docs", "site": "paris", "tier": "1"]) == 1)
            #expect(m.samples("trafficmon_network_info").count == 100)
        }
    }

    /// With --max-network-series 2 the first two networks of the file keep counters of their
    /// own; every other named network counts as network="other": each side still adds up.
    @Test func networksPastTheSeriesCapCountAsOther() async throws {
        let s = try await Self.setup(maxNetworkSeries: 2, databases: false)
        defer { try? FileManager.default.removeItem(at: s.dir) }
        try await s.server.application.test(.router) { client in
            try await ServerHarness.waitForReplay(s.server, windows: 3)
            let m = try await ServerHarness.metrics(client)
            #expect(Set(m.labelValues("trafficmon_network_bytes_total", "network")) == ["docs", "docs-low", "unknown", "other"])
            let expected = WhoFixtures.networkTotals(s.truth, blocks: WhoFixtures.networkBlocks(.servers))
            for side in ["client", "server"] {
                for direction in ["in", "out"] {
                    let rest = expected.filter { !["docs", "docs-low", "unknown"].contains($0.key.network) && $0.key.side == side && $0.key.direction == direction }
                        .values.reduce(UInt64(0)) { $0 + $1.bytes }
                    #expect(m.value("trafficmon_network_bytes_total", ["network": "other", "side": side, "direction": direction])?.promExactUInt == rest)
                }
            }
            #expect(m.samples("trafficmon_country_bytes_total").isEmpty && m.samples("trafficmon_window_asn_bytes").isEmpty)
        }
    }

    @Test func withoutTheFlagsThereAreNoSuchSeries() async throws {
        let s = try await Self.setup(databases: false, networks: false)
        defer { try? FileManager.default.removeItem(at: s.dir) }
        try await s.server.application.test(.router) { client in
            try await ServerHarness.waitForReplay(s.server, windows: 3)
            let text = ServerHarness.text(try await ServerHarness.get(client, "/metrics"))
            for family in ["trafficmon_network_", "trafficmon_window_network_", "trafficmon_country_", "trafficmon_window_asn_"] {
                #expect(!text.contains(family), "\(family)")
            }
        }
    }

    @Test func historyFiltersByNetworkASAndCountry() async throws {
        let s = try await Self.setup()
        defer { try? FileManager.default.removeItem(at: s.dir) }
        try await s.server.application.test(.router) { client in
            try await ServerHarness.waitForReplay(s.server, windows: 3)
            let all = try await ServerHarness.history(client)
            for (query, keep) in [
                ("network=docs", { (p: PartyRecord) in p.network == "docs" }),
                ("network=unknown", { (p: PartyRecord) in p.network == "unknown" }),
                ("asn=64500", { (p: PartyRecord) in p.asn == "64500" }),
                ("asn=AS64500", { (p: PartyRecord) in p.asn == "64500" }),
                ("country=fr", { (p: PartyRecord) in p.country == "FR" }),
                ("country=DE&asn=64500", { (p: PartyRecord) in p.country == "DE" && p.asn == "64500" }),
            ] {
                let response = try await ServerHarness.get(client, "/stats/history?limit=10000&\(query)")
                #expect(response.status == .ok, "\(query)")
                let windows = try ServerHarness.decodeHistory(response)
                #expect(windows.count == all.count)
                var kept = 0
                for (w, whole) in zip(windows, all) {
                    #expect(w.clients == whole.clients.filter(keep), "\(query)")
                    #expect(w.in == whole.in && w.out == whole.out)
                    kept += w.clients.count
                }
                #expect(kept > 0, "\(query) kept no client")
                #expect(windows.allSatisfy { w in w.networks?.allSatisfy { query.hasPrefix("network=") ? $0.network == query.dropFirst(8) : true } ?? false })
            }
            let docs = try await ServerHarness.get(client, "/stats/history?network=docs&top=0")
            let windows = try ServerHarness.decodeHistory(docs)
            // top=0 folds the parties; the selected network's entries stay.
            #expect(windows.allSatisfy { $0.clients.isEmpty && $0.servers.isEmpty })
            // (docs parties are servers too, of the frames without ports they receive)
            #expect(windows.allSatisfy { $0.networks?.allSatisfy { $0.network == "docs" } == true }, "\(windows.map { $0.networks })")
            #expect(windows.allSatisfy { $0.networks?.contains { $0.side == .client } == true })

            for (query, message) in [
                ("network=nope", "no network named 'nope'"),
                ("network=", "no network named ''"),
                ("asn=abc", "asn must be an AS number"),
                ("asn=AS", "asn must be an AS number"),
                ("asn=4294967296", "asn must be an AS number"),
                ("asn=0064500", "asn must be an AS number"),
                ("country=FRA", "country must be a two-letter"),
                ("country=1", "country must be a two-letter"),
                ("country=%C3%A9%C3%A9", "country must be a two-letter"),
            ] {
                let response = try await ServerHarness.get(client, "/stats/history?\(query)")
                #expect(response.status == .badRequest, "\(query)")
                #expect(ServerHarness.text(response).contains(message), "\(query): \(ServerHarness.text(response))")
            }
        }
        let bare = try await Self.setup(databases: false, networks: false)
        defer { try? FileManager.default.removeItem(at: bare.dir) }
        try await bare.server.application.test(.router) { client in
            for (query, message) in [
                ("network=docs", "network= needs a networks file"),
                ("asn=64500", "asn= needs an ASN database"),
                ("country=FR", "country= needs a country database"),
            ] {
                let response = try await ServerHarness.get(client, "/stats/history?\(query)")
                #expect(response.status == .badRequest)
                #expect(ServerHarness.text(response).contains(message), "\(ServerHarness.text(response))")
            }
        }
    }

    /// A flood from `sources` distinct addresses spread over 10,000 named networks (each
    /// hit by one source in 16 to 32): /metrics stays under the bound the flags set
    /// (`WhoSeries`), whatever the traffic, and under 3,000 series with the defaults.
    @Test func aFloodOverTenThousandNetworksStaysBounded() async throws {
        let sources = 300_000
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("flood.pcap")
        var writer = PcapWriter()
        var template = FrameBuilder.ethernet(ip: FrameBuilder.ipv4(
            src: IPAddress(ipv4: 0x0B00_0000), dst: IPAddress(ipv4: 0x0A00_0001), proto: 17, payload: FrameBuilder.ports(40_000, 53, payload: 18)))
        let t0: Int64 = 1_700_000_000 * 1_000_000_000
        for n in 0..<sources {
            let a = 0x0B00_0000 + UInt32(n)
            template[26] = UInt8(a >> 24); template[27] = UInt8((a >> 16) & 0xFF)
            template[28] = UInt8((a >> 8) & 0xFF); template[29] = UInt8(a & 0xFF)
            writer.append(template, timestamp: t0 + Int64(n) * 30_000)
        }
        try writer.write(to: url)
        let named = try NetworksFile.parse(
            WhoFixtures.networksYAML(WhoFixtures.floodBlocks(count: 10_000, sources: sources)), path: "flood.yaml")
        #expect(named.blockCount == 10_000)
        let server = try await ServerHarness.server(source: try .file(url), aggregate: { $0.networks = named })
        try await server.application.test(.router) { client in
            try await ServerHarness.waitForReplay(server, windows: 2, timeout: .seconds(120))
            let m = try await ServerHarness.metrics(client)
            // Network series: counters for 100 networks + unknown + other, two sides, two
            // directions, two units; gauges for the top 50 per side + unknown + other; info 100.
            let networkSeries = m.samples.filter { $0.name.contains("_network_") }.count
            #expect(networkSeries <= 8 * 102 + 8 * 52 + 100, "\(networkSeries)")
            #expect(m.seriesLines < 3_000, "\(m.seriesLines) series")
            #expect(Set(m.labelValues("trafficmon_window_network_bytes", "network")).count <= 2 * 50 + 2)
            let bytes = Self.sums(m, "trafficmon_bytes_total", by: ["direction"])
            #expect(Self.sums(m, "trafficmon_network_bytes_total", by: ["side", "direction"])["client/in"] == bytes["in"])
            #expect(bytes["in"] == UInt64(sources) * 60)
        }
    }
}
