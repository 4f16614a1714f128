import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TrafficCore
@testable import TrafficServer
import TrafficTestSupport

/// The series count of `/metrics` stays bounded by `--top` whatever the traffic, and
/// per-client series go away when a client leaves the top.
@Suite struct CardinalityTests {
    /// The most series each sample name of `/metrics` may have with `--top T` and
    /// `--max-party-series P`, for a server reading one capture (no networks file, GeoIP
    /// databases, flow inputs or several interfaces): the listed parties and services plus
    /// `other` (T + 1) in two directions; the sticky party counters (P per side) in two
    /// directions; the protocol families by their fixed label sets; one series for the rest.
    /// A sample name missing here is a family the bound does not know.
    static func familyBounds(top: Int, maxPartySeries: Int) -> [String: Int] {
        let listed = 2 * (top + 1), sticky = 2 * maxPartySeries
        var bounds: [String: Int] = [
            "trafficmon_packets_total": 2, "trafficmon_bytes_total": 2,
            "trafficmon_window_packets": 2, "trafficmon_window_bytes": 2,
            "trafficmon_party_series": 2, "trafficmon_party_series_refused_total": 2,
            "trafficmon_capture_dropped_packets_total": 2,
            "trafficmon_packet_size_bytes_bucket": 2 * (ProtocolCounts.sizeBounds.count + 1),
            "trafficmon_packet_size_bytes_sum": 2, "trafficmon_packet_size_bytes_count": 2,
            "trafficmon_tcp_packets_total": 2 * TCPFlags.Kind.allCases.count,
            "trafficmon_dns_queries_total": DNSFacts.queryTypes.count,
            "trafficmon_dns_responses_total": DNSFacts.responseCodes.count,
            "trafficmon_window_client_syn_services": ProtocolCounts.synClientLimit,
            "trafficmon_malformed_packets_total": MalformedReason.allCases.count,
            "trafficmon_http_connections_closed_total": ConnectionTable.CloseReason.allCases.count,
        ]
        for name in [
            "service_packets_total", "service_bytes_total", "window_client_packets", "window_client_bytes",
            "window_server_packets", "window_server_bytes", "window_service_packets", "window_service_bytes",
        ] {
            bounds["trafficmon_\(name)"] = listed
        }
        for side in ["client", "server"] {
            bounds["trafficmon_\(side)_packets_total"] = sticky
            bounds["trafficmon_\(side)_bytes_total"] = sticky
        }
        for single in [
            "windows_closed_total", "window_start_timestamp_seconds", "window_duration_seconds", "window_clients",
            "window_servers", "window_sampled", "window_late_packets", "up", "build_info", "store_errors_total",
            "store_dropped_windows_total", "non_ip_packets_total", "non_ip_bytes_total", "malformed_bytes_total",
            "late_packets_total", "injected_packets_total", "http_connections", "dns_malformed_total", "dns_cut_total",
            "capture_received_packets_total", "capture_oversized_frames_total",
        ] {
            bounds["trafficmon_" + single] = 1
        }
        for process in ["cpu_seconds_total", "resident_memory_bytes", "virtual_memory_bytes", "start_time_seconds", "open_fds", "max_fds"] {
            bounds["process_" + process] = 1
        }
        return bounds
    }

    /// Each sample name within its bound, and every one of them known to the bound (so the
    /// whole exposition is within the bounds' sum).
    static func expectWithinFamilyBounds(_ m: PromExposition, top: Int, maxPartySeries: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        let bounds = familyBounds(top: top, maxPartySeries: maxPartySeries)
        var counts: [String: Int] = [:]
        for sample in m.samples { counts[sample.name, default: 0] += 1 }
        for (name, count) in counts.sorted(by: { $0.key < $1.key }) {
            guard let bound = bounds[name] else {
                Issue.record("\(name): \(count) series, and no bound for it", sourceLocation: sourceLocation)
                continue
            }
            #expect(count <= bound, "\(name): \(count) series, bound \(bound)", sourceLocation: sourceLocation)
        }
    }

    static let t0: Int64 = 1_700_000_000 * 1_000_000_000
    static let second = ServerHarness.second
    static let server = IPAddress("10.0.0.1")!

    /// Window-1 clients: 100.64.0.0/10 + i + 1.
    static func clientA(_ i: Int) -> IPAddress { IPAddress(ipv4: 0x6440_0000 + UInt32(i) + 1) }
    /// Window-2 clients: 198.18.0.(j+1).
    static func clientB(_ j: Int) -> IPAddress { IPAddress(ipv4: 0xC612_0000 + UInt32(j) + 1) }

    static func udpFrame(from client: IPAddress, payload: Int) -> [UInt8] {
        FrameBuilder.ethernet(ip: FrameBuilder.ipv4(
            src: client, dst: server, proto: 17, payload: FrameBuilder.ports(40_000, 53, payload: payload)))
    }

    /// Window 1 ([t0, t0+1s)): 100 000 distinct clients send one 60-byte datagram each, and
    /// clients 0..<50 send 1 000 more of 92 + 10k bytes (client k), so the top 20 are
    /// clients 30..<50, in that order of bytes. 150 000 frames.
    /// Window 2 ([t0+1s, t0+2s)): clients B0..<B30, client j sends j+1 frames of 242 bytes,
    /// so the top 20 are B10..<B30, disjoint from window 1's.
    static func writeCapture(to url: URL) throws -> (window1: Counts, window2: Counts) {
        var writer = PcapWriter()
        var window1 = Counts(), window2 = Counts()
        let total = 150_000
        let step = (9 * second / 10) / Int64(total)
        var n = 0
        var template = udpFrame(from: clientA(0), payload: 18)  // 14 + 20 + 8 + 18 = 60 bytes
        precondition(template.count == 60)
        for i in 0..<100_000 {
            let a = clientA(i).ipv4Value
            template[26] = UInt8(a >> 24); template[27] = UInt8((a >> 16) & 0xFF)
            template[28] = UInt8((a >> 8) & 0xFF); template[29] = UInt8(a & 0xFF)
            writer.append(template, timestamp: t0 + Int64(n) * step)
            window1.add(bytes: 60)
            n += 1
        }
        for k in 0..<50 {
            let frame = udpFrame(from: clientA(k), payload: 50 + 10 * k)
            for _ in 0..<1000 {
                writer.append(frame, timestamp: t0 + Int64(n) * step)
                window1.add(bytes: UInt64(frame.count))
                n += 1
            }
        }
        precondition(n == total)
        var m: Int64 = 0
        for j in 0..<30 {
            let frame = udpFrame(from: clientB(j), payload: 200)
            for _ in 0...j {
                writer.append(frame, timestamp: t0 + second + m * 1_000_000)
                window2.add(bytes: UInt64(frame.count))
                m += 1
            }
        }
        try writer.write(to: url)
        return (window1, window2)
    }

    @Test func hundredThousandClientsStayWithinTheBound() async throws {
        let top = 20
        let maxPartySeries = 25
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("many.pcap")
        let (window1, window2) = try Self.writeCapture(to: url)
        let server = try await ServerHarness.server(
            source: try .file(url), windowLength: Self.second, top: top, enableDebugInject: true, maxPartySeries: maxPartySeries)
        let topA = Set((30..<50).map { Self.clientA($0).description })
        let topB = Set((10..<30).map { Self.clientB($0).description })

        try await server.application.test(.router) { client in
            try await ServerHarness.waitForReplay(server, windows: 2)
            let history = try await ServerHarness.history(client)
            #expect(history.count == 2)
            let (w1, w2) = (history[0], history[1])
            #expect(w1.start == Self.t0 && w2.start == Self.t0 + Self.second)
            for w in history {
                #expect(w.clients.count <= top)
                #expect(w.isConserved, "window \(w.start) is not conserved")
            }
            #expect(w1.packets == window1.packets && w1.bytes == window1.bytes)
            #expect(w1.in == window1 && w1.out == .zero)
            #expect(w1.clients.count == top)
            #expect(w1.other.clients == 100_000 - UInt64(top))
            #expect(Set(w1.clients.map(\.ip.description)) == topA)
            #expect(w1.clients.first?.ip == Self.clientA(49))
            #expect(w2.packets == window2.packets && w2.bytes == window2.bytes)
            #expect(Set(w2.clients.map(\.ip.description)) == topB)
            #expect(w2.other.clients == 10)

            let current = try await ServerHarness.current(client)
            #expect(current.clients.count <= top)
            #expect(current.isConserved)

            // After the replay the gauges describe window 2: its top 20 and "other", none of window 1's clients.
            let text = ServerHarness.text(try await ServerHarness.get(client, "/metrics"))
            let m = try PromExposition.parse(text)
            Self.expectWithinFamilyBounds(m, top: top, maxPartySeries: maxPartySeries)
            #expect(m.seriesLines == server.state.metrics.seriesCount())
            let clientLabels = m.labelValues("trafficmon_window_client_bytes", "client")
            #expect(clientLabels == topB.union(["other"]))
            #expect(m.samples("trafficmon_window_client_bytes").count == 2 * (top + 1))
            #expect(m.value("trafficmon_window_clients") == 30)
            // Sticky counters: window 1's top 20, then 5 of window 2's before the cap of 25.
            #expect(m.value("trafficmon_party_series", ["side": "client"]) == 25)
            #expect(m.value("trafficmon_party_series_refused_total", ["side": "client"]) == 15)
            #expect(m.labelValues("trafficmon_client_bytes_total", "client").isSuperset(of: topA))
            #expect(m.sum("trafficmon_packets_total").promExactUInt == window1.packets + window2.packets)
            #expect(m.sum("trafficmon_bytes_total").promExactUInt == window1.bytes + window2.bytes)
            let otherIn = m.value("trafficmon_window_client_bytes", ["client": "other", "direction": "in"])?.promExactUInt
            // Clients B0..<B10 fold into "other": (1 + 2 + ... + 10) frames of 242 bytes.
            let foldedBytes: UInt64 = 55 * 242
            #expect(otherIn == foldedBytes)

            // A third window with other clients (injected on the wall clock, 1 s windows):
            // window 2's client series go away.
            let injected = [("192.0.2.10", 1000), ("192.0.2.11", 2000), ("192.0.2.12", 3000)]
            // Inject early in a second so that the three land in one window.
            try await ServerHarness.waitUntil("the start of a second", timeout: .seconds(15)) {
                let fraction = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 1)
                return fraction > 0.02 && fraction < 0.4
            }
            for (ip, size) in injected {
                let body = #"{"client_ip":"\#(ip)","direction":"in","proto":"UDP/53","size":\#(size)}"#
                let r = try await client.execute(uri: "/debug/inject", method: .post, headers: [:], body: ByteBuffer(string: body))
                #expect(r.status == .accepted)
            }
            try await ServerHarness.waitUntil("the injected window to close", timeout: .seconds(10)) {
                server.state.history(limit: 10_000).dropFirst(2).reduce(0) { $0 + $1.in.bytes } == 6000
            }
            let after = try await ServerHarness.history(client)
            let newest = try #require(after.last)
            let m2 = try await ServerHarness.metrics(client)
            Self.expectWithinFamilyBounds(m2, top: top, maxPartySeries: maxPartySeries)
            let labels2 = m2.labelValues("trafficmon_window_client_bytes", "client")
            #expect(labels2 == Set(newest.clients.map(\.ip.description)).union(["other"]))
            #expect(labels2.isSubset(of: Set(injected.map(\.0)).union(["other"])))
            #expect(labels2.isDisjoint(with: topB), "series of clients that left the top are still there")
            #expect(!m2.samples.contains { s in topB.contains(s.labels["client"] ?? "") })
            #expect(m2.samples("trafficmon_window_client_packets").count == 2 * labels2.count)
        }
    }

    // MARK: TrafficMetrics.record directly

    static func record(start: Int64, clients: [(String, UInt64)], other: UInt64 = 0, services: [(String, UInt64)]) -> WindowRecord {
        var r = WindowRecord(start: start, end: start + 5 * second)
        for (ip, bytes) in clients {
            r.clients.append(ClientRecord(
                ip: IPAddress(ip)!, in: Counts(packets: 1, bytes: bytes), out: .zero,
                services: [ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: 1, bytes: bytes)]))
        }
        r.other = OtherCounts(in: Counts(packets: other == 0 ? 0 : 1, bytes: other), clients: other == 0 ? 0 : 1)
        r.in = r.clients.reduce(r.other.in) { $0 + $1.in }
        // Services: as given (they add up to the window's bytes in the tests below).
        r.services = services.map { ServiceCounts(service: Service(label: $0.0)!, direction: .inbound, packets: 1, bytes: $0.1) }
        return r
    }

    @Test func clientSeriesDisappearWhenTheyLeaveTheTop() throws {
        let metrics = TrafficMetrics(top: 3, version: "t")
        // Four listed clients with --top 3 in the metrics: the fourth folds into "other".
        let first = Self.record(
            start: Self.t0, clients: [("198.51.100.1", 400), ("198.51.100.2", 300), ("198.51.100.3", 200), ("198.51.100.4", 100)],
            other: 50, services: [("TCP/443", 1050)])
        metrics.record(first)
        var m = try PromExposition.parse(String(decoding: metrics.exposition(format: .prometheus), as: UTF8.self))
        #expect(m.labelValues("trafficmon_window_client_bytes", "client") == ["198.51.100.1", "198.51.100.2", "198.51.100.3", "other"])
        #expect(m.value("trafficmon_window_client_bytes", ["client": "other", "direction": "in"]) == 150)
        #expect(m.value("trafficmon_window_client_bytes", ["client": "198.51.100.1", "direction": "in"]) == 400)
        #expect(m.value("trafficmon_window_client_bytes", ["client": "198.51.100.1", "direction": "out"]) == 0)
        #expect(m.sum("trafficmon_window_client_bytes") == 1050)
        let firstCount = m.seriesLines
        #expect(firstCount == metrics.seriesCount())

        let second = Self.record(
            start: Self.t0 + 5 * Self.second, clients: [("203.0.113.9", 70), ("2001:db8:1::9", 30)],
            services: [("UDP/53", 100)])
        metrics.record(second)
        m = try PromExposition.parse(String(decoding: metrics.exposition(format: .prometheus), as: UTF8.self))
        #expect(m.labelValues("trafficmon_window_client_bytes", "client") == ["203.0.113.9", "2001:db8:1::9", "other"])
        #expect(m.labelValues("trafficmon_window_client_packets", "client") == ["203.0.113.9", "2001:db8:1::9", "other"])
        #expect(!m.samples.contains { $0.name.hasPrefix("trafficmon_window_") && ($0.labels["client"] ?? "").hasPrefix("198.51.100.") })
        #expect(m.value("trafficmon_window_client_bytes", ["client": "other", "direction": "in"]) == 0)
        #expect(m.sum("trafficmon_window_client_bytes", ["direction": "in"]) == 100)
        // The window's services changed too: TCP/443's gauge went away, its counter stays.
        #expect(m.labelValues("trafficmon_window_service_bytes", "service") == ["UDP/53"])
        #expect(m.value("trafficmon_service_bytes_total", ["service": "TCP/443", "direction": "in"]) == 1050)
        #expect(m.value("trafficmon_service_bytes_total", ["service": "UDP/53", "direction": "in"]) == 100)
        // Client gauges: (2 clients + other) x 2 directions x 2 units = 12 instead of 16; the service
        // gauge pair is replaced (same count); one more service counter pair (+2); the two new
        // clients get sticky counters (2 x 2 directions x 2 units = +8) while the first window's
        // three keep theirs (their TTL has not run out).
        #expect(m.seriesLines == firstCount - 4 + 2 + 8)
        #expect(m.labelValues("trafficmon_client_bytes_total", "client")
            == ["198.51.100.1", "198.51.100.2", "198.51.100.3", "203.0.113.9", "2001:db8:1::9"])
        #expect(m.value("trafficmon_windows_closed_total") == 2)
        #expect(m.sum("trafficmon_bytes_total") == 1150)
        #expect(m.value("trafficmon_window_start_timestamp_seconds") == Double(Self.t0 + 5 * Self.second) / 1e9)
    }

    /// `--top 3`, six windows of one service each, each busier than the last: the first three
    /// take the free labels; each later one carries more than twice the lowest score and takes
    /// that label (its series goes: a counter reset). A quiet service later does not.
    @Test func serviceCounterLabelsGoToTheBusiestServices() throws {
        let metrics = TrafficMetrics(top: 3, version: "t")
        let labels = ["TCP/443", "TCP/80", "UDP/53", "ICMP", "GRE", "IP/89"]
        for (i, label) in labels.enumerated() {
            metrics.record(Self.record(
                start: Self.t0 + Int64(i) * 5 * Self.second, clients: [("198.51.100.1", UInt64(100 * (i + 1)))],
                services: [(label, UInt64(100 * (i + 1)))]))
        }
        metrics.record(Self.record(
            start: Self.t0 + 30 * Self.second, clients: [("198.51.100.1", 50)], services: [("TCP/22", 50)]))
        let m = try PromExposition.parse(String(decoding: metrics.exposition(format: .prometheus), as: UTF8.self))
        let counterLabels = m.labelValues("trafficmon_service_bytes_total", "service")
        #expect(counterLabels == ["ICMP", "GRE", "IP/89", "other"])
        #expect(m.value("trafficmon_service_bytes_total", ["service": "other", "direction": "in"]) == 50)
        for (label, bytes) in [("ICMP", 400.0), ("GRE", 500), ("IP/89", 600)] {
            #expect(m.value("trafficmon_service_bytes_total", ["service": label, "direction": "in"]) == bytes)
        }
        // The series left add up to the byte counter less the evicted services' bytes.
        #expect(m.sum("trafficmon_service_bytes_total") == m.sum("trafficmon_bytes_total") - (100 + 200 + 300))
        Self.expectWithinFamilyBounds(m, top: 3, maxPartySeries: 1000)
    }
}
