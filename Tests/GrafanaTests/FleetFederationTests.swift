import Foundation
import Testing
import TrafficTestSupport

/// README's "Scaling out" set-up, end to end: two sites, each a `trafficmon serve` scraped
/// by a Prometheus of its own with the shipped recording rules and a `site` external
/// label, and one global Prometheus federating both sites' `/federate` with the README's
/// `match[]` selectors.
@Suite("Federation: two sites, one global Prometheus")
struct FleetFederationTests {
    @Test("every fleet-wide recording rule answers at the global Prometheus for both sites, with traffic")
    func fleetSeriesReachTheGlobalPrometheus() async throws {
        let prometheusBinary = URL(fileURLWithPath: try #require(
            TestProcess.which("prometheus"), "prometheus not found: install Debian's prometheus package (scripts/install-deps --test)"))
        let dir = try TestProcess.temporaryDirectory("trafficmon-fleet")
        var processes: [ServerProcess] = []
        var injector: Task<Void, Never>?
        defer {
            injector?.cancel()
            for process in processes.reversed() { process.stop() }
            try? FileManager.default.removeItem(at: dir)
        }
        let rules = Self.repository.appendingPathComponent("grafana/prometheus/recording_rules.yml")
        let federation = try Self.readmeFederationMatchers()
        #expect(federation.contains { $0.contains("trafficmon:") }, "README's match[] no longer selects the trafficmon: rules: \(federation)")

        // Two sites, each: one trafficmon replaying its own capture (and taking injected
        // traffic), and a Prometheus with the recording rules and its site label.
        let sites = ["site-a", "site-b"]
        var sensorProcesses: [ServerProcess] = []
        var sitePrometheus: [String] = []
        for (index, site) in sites.enumerated() {
            let capture = dir.appendingPathComponent("\(site).pcap")
            try SyntheticTraffic(packets: 2_000 + index * 1_000, clients: 40, seconds: 10, seed: UInt64(31 + index))
                .pcap().write(to: capture)
            let port = try TestProcess.freePort()
            var arguments = ["serve", "--read", capture.path, "--listen", "127.0.0.1:\(port)", "--window", "1s", "--no-db", "--enable-debug-inject"]
            for net in SyntheticTraffic.localNetworks { arguments += ["--local-net", net] }
            let sensor = try ServerProcess(name: "trafficmon-\(site)", executable: TestProcess.trafficmon, arguments: arguments, port: port, in: dir)
            processes.append(sensor)
            sensorProcesses.append(sensor)

            let prometheus = try Self.prometheus("prometheus-\(site)", prometheusBinary, in: dir, config: """
                  external_labels:
                    site: \(site)
                rule_files:
                  - \(rules.path)
                scrape_configs:
                  - job_name: trafficmon
                    static_configs:
                      - targets: ['127.0.0.1:\(port)']
                """)
            processes.append(prometheus)
            sitePrometheus.append("127.0.0.1:\(prometheus.port)")
        }
        let sensors = sensorProcesses.map { "127.0.0.1:\($0.port)" }

        // The global Prometheus: README's federation job, pointed at both sites.
        let globalProcess = try Self.prometheus("prometheus-global", prometheusBinary, in: dir, config: """
            scrape_configs:
              - job_name: federate
                honor_labels: true
                metrics_path: /federate
                params:
                  'match[]':
            \(federation.map { "            - '\($0)'" }.joined(separator: "\n"))
                static_configs:
                  - targets: [\(sitePrometheus.map { "'\($0)'" }.joined(separator: ", "))]
            """)
        processes.append(globalProcess)
        let global = PrometheusAPI(base: globalProcess.baseURL)

        // Traffic while everything scrapes: a request per sensor every 250 ms.
        let targets = sensorProcesses
        injector = Task.detached {
            var tick = 0
            while !Task.isCancelled {
                for (n, sensor) in targets.enumerated() {
                    let body = #"{"client_ip":"198.51.100.\#(7 + tick % 5)","server_ip":"10.0.0.\#(1 + n)","direction":"\#(tick % 2 == 0 ? "in" : "out")","proto":"TCP/443","size":\#(600 + 100 * n)}"#
                    _ = try? await sensor.request(
                        "POST", "/debug/inject", headers: ["Content-Type": "application/json"], body: Data(body.utf8), timeout: 2)
                }
                tick += 1
                try? await Task.sleep(for: .milliseconds(250))
            }
        }

        // The fleet-wide rules: every `trafficmon:` record in recording_rules.yml.
        let ruleText = try String(contentsOf: rules, encoding: .utf8)
        let fleetRules = ruleText.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("- record: trafficmon:") else { return nil }
            return String(trimmed.dropFirst("- record: ".count))
        }
        #expect(fleetRules.count >= 8, "recording_rules.yml defines \(fleetRules)")

        // Each rule answers at the global Prometheus once per site, carrying the site label.
        let deadline = Date().addingTimeInterval(90)
        var missing: [String: Set<String>] = [:]
        repeat {
            missing = [:]
            for rule in fleetRules {
                let found = Set(await Self.query(global, rule).compactMap { $0.labels["site"] })
                let absent = Set(sites).subtracting(found)
                if !absent.isEmpty { missing[rule] = absent }
            }
            if missing.isEmpty || processes.contains(where: { !$0.isRunning }) { break }
            try await Task.sleep(for: .milliseconds(500))
        } while Date() < deadline
        for process in processes {
            #expect(process.isRunning, "\(process.name) exited:\n\(process.stderrTail)")
        }
        #expect(missing.isEmpty, "rules not federated (rule: missing sites): \(missing)\n\(processes.map { "\($0.name): \($0.stderrTail)" }.joined(separator: "\n"))")

        // With traffic: both sites' fleet-wide rates are positive at the global one, and the
        // per-instance aggregates keep both sensors apart.
        var rates: [String: Double] = [:]
        let rateDeadline = Date().addingTimeInterval(30)
        repeat {
            rates = [:]
            for sample in await Self.query(global, "sum by (site) (trafficmon:bits:rate5m)") {
                if let site = sample.labels["site"] { rates[site] = sample.value }
            }
            if sites.allSatisfy({ (rates[$0] ?? 0) > 0 }) { break }
            try await Task.sleep(for: .milliseconds(500))
        } while Date() < rateDeadline
        for site in sites {
            #expect((rates[site] ?? 0) > 0, "trafficmon:bits:rate5m of \(site) at the global Prometheus: \(rates)")
        }
        let perInstance = await Self.query(global, "instance:trafficmon_bits:rate5m")
        #expect(Set(perInstance.compactMap { $0.labels["instance"] }) == Set(sensors), "instances: \(perInstance.map(\.labels))")
        for sample in perInstance {
            let site = sample.labels["site"]
            let sensor = sample.labels["instance"]
            #expect(site != nil && sensors.firstIndex(of: sensor ?? "") == sites.firstIndex(of: site ?? ""),
                    "\(sample.labels): each sensor belongs to its own site")
        }
        let up = await Self.query(global, #"up{job="trafficmon"}"#)
        #expect(Set(up.compactMap { $0.labels["site"] }) == Set(sites), "up federated: \(up.map(\.labels))")
        let builds = await Self.query(global, "trafficmon_build_info")
        #expect(Set(builds.compactMap { $0.labels["site"] }) == Set(sites), "trafficmon_build_info federated: \(builds.map(\.labels))")
    }

    // MARK: - Helpers

    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `match[]` selectors of README's federation job (the yaml block under "Federation").
    static func readmeFederationMatchers() throws -> [String] {
        let readme = try String(contentsOf: repository.appendingPathComponent("README.md"), encoding: .utf8)
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(where: { $0.contains("'match[]':") }) else {
            throw TestProcess.Failure("README.md has no federation job with 'match[]'")
        }
        var selectors: [String] = []
        for line in lines[(start + 1)...] {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("- '"), trimmed.hasSuffix("'") else { break }
            selectors.append(String(trimmed.dropFirst(3).dropLast()))
        }
        guard !selectors.isEmpty else { throw TestProcess.Failure("README.md's federation job lists no match[] selector") }
        return selectors
    }

    /// Starts Prometheus as `name` on a free port of 127.0.0.1, scraping and evaluating
    /// every second, with `config` after those lines of its `global:` block, its data in `dir`.
    static func prometheus(_ name: String, _ binary: URL, in dir: URL, config: String) throws -> ServerProcess {
        let port = try TestProcess.freePort()
        let file = dir.appendingPathComponent("\(name).yml")
        try ("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n" + config).write(to: file, atomically: true, encoding: .utf8)
        return try ServerProcess(
            name: name, executable: binary,
            arguments: [
                "--config.file=\(file.path)", "--storage.tsdb.path=\(dir.appendingPathComponent("\(name)-tsdb").path)",
                "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
            ],
            port: port, in: dir)
    }

    struct Sample {
        var labels: [String: String]
        var value: Double
    }

    /// An instant query; no answer yet (the server still starting) is an empty result.
    static func query(_ prometheus: PrometheusAPI, _ expr: String) async -> [Sample] {
        guard let response = try? await prometheus.query(expr) else { return [] }
        return response.result.map { series in
            let labels = (series["metric"] as? [String: String]) ?? [:]
            let value = ((series["value"] as? [Any])?.last as? String).flatMap(Double.init) ?? .nan
            return Sample(labels: labels, value: value)
        }
    }
}
