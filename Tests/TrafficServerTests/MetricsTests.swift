import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TrafficCore
import TrafficServer
import TrafficTestSupport

/// `/metrics` after a replay, against the generator's oracle and the JSON history.
@Suite struct MetricsTests {
    /// 12 000 packets over 30 s of packet time (7 windows of 5 s), 300 clients.
    static func traffic() -> SyntheticTraffic {
        SyntheticTraffic(packets: 12_000, clients: 300, seconds: 30, seed: 11)
    }

    /// Replays the synthetic capture and runs `body` once every window is in the history.
    static func withReplayedServer<T: Sendable>(
        top: Int = 50, _ body: @Sendable (any TestClientProtocol, SyntheticTraffic.Truth) async throws -> T
    ) async throws -> T {
        let traffic = Self.traffic()
        let truth = traffic.truth
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir)), top: top)
        return try await server.application.test(.router) { client in
            try await ServerHarness.waitForReplay(server, windows: truth.windowStarts.count)
            return try await body(client, truth)
        }
    }

    @Test func countersAgreeWithTheOracleAndTheHistory() async throws {
        try await Self.withReplayedServer { client, truth in
            let m = try await ServerHarness.metrics(client)
            let history = try await ServerHarness.history(client)
            #expect(history.count == truth.windowStarts.count)
            #expect(Set(history.map(\.start)) == truth.windowStarts)

            // Oracle: IP traffic per direction, and per (service, direction).
            var oracle: [String: Counts] = [:]
            var oracleServices: [String: Counts] = [:]
            for (flow, counts) in truth.flows {
                oracle[flow.direction, default: .zero] += counts
                oracleServices["\(flow.service) \(flow.direction)", default: .zero] += counts
            }
            let ipBytes = truth.flows.values.reduce(0) { $0 + $1.bytes }
            let ipPackets = truth.flows.values.reduce(0) { $0 + $1.packets }
            #expect(ipPackets > 10_000)

            #expect(m.sum("trafficmon_bytes_total").promExactUInt == ipBytes)
            #expect(m.sum("trafficmon_packets_total").promExactUInt == ipPackets)
            for direction in ["in", "out"] {
                #expect(m.value("trafficmon_bytes_total", ["direction": direction])?.promExactUInt == oracle[direction]?.bytes)
                #expect(m.value("trafficmon_packets_total", ["direction": direction])?.promExactUInt == oracle[direction]?.packets)
            }
            #expect(m.labelValues("trafficmon_packets_total", "direction") == ["in", "out"])

            // Every service of the capture (13 of them, fewer than --top) has its own counter.
            var services: [String: Counts] = [:]
            for s in m.samples("trafficmon_service_bytes_total") {
                services["\(s.labels["service"] ?? "?") \(s.labels["direction"] ?? "?")", default: .zero].bytes += s.value.promExactUInt ?? 0
            }
            for s in m.samples("trafficmon_service_packets_total") {
                services["\(s.labels["service"] ?? "?") \(s.labels["direction"] ?? "?")", default: .zero].packets += s.value.promExactUInt ?? 0
            }
            #expect(services.filter { $0.value != .zero } == oracleServices)

            // Non-IP, malformed, late, windows: the oracle and the sums over the history.
            let nonIP = history.reduce(0) { $0 + $1.nonIP.packets }
            let nonIPBytes = history.reduce(0) { $0 + $1.nonIP.bytes }
            let malformed = history.reduce(0) { $0 + $1.malformed.packets }
            let malformedBytes = history.reduce(0) { $0 + $1.malformed.bytes }
            let late = history.reduce(0) { $0 + $1.latePackets }
            let received = history.reduce(0) { $0 + $1.capture.received }
            #expect(nonIP == truth.nonIP.packets && nonIP > 0)
            #expect(malformed == truth.malformed.packets && malformed > 0)
            #expect(late == truth.latePackets && late > 0)
            #expect(m.value("trafficmon_non_ip_packets_total")?.promExactUInt == nonIP)
            #expect(m.value("trafficmon_non_ip_bytes_total")?.promExactUInt == nonIPBytes)
            #expect(m.sum("trafficmon_malformed_packets_total").promExactUInt == malformed)
            #expect(m.value("trafficmon_malformed_bytes_total")?.promExactUInt == malformedBytes)
            // Every reason of the history has its series with the same count.
            var reasons: [String: UInt64] = [:]
            for r in history { for (reason, n) in r.malformed.reasons { reasons[reason, default: 0] += n } }
            for (reason, n) in reasons {
                #expect(m.value("trafficmon_malformed_packets_total", ["reason": reason])?.promExactUInt == n, "reason \(reason)")
            }
            #expect(m.value("trafficmon_late_packets_total")?.promExactUInt == late)
            #expect(m.value("trafficmon_windows_closed_total")?.promExactUInt == UInt64(history.count))
            #expect(m.value("trafficmon_capture_received_packets_total")?.promExactUInt == received)
            #expect(received == truth.total.packets)
            #expect(m.value("trafficmon_capture_dropped_packets_total", ["where": "kernel"]) == 0)
            #expect(m.value("trafficmon_capture_dropped_packets_total", ["where": "interface"]) == 0)
            #expect(m.value("trafficmon_injected_packets_total") == 0)
            #expect(m.value("trafficmon_up") == 1)
            #expect(m.value("trafficmon_build_info", ["version": "9.9.9-test"]) == 1)
        }
    }

    @Test func windowGaugesDescribeTheNewestRecord() async throws {
        try await Self.withReplayedServer(top: 10) { client, truth in
            let m = try await ServerHarness.metrics(client)
            let history = try await ServerHarness.history(client)
            let newest = try #require(history.last)
            #expect(newest.start == truth.windowStarts.max())
            #expect(newest.partial)
            #expect(newest.clients.count == 10, "--top 10 lists 10 clients")
            #expect(newest.other.clients > 0)
            #expect(newest.isConserved)

            #expect(m.value("trafficmon_window_start_timestamp_seconds") == Double(newest.start) / 1e9)
            #expect(m.value("trafficmon_window_duration_seconds") == 5)
            #expect(m.value("trafficmon_window_clients")?.promExactUInt == UInt64(newest.clients.count) + newest.other.clients)
            #expect(m.value("trafficmon_window_late_packets")?.promExactUInt == newest.latePackets)
            let sides: [(String, Counts)] = [("in", newest.in), ("out", newest.out)]
            for (direction, counts) in sides {
                #expect(m.value("trafficmon_window_bytes", ["direction": direction])?.promExactUInt == counts.bytes)
                #expect(m.value("trafficmon_window_packets", ["direction": direction])?.promExactUInt == counts.packets)
            }

            // Conservation: sum by (direction) of the client and service gauges equals the window gauges, exactly.
            for family in ["client", "service"] {
                for unit in ["bytes", "packets"] {
                    let sums = m.sum("trafficmon_window_\(family)_\(unit)", by: "direction")
                    for direction in ["in", "out"] {
                        let total = try #require(m.value("trafficmon_window_\(unit)", ["direction": direction]))
                        #expect(sums[direction] == total, "sum by (direction) (trafficmon_window_\(family)_\(unit)){direction=\"\(direction)\"}")
                    }
                }
            }

            // The client series are the record's listed clients plus "other", with its numbers.
            let expectedClients = Set(newest.clients.map(\.ip.description) + ["other"])
            #expect(m.labelValues("trafficmon_window_client_bytes", "client") == expectedClients)
            for c in newest.clients {
                let ip = c.ip.description
                #expect(m.value("trafficmon_window_client_bytes", ["client": ip, "direction": "in"])?.promExactUInt == c.in.bytes)
                #expect(m.value("trafficmon_window_client_bytes", ["client": ip, "direction": "out"])?.promExactUInt == c.out.bytes)
                #expect(m.value("trafficmon_window_client_packets", ["client": ip, "direction": "in"])?.promExactUInt == c.in.packets)
                #expect(m.value("trafficmon_window_client_packets", ["client": ip, "direction": "out"])?.promExactUInt == c.out.packets)
            }
            #expect(m.value("trafficmon_window_client_bytes", ["client": "other", "direction": "in"])?.promExactUInt == newest.other.in.bytes)
            #expect(m.value("trafficmon_window_client_bytes", ["client": "other", "direction": "out"])?.promExactUInt == newest.other.out.bytes)

            // Service gauges: the record's services (the window has 13, more than --top 10: the rest fold into "other").
            var recordServices: [String: Counts] = [:]
            for s in newest.services { recordServices["\(s.service.label) \(s.direction.label)", default: .zero] += Counts(packets: s.packets, bytes: s.bytes) }
            #expect(recordServices.count > 10)
            let serviceSeries = m.samples("trafficmon_window_service_bytes")
            #expect(serviceSeries.count <= 2 * (10 + 1))
            for s in serviceSeries where s.labels["service"] != "other" {
                let key = "\(s.labels["service"] ?? "?") \(s.labels["direction"] ?? "?")"
                #expect(s.value.promExactUInt == recordServices[key]?.bytes, "service \(key)")
            }
        }
    }

    /// The size histogram's `_count` and `_sum` are the IP packet and byte counters; its buckets,
    /// the TCP and DNS counters are the history's sums.
    @Test func protocolFamiliesAgreeWithTheCountersAndTheHistory() async throws {
        try await Self.withReplayedServer { client, _ in
            let m = try await ServerHarness.metrics(client)
            let history = try await ServerHarness.history(client)
            for (i, direction) in ["in", "out"].enumerated() {
                let labels = ["direction": direction]
                #expect(m.value("trafficmon_packet_size_bytes_count", labels) == m.value("trafficmon_packets_total", labels))
                #expect(m.value("trafficmon_packet_size_bytes_sum", labels) == m.value("trafficmon_bytes_total", labels))
                #expect(m.value("trafficmon_packet_size_bytes_bucket", ["direction": direction, "le": "+Inf"]) == m.value("trafficmon_packets_total", labels))
                var cumulative: UInt64 = 0
                for (b, bound) in (ProtocolCounts.sizeBounds.map(String.init) + ["+Inf"]).enumerated() {
                    cumulative += history.reduce(0) { $0 + (i == 0 ? $1.protocols.sizesIn : $1.protocols.sizesOut)[b] }
                    #expect(m.value("trafficmon_packet_size_bytes_bucket", ["direction": direction, "le": bound])?.promExactUInt == cumulative, "le=\(bound)")
                }
                for kind in TCPFlags.Kind.allCases {
                    let sum = history.reduce(0) { $0 + (i == 0 ? $1.protocols.tcpIn : $1.protocols.tcpOut)[kind] }
                    #expect(m.value("trafficmon_tcp_packets_total", ["flags": kind.label, "direction": direction])?.promExactUInt == sum)
                }
            }
            for (q, qtype) in DNSFacts.queryTypes.enumerated() {
                #expect(m.value("trafficmon_dns_queries_total", ["qtype": qtype])?.promExactUInt == history.reduce(0) { $0 + $1.protocols.dnsQueries[q] })
            }
            for (r, rcode) in DNSFacts.responseCodes.enumerated() {
                #expect(m.value("trafficmon_dns_responses_total", ["rcode": rcode])?.promExactUInt == history.reduce(0) { $0 + $1.protocols.dnsResponses[r] })
            }
            let malformed = history.reduce(0) { $0 + $1.protocols.dnsMalformed }
            #expect(malformed > 0, "the synthetic capture's zero-filled port-53 payloads are not DNS")
            #expect(m.value("trafficmon_dns_malformed_total")?.promExactUInt == malformed)
            #expect(m.value("trafficmon_dns_cut_total")?.promExactUInt == history.reduce(0) { $0 + $1.protocols.dnsCut })
        }
    }

    @Test func everyFamilyHasHelpAndTypeAndCountersEndInTotal() async throws {
        try await Self.withReplayedServer { client, _ in
            let response = try await ServerHarness.get(client, "/metrics")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
            let m = try PromExposition.parse(ServerHarness.text(response))
            #expect(m.samplesBeforeType.isEmpty, "samples before their TYPE: \(m.samplesBeforeType)")
            #expect(m.otherComments.isEmpty, "\(m.otherComments)")
            for name in Set(m.samples.map(\.name)) {
                let family = m.family(of: name) ?? name
                #expect(m.types[family] != nil, "\(name) has no # TYPE")
                #expect(!(m.help[family] ?? "").isEmpty, "\(name) has no # HELP")
            }
            for (name, type) in m.types {
                #expect(["counter", "gauge", "histogram"].contains(type), "\(name): \(type)")
                #expect((type == "counter") == name.hasSuffix("_total"), "\(name) is a \(type)")
                #expect(name.hasPrefix("trafficmon_") || name.hasPrefix("process_"), "\(name)")
            }
            for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                         "process_start_time_seconds", "process_max_fds", "process_virtual_memory_bytes"] {
                #expect(m.samples(name).count == 1, "\(name)")
            }
            #expect((m.value("process_resident_memory_bytes") ?? 0) > 1_000_000)
            #expect((m.value("process_open_fds") ?? 0) >= 3)
            let start = m.value("process_start_time_seconds") ?? 0
            #expect(abs(start - Date().timeIntervalSince1970) < 24 * 3600, "process start \(start)")
            // The families DESIGN.md promises.
            for name in ["trafficmon_packets_total", "trafficmon_bytes_total", "trafficmon_service_packets_total",
                         "trafficmon_service_bytes_total", "trafficmon_non_ip_packets_total", "trafficmon_malformed_packets_total",
                         "trafficmon_late_packets_total", "trafficmon_capture_received_packets_total",
                         "trafficmon_capture_dropped_packets_total", "trafficmon_windows_closed_total",
                         "trafficmon_window_packets", "trafficmon_window_bytes", "trafficmon_window_client_bytes",
                         "trafficmon_window_client_packets", "trafficmon_window_service_bytes", "trafficmon_window_service_packets",
                         "trafficmon_window_clients", "trafficmon_window_start_timestamp_seconds",
                         "trafficmon_window_duration_seconds", "trafficmon_build_info", "trafficmon_up"] {
                #expect(!m.samples(name).isEmpty, "\(name) missing")
            }
            // No duplicate series.
            let keys = m.samples.map { "\($0.name)\($0.labels.sorted { $0.key < $1.key })" }
            #expect(Set(keys).count == keys.count)
        }
    }

    /// The trafficmon_* samples of an exposition (process_* values move between scrapes).
    static func trafficSamples(_ m: PromExposition) -> [String: Double] {
        var out: [String: Double] = [:]
        for s in m.samples where s.name.hasPrefix("trafficmon_") {
            out["\(s.name)\(s.labels.sorted { $0.key < $1.key })"] = s.value
        }
        return out
    }

    @Test func openMetricsWhenAsked() async throws {
        try await Self.withReplayedServer { client, _ in
            let plain = try await ServerHarness.metrics(client)
            let response = try await ServerHarness.get(
                client, "/metrics", headers: [.accept: "application/openmetrics-text; version=1.0.0; charset=utf-8,text/plain;q=0.5"])
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("application/openmetrics-text") == true)
            let text = ServerHarness.text(response)
            #expect(text.hasSuffix("# EOF\n"))
            #expect(text.components(separatedBy: "# EOF").count == 2, "exactly one # EOF")
            let om = try PromExposition.parse(text)
            #expect(om.otherComments == ["# EOF"])
            // Counter families are named without _total in TYPE/HELP; samples keep it.
            #expect(om.types["trafficmon_packets"] == "counter")
            #expect(om.types["trafficmon_packets_total"] == nil)
            #expect(om.help["trafficmon_packets"] != nil)
            #expect(om.types["trafficmon_window_bytes"] == "gauge")
            #expect(om.samplesBeforeType.isEmpty, "\(om.samplesBeforeType)")
            for name in Set(om.samples.map(\.name)) {
                let family = om.family(of: name)
                #expect(family != nil && om.help[family!] != nil, "\(name)")
            }
            #expect(Self.trafficSamples(om) == Self.trafficSamples(plain))

            // Without the OpenMetrics type in Accept: the 0.0.4 text.
            let other = try await ServerHarness.get(client, "/metrics", headers: [.accept: "text/plain"])
            #expect(other.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(!ServerHarness.text(other).contains("# EOF"))
        }
    }

    @Test func gzipWhenAsked() async throws {
        try await Self.withReplayedServer { client, _ in
            let plain = try await ServerHarness.get(client, "/metrics")
            #expect(plain.headers[.contentEncoding] == nil)
            let response = try await ServerHarness.get(client, "/metrics", headers: [.acceptEncoding: "gzip, deflate"])
            #expect(response.status == .ok)
            #expect(response.headers[.contentEncoding] == "gzip")
            #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
            let body = ServerHarness.bytes(response)
            #expect(body.prefix(2) == [0x1F, 0x8B])
            #expect(body.count < plain.body.readableBytes)
            let gunzip = try #require(TestProcess.which("gunzip"))
            let result = try await TestProcess.run(program: gunzip, ["-c"], input: Data(body))
            #expect(result.status == 0, "\(result.stderr)")
            let unzipped = try PromExposition.parse(result.stdoutText)
            let original = try PromExposition.parse(ServerHarness.text(plain))
            #expect(Self.trafficSamples(unzipped) == Self.trafficSamples(original))
            #expect(unzipped.types == original.types)

            // gzip refused with q=0, or not offered: plain text.
            for header in ["gzip;q=0", "identity", "br"] {
                let r = try await ServerHarness.get(client, "/metrics", headers: [.acceptEncoding: header])
                #expect(r.headers[.contentEncoding] == nil, "Accept-Encoding: \(header)")
                #expect(ServerHarness.bytes(r).prefix(2) != [0x1F, 0x8B], "Accept-Encoding: \(header)")
            }
        }
    }

    static let promtool = TestProcess.which("promtool")

    /// Debian's prometheus package provides promtool (CI installs it; so does this machine).
    @Test(.enabled(if: promtool != nil, "promtool is not installed"))
    func promtoolCheckMetricsReportsNothing() async throws {
        let promtool = try #require(Self.promtool)
        try await Self.withReplayedServer(top: 5) { client, _ in
            let response = try await ServerHarness.get(client, "/metrics")
            let result = try await TestProcess.run(program: promtool, ["check", "metrics"], input: Data(ServerHarness.bytes(response)))
            let output = result.stdoutText + result.stderr
            #expect(result.status == 0, "promtool: \(output)")
            #expect(output.isEmpty, "promtool: \(output)")
        }
    }

    /// A promtool that works: it does complain about a counter without `_total`.
    @Test(.enabled(if: promtool != nil, "promtool is not installed"))
    func promtoolComplainsAboutABadExposition() async throws {
        let promtool = try #require(Self.promtool)
        let bad = "# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n"
        let result = try await TestProcess.run(program: promtool, ["check", "metrics"], input: Data(bad.utf8))
        #expect(!(result.stdoutText + result.stderr).isEmpty)
    }
}
