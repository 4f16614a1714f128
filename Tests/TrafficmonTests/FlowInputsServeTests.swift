import Foundation
import Testing
import TrafficCore
import TrafficFlows
import TrafficTestSupport

/// Several flow inputs in one `trafficmon serve`: two `--netflow` addresses (IPv4 and IPv6)
/// are one source in the records and the traffic counters, and two inputs in the health
/// figures (each its own `listen`).
@Suite struct FlowInputsServeTests {
    struct Capture: Decodable {
        var flows: [FlowCollectorHealth]
    }

    struct History: Decodable {
        var windows: [WindowRecord]
    }

    @Test func twoNetFlowAddressesAreOneSourceAndTwoInputs() async throws {
        let dir = try TestProcess.temporaryDirectory("flows-two-inputs")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try ServerProcess.serve(
            ["--netflow", "127.0.0.1:0", "--netflow", "[::1]:0", "--no-db", "--window", "1s", "--local-net", "10.0.0.0/29"], in: dir)
        defer { server.stop() }
        // On a thread of its own: other suites may hold the cooperative pool for a while.
        _ = try await TestProcess.offload { try server.waitUntilServing("/readyz", timeout: 90) }
        var ports: [String: UInt16] = [:]
        try await server.waitUntil("both inputs' ports in the log") {
            for match in server.stderr.matches(of: /collecting netflow on (\S+) \(port (\d+)\)/) { ports[String(match.1)] = UInt16(match.2) }
            return ports.count == 2
        }
        let v4 = try #require(ports["127.0.0.1:0"]), v6 = try #require(ports["[::1]:0"])
        let seconds = UInt32(Date().timeIntervalSince1970)
        let record = FlowDatagrams.V5Record(
            source: "198.51.100.7", destination: "10.0.0.1", sourcePort: 40000, destinationPort: 443, packets: 5, bytes: 2000, first: 99_000, last: 100_000)
        #expect(try UDPSender(from: "127.0.0.1").send(FlowDatagrams.netflowV5([record], sequence: 0, unixSeconds: seconds), to: "127.0.0.1", port: v4))
        #expect(try UDPSender(from: "::1").send(FlowDatagrams.netflowV5([record, record], sequence: 0, unixSeconds: seconds), to: "::1", port: v6))

        var windows: [WindowRecord] = []
        try await server.waitUntil("the three records in closed windows", timeout: 20) {
            windows = try JSONDecoder().decode(History.self, from: try await server.get("/stats/history?limit=100").body).windows
            return windows.reduce(0) { $0 + $1.packets } == 15
        }
        // One "netflow" source in the records, holding both inputs' traffic.
        for window in windows where window.packets > 0 {
            #expect(window.sources.map(\.name) == ["netflow", "inject"], "\(window.sources)")
            #expect(window.sources[0].in.packets + window.sources[0].out.packets == window.packets)
        }
        let metrics = try PromExposition.parse(try await server.get("/metrics").text)
        #expect(metrics.sum("trafficmon_packets_total", ["source": "netflow"]) == 15)
        #expect(metrics.sum("trafficmon_bytes_total", ["source": "netflow"]) == 6000)
        // Two inputs in the health figures, each with its own exporter.
        let flows = try JSONDecoder().decode(Capture.self, from: try await server.get("/stats/capture").body).flows
        #expect(Set(flows.map(\.listen)) == ["127.0.0.1:\(v4)", "[::1]:\(v6)"])
        #expect(metrics.value("trafficmon_flow_records_total", ["listen": "127.0.0.1:\(v4)", "exporter": "127.0.0.1"]) == 1)
        #expect(metrics.value("trafficmon_flow_records_total", ["listen": "[::1]:\(v6)", "exporter": "::1"]) == 2)
    }
}
