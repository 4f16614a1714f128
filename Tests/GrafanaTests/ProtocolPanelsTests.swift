import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The dashboard's Protocols row and the protocol alerts against a real Prometheus that
/// scrapes a real `trafficmon serve`, fed live: a FIFO carries a capture whose rounds of
/// `ProtocolTraffic` (a port scan, a SYN flood, handshakes, DNS answered with SERVFAIL and
/// REFUSED, packets of every size) are written every 100 ms, stamped with the wall clock.
@Suite("Protocols row and alerts against a live Prometheus")
struct ProtocolPanelsTests {
    /// What Grafana would put in for `$__rate_interval` at a 1 s scrape interval.
    static let rateInterval = "4s"

    @Test("every Protocols panel query returns the figures of the traffic; SynFlood, PortScanSuspected, DnsServfailHigh and DnsErrorsHigh hold", .timeLimit(.minutes(TestTimeLimit.minutes)))
    func protocolPanelsAndAlerts() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-protocol-panels")
        defer { try? FileManager.default.removeItem(at: dir) }
        let feeder = try LiveRounds(at: dir.appendingPathComponent("live.pcap"), every: .milliseconds(100))
        defer { feeder.stop() }
        let port = try TestProcess.freePort()
        let sensor = try ServerProcess(
            name: "trafficmon", executable: TestProcess.trafficmon,
            arguments: ["serve", "--read", feeder.url.path, "--window", "1s", "--listen", "127.0.0.1:\(port)", "--no-db",
                        "--local-net", ProtocolTraffic.localNetwork],
            port: port, in: dir)
        defer { sensor.stop() }
        _ = try await sensor.waitUntilServing("/healthz", timeout: 60)
        let address = "127.0.0.1:\(port)"

        let (prometheus, api) = try startPrometheus(targets: [address], scrapeInterval: "1s", in: dir)
        defer { prometheus.stop() }
        _ = try await prometheus.waitUntilServing("/-/ready", timeout: 60)
        // Scrapes enough for any $__rate_interval, windows closing, and a SYN client seen.
        try await prometheus.waitUntil("six scrapes, closing windows and a SYN client") {
            let scrapes = (try? await api.valuesByInstance(#"count_over_time(up{job="trafficmon"}[1m])"#)) ?? [:]
            let closed = (try? await api.valuesByInstance(#"increase(trafficmon_windows_closed_total[4s])"#)) ?? [:]
            let scanners = (try? await api.query("trafficmon_window_client_syn_services").result.count) ?? 0
            return (scrapes[address] ?? 0) >= 6 && (closed[address] ?? 0) >= 1 && scanners > 0
        }

        // Every query of the row, as Grafana sends it: data, finite values, and for the
        // time series a range too.
        let dashboard = try Dashboard()
        let panels = dashboard.dataPanels(inRow: "Protocols")
        #expect(panels.count >= 8)
        let instanceRegex = address.replacingOccurrences(of: ".", with: #"\\."#)
        func expand(_ template: String) -> String {
            template.replacingOccurrences(of: "$__rate_interval", with: Self.rateInterval)
                .replacingOccurrences(of: "$__range", with: "30s")
                .replacingOccurrences(of: "$instance", with: instanceRegex)
        }
        var answers: [String: PrometheusAPI.Response] = [:]
        for panel in panels {
            for target in panel.targets {
                guard let template = target["expr"] as? String else { continue }
                let expr = expand(template)
                let instant = try await api.query(expr)
                #expect(instant.status == "success" && !instant.result.isEmpty, "'\(panel.title)': \(expr) -> \(instant.raw.prefix(300))")
                for sample in instant.result {
                    let value = (sample["value"] as? [Any])?.last as? String
                    #expect(value.flatMap(Double.init).map(\.isFinite) == true, "'\(panel.title)': \(value ?? "no value") in \(expr)")
                }
                if (target["range"] as? Bool) ?? !((target["instant"] as? Bool) ?? false) {
                    let range = try await api.queryRange(expr, seconds: 5)
                    #expect(range.status == "success" && !range.result.isEmpty, "'\(panel.title)' (range): \(expr) -> \(range.raw.prefix(300))")
                }
                answers[template] = instant
            }
        }
        /// The answer to the panel's query that contains `needle`, by `label`.
        func values(_ needle: String, by label: String) throws -> [String: Double] {
            let template = try #require(answers.keys.first { $0.contains(needle) }, "no Protocols query with \(needle)")
            return PrometheusAPI.values(try #require(answers[template]), by: label)
        }
        func close(_ a: Double?, _ b: Double) -> Bool { a.map { abs($0 - b) <= 1e-9 * max(1, abs(b)) } ?? false }

        // Each window holds whole rounds, so every ratio is the round's, exactly.
        let round = ProtocolTraffic.perRound
        let segments = try #require(answers.first { $0.key.contains("sum by (flags, direction)") }?.value).result.compactMap { sample -> String? in
            let labels = sample["metric"] as? [String: Any]
            let value = ((sample["value"] as? [Any])?.last as? String).flatMap(Double.init) ?? 0
            return value > 0 ? "\(labels?["flags"] as? String ?? "?") \(labels?["direction"] as? String ?? "?")" : nil
        }
        #expect(Set(segments) == ["syn in", "synack out", "rst out", "fin in", "fin out", "unknown in"], "\(segments)")
        let ratio = try values(#"flags="synack""#, by: "instance")
        #expect(close(ratio[address], Double(round.synackOut) / Double(round.synIn)), "SYN-ACK/SYN \(ratio)")
        let servfail = try values(#"rcode="SERVFAIL"}"#, by: "instance")
        #expect(close(servfail[address], 1.0 / 5), "SERVFAIL share \(servfail)")
        let errors = try values(#"rcode=~"FORMERR|SERVFAIL"#, by: "instance")
        #expect(close(errors[address], 2.0 / 5), "error share \(errors)")
        let responses = try values("sum by (rcode)", by: "rcode")
        #expect(Set(responses.filter { $0.value > 0 }.keys) == Set(round.responses.keys), "\(responses)")
        #expect(close(responses["SERVFAIL"].map { $0 / (responses["NOERROR"] ?? 0) }, 0.5), "\(responses)")
        let queries = try values("sum by (qtype)", by: "qtype")
        #expect(Set(queries.filter { $0.value > 0 }.keys) == Set(round.queries.keys), "\(queries)")
        // The size buckets, cumulative as Prometheus holds them, against the round's.
        let buckets = try values("sum by (le)", by: "le")
        let perBucket = zip(round.sizesIn, round.sizesOut).map { $0 + $1 }
        let total = Double(perBucket.reduce(0, +))
        for (i, bound) in (ProtocolCounts.sizeBounds.map(String.init) + ["+Inf"]).enumerated() {
            let share = Double(perBucket[...i].reduce(0, +)) / total
            #expect(close(buckets[bound].map { $0 / (buckets["+Inf"] ?? 0) }, share), "le=\(bound): \(buckets)")
        }
        // The mean wire length per direction, from the round's frames.
        let average = try #require(answers.first { $0.key.contains("trafficmon_packet_size_bytes_sum") }?.value)
        let frames = ProtocolTraffic.round(at: 0)
        for direction in ["in", "out"] {
            // Inbound: to the local network, 10.0.0.0/24 (the IPv4 destination's first three bytes).
            let mine = frames.filter { (Array($0.frame[30...32]) == [10, 0, 0]) == (direction == "in") }
            let expected = Double(mine.reduce(0) { $0 + ($1.wireLength ?? $1.frame.count) }) / Double(mine.count)
            let shown = average.result.first { ($0["metric"] as? [String: Any])?["direction"] as? String == direction }
            let value = ((shown?["value"] as? [Any])?.last as? String).flatMap(Double.init)
            #expect(close(value, expected), "mean \(direction) packet: \(value ?? .nan), expected \(expected)")
        }
        // The SYN clients: the scanner, with every port it reached, on top of both panels.
        let overRange = try values("max_over_time(trafficmon_window_client_syn_services", by: "client")
        #expect(overRange[ProtocolTraffic.scanner] == Double(ProtocolTraffic.scannedPorts) && overRange.values.max() == overRange[ProtocolTraffic.scanner], "\(overRange)")
        let lastWindow = try values("topk(10, max by (client) (trafficmon_window_client_syn_services", by: "client")
        #expect(lastWindow[ProtocolTraffic.scanner] == Double(ProtocolTraffic.scannedPorts), "\(lastWindow)")
        #expect(lastWindow["198.51.100.7"] == 1, "\(lastWindow)")

        // The alerts' expressions hold on this sensor's real series: each protocol alert is
        // pending (or, on a slow run, already firing), the scan on the scanner alone.
        var alerts: [[String: Any]] = []
        try await prometheus.waitUntil("the protocol alerts to be pending", timeout: 30) {
            let reply = try await api.call("api/v1/alerts", [], method: "GET")
            let object = try JSONSerialization.jsonObject(with: Data(reply.raw.utf8)) as? [String: Any]
            alerts = ((object?["data"] as? [String: Any])?["alerts"] as? [[String: Any]]) ?? []
            let names = Set(alerts.compactMap { ($0["labels"] as? [String: Any])?["alertname"] as? String })
            return names.isSuperset(of: ["SynFlood", "PortScanSuspected", "DnsServfailHigh", "DnsErrorsHigh"])
        }
        let labels = alerts.compactMap { $0["labels"] as? [String: String] }
        for name in ["SynFlood", "DnsServfailHigh", "DnsErrorsHigh"] {
            #expect(labels.contains { $0["alertname"] == name && $0["instance"] == address }, "\(name): \(labels)")
        }
        #expect(labels.filter { $0["alertname"] == "PortScanSuspected" }.map { $0["client"] } == [ProtocolTraffic.scanner], "\(labels)")
        #expect(alerts.allSatisfy { ["pending", "firing"].contains($0["state"] as? String ?? "") }, "\(alerts)")
        #expect(sensor.isRunning, "trafficmon exited:\n\(sensor.stderrTail)")
    }
}

/// Writes a pcap stream into a FIFO: the file header once the reader opens it, then a round
/// of `ProtocolTraffic` every `interval`, stamped with the wall clock, until `stop()` or the
/// reader goes away.
final class LiveRounds: @unchecked Sendable {
    let url: URL
    private let lock = NSLock()
    private var stopped = false

    init(at url: URL, every interval: Duration) throws {
        self.url = url
        guard mkfifo(url.path, 0o600) == 0 else { throw TestProcess.Failure("mkfifo \(url.path): \(String(cString: strerror(errno)))") }
        let nanoseconds = interval.components.seconds * 1_000_000_000 + interval.components.attoseconds / 1_000_000_000
        Thread.detachNewThread { [self] in
            // A reader that goes away makes the next write fail with EPIPE rather than raise
            // SIGPIPE, which would end the test process.
            var pipeSignal = sigset_t()
            sigemptyset(&pipeSignal)
            sigaddset(&pipeSignal, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
            let fd = open(url.path, O_WRONLY)
            guard fd >= 0 else { return }
            defer { close(fd) }
            let header = PcapWriter(linkType: 1).data
            guard Self.put(header, to: fd) else { return }
            while !lock.withLock({ stopped }) {
                var now = timespec()
                clock_gettime(CLOCK_REALTIME, &now)
                var writer = PcapWriter(linkType: 1)
                for f in ProtocolTraffic.round(at: Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)) {
                    writer.append(f.frame, timestamp: f.timestamp, wireLength: f.wireLength)
                }
                guard Self.put(writer.data[header.count...], to: fd) else { return }
                usleep(useconds_t(nanoseconds / 1_000))
            }
        }
    }

    /// Ends the stream after the round being written (the reader sees the file's end).
    func stop() {
        lock.withLock { stopped = true }
    }

    private static func put(_ bytes: some Collection<UInt8>, to fd: Int32) -> Bool {
        let buffer = Array(bytes)
        var offset = 0
        while offset < buffer.count {
            let n = buffer[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}
