import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

/// A real Prometheus scraping two real `trafficmon serve --read` processes (fed live
/// through POST /debug/inject) and a third collecting NetFlow, and every dashboard query
/// run against it.
@Suite("Live Prometheus scraping two trafficmon sensors")
struct LivePrometheusTests {
    /// What Grafana would put in for `$__rate_interval` at a 1 s scrape interval.
    static let rateInterval = "4s"

    @Test("every panel query outside the Protocols row returns data; the instance variable lists both sensors; per-instance figures are each sensor's own")
    func everyPanelQueryReturnsData() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-grafana")
        defer { try? FileManager.default.removeItem(at: dir) }

        // Two sensors, two different captures (different sizes and clients).
        let captures = [
            SyntheticTraffic(packets: 12_000, clients: 300, seconds: 20, seed: 11),
            SyntheticTraffic(packets: 3_000, clients: 80, seconds: 20, seed: 23),
        ]
        // Named networks, ASes and countries over the captures' and the injects' addresses.
        let networksFile = dir.appendingPathComponent("networks.yaml")
        try WhoFixtures.networksYAML(WhoFixtures.networkBlocks(.servers)).write(to: networksFile, atomically: true, encoding: .utf8)
        let asnFile = dir.appendingPathComponent("asn.mmdb"), countryFile = dir.appendingPathComponent("country.mmdb")
        try WhoFixtures.asnDatabase().write(to: asnFile)
        try WhoFixtures.countryDatabase().write(to: countryFile)
        var sensors: [(name: String, address: String, process: ServerProcess)] = []
        defer { for sensor in sensors { sensor.process.stop() } }
        for (index, traffic) in captures.enumerated() {
            let name = index == 0 ? "sensor-a" : "sensor-b"
            let file = dir.appendingPathComponent("\(name).pcap")
            try traffic.pcap().write(to: file)
            let port = try TestProcess.freePort()
            var arguments = ["serve", "--read", file.path, "--enable-debug-inject", "--window", "1s", "--listen", "127.0.0.1:\(port)", "--no-db"]
            for net in SyntheticTraffic.localNetworks { arguments += ["--local-net", net] }
            arguments += ["--networks", networksFile.path, "--asn-db", asnFile.path, "--country-db", countryFile.path]
            let process = try ServerProcess(name: name, executable: TestProcess.trafficmon, arguments: arguments, port: port, in: dir)
            sensors.append((name, "127.0.0.1:\(port)", process))
        }
        // A third sensor collects NetFlow only (live: flows do not go with --read), for the
        // flow-input panels; the injector below sends it v5 datagrams.
        let flowPort = try TestProcess.freePort()
        let collector = try ServerProcess(
            name: "collector", executable: TestProcess.trafficmon,
            arguments: ["serve", "--netflow", "127.0.0.1:0", "--enable-debug-inject", "--window", "1s", "--listen", "127.0.0.1:\(flowPort)", "--no-db"]
                + SyntheticTraffic.localNetworks.flatMap { ["--local-net", $0] },
            port: flowPort, in: dir)
        sensors.append(("collector", "127.0.0.1:\(flowPort)", collector))
        for sensor in sensors {
            _ = try await sensor.process.waitUntilServing("/healthz", timeout: 60)
        }
        var netflowPort: UInt16?
        try await collector.waitUntil("the collector's NetFlow port in its log") {
            netflowPort = collector.stderr.firstMatch(of: /\(port (\d+)\)/).flatMap { UInt16($0.1) }
            return netflowPort != nil
        }
        let flowTarget = try #require(netflowPort)
        let exporter = try UDPSender(from: "127.0.0.1")
        // One undecodable datagram, so the decode-error query has a series.
        _ = exporter.send([0, 5, 0], to: "127.0.0.1", port: flowTarget)

        // Prometheus with the shipped prometheus.yml, sped up (1 s scrapes and rule
        // evaluations), scraping both sensors and loading the shipped rule files.
        let (prometheus, api) = try startPrometheus(targets: sensors.map(\.address), scrapeInterval: "1s", in: dir)
        defer { prometheus.stop() }
        let started = Date()
        _ = try await prometheus.waitUntilServing("/-/ready", timeout: 60)

        // Live traffic for both sensors while Prometheus scrapes: every 200 ms, varied
        // clients, servers, services, directions and sizes.
        let addresses = sensors.map(\.address)
        var injector: Task<Int, Never>?
        defer { injector?.cancel() }
        injector = Task {
            let clients = ["198.51.100.7", "198.51.100.23", "203.0.113.9", "192.0.2.44", "2001:db8:1000::5", "100.64.3.2"]
            let services = ["TCP/443", "UDP/53", "TCP/8000", "SCTP/2905", "ICMP", "TCP/22"]
            let servers = ["10.0.0.1", "10.0.0.2", "2001:db8::1", "192.0.2.80"]
            var tick = 0, accepted = 0
            while !Task.isCancelled {
                for (n, address) in addresses.enumerated() {
                    for k in 0..<3 {
                        let i = tick * 3 + k + n
                        let body = #"{"client_ip":"\#(clients[i % clients.count])","server_ip":"\#(servers[(i / 3) % servers.count])","direction":"\#(i % 2 == 0 ? "in" : "out")","proto":"\#(services[(i / 2) % services.count])","size":\#(100 + (i * 379) % 1400 + n * 50)}"#
                        if let reply = try? await TestHTTP.request(
                            "POST", "http://\(address)/debug/inject", headers: ["Content-Type": "application/json"], body: Data(body.utf8)),
                           reply.status == 202 {
                            accepted += 1
                        }
                    }
                }
                let seconds = UInt32(Date().timeIntervalSince1970)
                let flow = FlowDatagrams.V5Record(
                    source: ["198.51.100.7", "203.0.113.9"][tick % 2], destination: "10.0.0.1", sourcePort: 40000, destinationPort: 443,
                    packets: 3, bytes: UInt32(600 + tick % 7 * 100))
                _ = exporter.send(FlowDatagrams.netflowV5([flow], sequence: UInt32(tick), unixSeconds: seconds), to: "127.0.0.1", port: flowTarget)
                tick += 1
                try? await Task.sleep(for: .milliseconds(200))
            }
            return accepted
        }

        // Enough scrapes of both sensors (several within any $__rate_interval), and
        // windows closed from the injected traffic.
        let instanceRegex = "(" + addresses.map { $0.replacingOccurrences(of: ".", with: #"\\."#) }.joined(separator: "|") + ")"
        try await prometheus.waitUntil("six scrapes of both sensors") {
            let counts = (try? await api.valuesByInstance(#"count_over_time(up{job="trafficmon"}[1m])"#)) ?? [:]
            let ups = (try? await api.valuesByInstance(#"up{job="trafficmon"}"#)) ?? [:]
            return addresses.allSatisfy { (counts[$0] ?? 0) >= 6 && ups[$0] == 1 }
        }
        try await prometheus.waitUntil("fresh windows from injected traffic") {
            let closed = (try? await api.valuesByInstance(#"increase(trafficmon_windows_closed_total{job="trafficmon"}[4s])"#)) ?? [:]
            return addresses.allSatisfy { (closed[$0] ?? 0) >= 1 }
        }

        // The instance variable: label_values(trafficmon_build_info, instance).
        let dashboard = try Dashboard()
        let variableQuery = try #require(dashboard.variable("instance"))
        let definition = (variableQuery["query"] as? [String: Any])?["query"] as? String ?? variableQuery["query"] as? String ?? ""
        let metric = try #require(matches(of: #"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,"#, in: definition).first)
        let labelValues = try await api.call("api/v1/label/instance/values", [("match[]", metric)], method: "GET")
        #expect(labelValues.status == "success")
        let instances = Set(labelValues.result.compactMap { $0["value"] as? String })
        #expect(instances == Set(addresses), "label_values(\(metric), instance) = \(instances), want \(addresses)")

        // Every panel query, as Grafana would send it. The Protocols row needs TCP handshakes
        // and DNS in fresh windows, which injects do not carry: ProtocolPanelsTests runs it.
        let rangeSeconds = max(10, Int(Date().timeIntervalSince(started).rounded(.up)))
        let protocolPanels = Set(dashboard.dataPanels(inRow: "Protocols").map(\.id))
        #expect(!protocolPanels.isEmpty)
        var checked = 0
        for panel in dashboard.dataPanels where !protocolPanels.contains(panel.id) {
            for target in panel.targets {
                guard let template = target["expr"] as? String else { continue }
                let expr = template
                    .replacingOccurrences(of: "$__rate_interval", with: Self.rateInterval)
                    .replacingOccurrences(of: "$__range", with: "\(rangeSeconds)s")
                    .replacingOccurrences(of: "$instance", with: instanceRegex)
                #expect(!expr.contains("$"), "'\(panel.title)': a variable left in \(expr)")
                let instant = try await api.query(expr)
                #expect(instant.status == "success", "'\(panel.title)': \(expr) -> \(instant.raw.prefix(400))")
                #expect(!instant.result.isEmpty, "'\(panel.title)': no data for \(expr)")
                for sample in instant.result {
                    let value = (sample["value"] as? [Any])?.last as? String
                    #expect(value.flatMap(Double.init).map(\.isFinite) == true,
                            "'\(panel.title)': \(value ?? "no value") in \(expr)")
                }
                if (target["range"] as? Bool) ?? !((target["instant"] as? Bool) ?? false) {
                    // Time series panels ask for a range.
                    let range = try await api.queryRange(expr, seconds: 5)
                    #expect(range.status == "success" && !range.result.isEmpty, "'\(panel.title)' (range): \(expr) -> \(range.raw.prefix(300))")
                }
                checked += 1
            }
        }
        #expect(checked >= 20)

        // The Networks row's counters carry the injected traffic, not only the series every
        // network of the file has from the start.
        let docs = try await api.query(#"sum(increase(trafficmon_network_bytes_total{network="docs", side="client", instance=~"\#(instanceRegex)"}[\#(rangeSeconds)s]))"#)
        #expect(docs.result.compactMap { ($0["value"] as? [Any])?.last as? String }.compactMap(Double.init).first ?? 0 > 0, "\(docs.raw.prefix(300))")

        // Top clients of the last window come from the injected clients, per sensor.
        let topClients = try await api.query(#"topk(3, sum by (client) (trafficmon_window_client_bytes{client!="other", instance=~"\#(instanceRegex)"}))"#)
        #expect(!topClients.result.isEmpty)

        // The rules of grafana/prometheus/ are loaded and evaluate without error.
        let rules = try await api.call("api/v1/rules", [], method: "GET")
        #expect(rules.status == "success")
        let ruleList = try rulesOf(rules.raw)
        #expect(ruleList.count >= 22, "only \(ruleList.count) rules loaded")
        for rule in ruleList {
            #expect(rule.health != "err", "rule \(rule.name): \(rule.lastError)")
        }
        let fleet = try await api.query("trafficmon:bytes:rate5m")
        #expect(fleet.status == "success" && !fleet.result.isEmpty, "the fleet recording rule has no data yet: \(fleet.raw.prefix(300))")

        // Per instance: stop the traffic, let the last window close and be scraped, then
        // each sensor's figure in Prometheus is exactly what its own /metrics says.
        injector?.cancel()
        let accepted = await injector?.value ?? 0
        injector = nil
        #expect(accepted > 0, "no inject was accepted")
        let perSensorPanel = try #require(
            dashboard.dataPanels.first { $0.expressions.contains { $0.contains("sum by (instance) (trafficmon_bytes_total{") } },
            "no per-instance bytes panel")
        let perSensorExpr = perSensorPanel.expressions[0].replacingOccurrences(of: "$instance", with: instanceRegex)
        var own: [String: Double] = [:], scraped: [String: Double] = [:]
        try await prometheus.waitUntil("Prometheus to hold each sensor's final byte count", timeout: 15) {
            own = [:]
            for address in addresses {
                guard let reply = try? await TestHTTP.get("http://\(address)/metrics"), reply.status == 200 else { return false }
                own[address] = try PromExposition.parse(reply.text).sum("trafficmon_bytes_total")
            }
            scraped = (try? await api.valuesByInstance(perSensorExpr)) ?? [:]
            return addresses.allSatisfy { scraped[$0] == own[$0] }
        }
        let a = addresses[0], b = addresses[1]
        #expect(scraped[a] == own[a])
        #expect(scraped[b] == own[b])
        #expect((own[a] ?? 0) > 0 && (own[b] ?? 0) > 0)
        #expect(own[a] != own[b], "the two sensors report the same byte count \(own[a] ?? 0)")
        // Each replay's IP bytes are in its own sensor's count (injects add to them).
        let replayBytes = captures.map { $0.truth.flows.values.reduce(UInt64(0)) { $0 + $1.bytes } }
        #expect((own[a] ?? 0) >= Double(replayBytes[0]))
        #expect((own[b] ?? 0) >= Double(replayBytes[1]))
        #expect((own[b] ?? 0) < Double(replayBytes[0]), "sensor B's count looks like sensor A's capture")

        for sensor in sensors {
            #expect(sensor.process.isRunning, "\(sensor.name) exited:\n\(sensor.process.stderrTail)")
        }
    }

    struct Rule { var name: String; var health: String; var lastError: String }

    func rulesOf(_ raw: String) throws -> [Rule] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any])
        let groups = ((object["data"] as? [String: Any])?["groups"] as? [[String: Any]]) ?? []
        return groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }.map {
            Rule(name: $0["name"] as? String ?? "?", health: $0["health"] as? String ?? "?", lastError: $0["lastError"] as? String ?? "")
        }
    }
}
