import Foundation
import Testing
import TrafficTestSupport

/// promtool on the shipped configuration, rules and rule tests.
@Suite("promtool")
struct PromtoolTests {
    static func promtool() throws -> URL {
        try #require(findExecutable("promtool", preferred: "/usr/bin/promtool"),
                     "promtool not found: install Debian's prometheus package")
    }

    /// Every alert alerts.yml ships.
    static let alertNames = [
        "TrafficmonDown", "HighInboundTraffic", "HighOutboundTraffic", "ClientTrafficHigh", "ServerTrafficHigh", "CaptureDropping",
        "NoTrafficCaptured", "FlowExporterSilent", "SynFlood", "PortScanSuspected", "DnsServfailHigh", "DnsErrorsHigh",
        "NetworkTrafficHigh",
    ]

    static func run(_ arguments: [String]) throws -> TestProcess.Result {
        try TestProcess.run(promtool(), arguments, timeout: 60)
    }

    @Test("promtool check rules --lint=all --lint-fatal")
    func checkRules() throws {
        let dir = Repo.prometheusDirectory
        let result = try Self.run([
            "check", "rules", "--lint=all", "--lint-fatal",
            dir.appendingPathComponent("alerts.yml").path, dir.appendingPathComponent("recording_rules.yml").path,
        ])
        #expect(result.status == 0, "\(result.stdoutText)\n\(result.stderr)")
        // Both files were read and hold rules (every alert at least).
        #expect(result.stdoutText.contains("SUCCESS"))
        let alerts = try Repo.text("grafana/prometheus/alerts.yml")
        for name in Self.alertNames {
            #expect(alerts.contains("alert: \(name)\n"), "alerts.yml has no \(name)")
        }
    }

    @Test("every alert has a severity label and summary and description annotations")
    func alertShape() throws {
        let text = try Repo.text("grafana/prometheus/alerts.yml")
        let blocks = text.components(separatedBy: "- alert: ").dropFirst()
        let header = text.components(separatedBy: "\ngroups:").first ?? ""
        #expect(blocks.map { String($0.prefix { $0 != "\n" }) } == Self.alertNames)
        for block in blocks {
            let name = String(block.prefix { $0 != "\n" })
            #expect(name.first?.isUppercase == true && !name.contains("_"), "\(name) is not CamelCase")
            #expect(block.contains("severity:"), "\(name) has no severity")
            #expect(block.contains("summary:"), "\(name) has no summary")
            #expect(block.contains("description:"), "\(name) has no description")
            // Every threshold is marked where it is written (the header of alerts.yml lists them).
            #expect(block.contains("# threshold"), "\(name) has no number marked # threshold")
            #expect(header.contains("#   \(name) "), "the header of alerts.yml does not list \(name)")
        }
        #expect(text.contains(#"up{job="trafficmon"} == 0"#))
    }

    @Test("promtool check config on a copy of prometheus.yml")
    func checkConfig() throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-promtool")
        defer { try? FileManager.default.removeItem(at: dir) }
        // The shipped files side by side, as on a Debian host in /etc/prometheus/:
        // rule_files are relative to the configuration file.
        for name in ["prometheus.yml", "alerts.yml", "recording_rules.yml"] {
            try FileManager.default.copyItem(
                at: Repo.prometheusDirectory.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        let result = try Self.run(["check", "config", dir.appendingPathComponent("prometheus.yml").path])
        #expect(result.status == 0, "\(result.stdoutText)\n\(result.stderr)")
        #expect(result.stdoutText.contains("2 rule files found"), "\(result.stdoutText)")
    }

    @Test("promtool test rules alerts_test.yml")
    func testRules() throws {
        let result = try Self.run(["test", "rules", Repo.prometheusDirectory.appendingPathComponent("alerts_test.yml").path])
        #expect(result.status == 0, "\(result.stdoutText)\n\(result.stderr)")
        #expect(result.stdoutText.contains("SUCCESS"))
        // Each alert is tested both ways: firing on one series, silent on another.
        let tests = try Repo.text("grafana/prometheus/alerts_test.yml")
        for name in Self.alertNames {
            #expect(tests.contains("alertname: \(name)\n"), "alerts_test.yml does not test \(name)")
        }
    }
}
