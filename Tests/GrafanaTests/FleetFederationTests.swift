import Foundation
import Testing
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// README's "Scaling out" set-up, end to end: two sites, each a `trafficmon serve` scraped
/// by a Prometheus of its own with the shipped recording rules and a `site` external
/// label, and one global Prometheus federating both sites' `/federate` with the README's
/// `match[]` selectors. Self-contained: its own small process and HTTP helpers.
@Suite("Federation: two sites, one global Prometheus")
struct FleetFederationTests {
    @Test("every fleet-wide recording rule answers at the global Prometheus for both sites, with traffic")
    func fleetSeriesReachTheGlobalPrometheus() async throws {
        let prometheusBinary = try #require(
            TestProcess.which("prometheus"), "prometheus not found: install Debian's prometheus package (scripts/install-deps --test)")
        let dir = try TestProcess.temporaryDirectory("trafficmon-fleet")
        var processes: [FleetProcess] = []
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
        var sensors: [String] = []
        var sitePrometheus: [String] = []
        for (index, site) in sites.enumerated() {
            let capture = dir.appendingPathComponent("\(site).pcap")
            try SyntheticTraffic(packets: 2_000 + index * 1_000, clients: 40, seconds: 10, seed: UInt64(31 + index))
                .pcap().write(to: capture)
            let sensor = "127.0.0.1:\(try TestProcess.freePort())"
            var arguments = ["serve", "--read", capture.path, "--listen", sensor, "--window", "1s", "--no-db", "--enable-debug-inject"]
            for net in SyntheticTraffic.localNetworks { arguments += ["--local-net", net] }
            processes.append(try FleetProcess("trafficmon-\(site)", TestProcess.trafficmon.path, arguments, in: dir))
            sensors.append(sensor)

            let address = "127.0.0.1:\(try TestProcess.freePort())"
            let config = dir.appendingPathComponent("prometheus-\(site).yml")
            try """
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                  external_labels:
                    site: \(site)
                rule_files:
                  - \(rules.path)
                scrape_configs:
                  - job_name: trafficmon
                    static_configs:
                      - targets: ['\(sensor)']
                """.write(to: config, atomically: true, encoding: .utf8)
            processes.append(try FleetProcess("prometheus-\(site)", prometheusBinary, Self.prometheusArguments(config, address, dir), in: dir))
            sitePrometheus.append(address)
        }

        // The global Prometheus: README's federation job, pointed at both sites.
        let global = "127.0.0.1:\(try TestProcess.freePort())"
        let globalConfig = dir.appendingPathComponent("prometheus-global.yml")
        try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: federate
                honor_labels: true
                metrics_path: /federate
                params:
                  'match[]':
            \(federation.map { "            - '\($0)'" }.joined(separator: "\n"))
                static_configs:
                  - targets: [\(sitePrometheus.map { "'\($0)'" }.joined(separator: ", "))]
            """.write(to: globalConfig, atomically: true, encoding: .utf8)
        let globalProcess = try FleetProcess("prometheus-global", prometheusBinary, Self.prometheusArguments(globalConfig, global, dir), in: dir)
        processes.append(globalProcess)

        // Traffic while everything scrapes: a request per sensor every 250 ms.
        let targets = sensors
        injector = Task.detached {
            var tick = 0
            while !Task.isCancelled {
                for (n, sensor) in targets.enumerated() {
                    let body = #"{"client_ip":"198.51.100.\#(7 + tick % 5)","server_ip":"10.0.0.\#(1 + n)","direction":"\#(tick % 2 == 0 ? "in" : "out")","proto":"TCP/443","size":\#(600 + 100 * n)}"#
                    _ = try? await TestProcess.run(
                        program: "curl", ["-sf", "-m", "2", "-H", "Content-Type: application/json", "--data-binary", body, "http://\(sensor)/debug/inject"],
                        timeout: 5)
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
                let found = Set(try await Self.query(global, rule).compactMap { $0.labels["site"] })
                let absent = Set(sites).subtracting(found)
                if !absent.isEmpty { missing[rule] = absent }
            }
            if missing.isEmpty || processes.contains(where: { !$0.isRunning }) { break }
            try await Task.sleep(for: .milliseconds(500))
        } while Date() < deadline
        for process in processes {
            #expect(process.isRunning, "\(process.name) exited:\n\(process.logTail)")
        }
        #expect(missing.isEmpty, "rules not federated (rule: missing sites): \(missing)\n\(processes.map(\.logTail).joined(separator: "\n"))")

        // With traffic: both sites' fleet-wide rates are positive at the global one, and the
        // per-instance aggregates keep both sensors apart.
        var rates: [String: Double] = [:]
        let rateDeadline = Date().addingTimeInterval(30)
        repeat {
            rates = [:]
            for sample in try await Self.query(global, "sum by (site) (trafficmon:bits:rate5m)") {
                if let site = sample.labels["site"] { rates[site] = sample.value }
            }
            if sites.allSatisfy({ (rates[$0] ?? 0) > 0 }) { break }
            try await Task.sleep(for: .milliseconds(500))
        } while Date() < rateDeadline
        for site in sites {
            #expect((rates[site] ?? 0) > 0, "trafficmon:bits:rate5m of \(site) at the global Prometheus: \(rates)")
        }
        let perInstance = try await Self.query(global, "instance:trafficmon_bits:rate5m")
        #expect(Set(perInstance.compactMap { $0.labels["instance"] }) == Set(sensors), "instances: \(perInstance.map(\.labels))")
        for sample in perInstance {
            let site = sample.labels["site"]
            let sensor = sample.labels["instance"]
            #expect(site != nil && sensors.firstIndex(of: sensor ?? "") == sites.firstIndex(of: site ?? ""),
                    "\(sample.labels): each sensor belongs to its own site")
        }
        let up = try await Self.query(global, #"up{job="trafficmon"}"#)
        #expect(Set(up.compactMap { $0.labels["site"] }) == Set(sites), "up federated: \(up.map(\.labels))")
        let builds = try await Self.query(global, "trafficmon_build_info")
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

    static func prometheusArguments(_ config: URL, _ address: String, _ dir: URL) -> [String] {
        let name = config.deletingPathExtension().lastPathComponent
        return [
            "--config.file=\(config.path)", "--storage.tsdb.path=\(dir.appendingPathComponent("\(name)-tsdb").path)",
            "--web.listen-address=\(address)", "--log.level=warn",
        ]
    }

    struct Sample {
        var labels: [String: String]
        var value: Double
    }

    /// An instant query; no answer yet (the server still starting) is an empty result.
    static func query(_ server: String, _ expr: String) async throws -> [Sample] {
        let reply = try await TestProcess.run(
            program: "curl", ["-s", "-m", "5", "--data-urlencode", "query=\(expr)", "http://\(server)/api/v1/query"], timeout: 10)
        guard reply.status == 0,
              let object = try? JSONSerialization.jsonObject(with: reply.stdout) as? [String: Any],
              let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else { return [] }
        return result.map { series in
            let labels = (series["metric"] as? [String: String]) ?? [:]
            let value = ((series["value"] as? [Any])?.last as? String).flatMap(Double.init) ?? .nan
            return Sample(labels: labels, value: value)
        }
    }
}

/// A server started for the fleet test, its output in `<name>.log`; `stop()` sends SIGTERM,
/// then SIGKILL after 3 s.
final class FleetProcess: @unchecked Sendable {
    let name: String
    private let process = Process()
    private let log: URL

    init(_ name: String, _ executable: String, _ arguments: [String], in dir: URL) throws {
        self.name = name
        log = dir.appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = dir
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TRAFFICMON_") }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    var logTail: String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return "\(name): " + text.split(separator: "\n").suffix(8).joined(separator: "\n  ")
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}
