import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TrafficCore
import TrafficServer
import TrafficTestSupport

/// `/healthz`, `/readyz` and the landing page.
@Suite struct HealthTests {
    @Test func healthAndReadinessAfterAReplay() async throws {
        let traffic = SyntheticTraffic(packets: 500, clients: 10, seconds: 8, seed: 5)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let windows = traffic.truth.windowStarts.count
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir)))
        try await server.application.test(.router) { client in
            // Liveness does not depend on the capture.
            let health = try await ServerHarness.get(client, "/healthz")
            #expect(health.status == .ok)
            let healthBody = try ServerHarness.object(health) as? [String: String]
            #expect(healthBody == ["status": "ok"])

            try await ServerHarness.waitForReplay(server, windows: windows)
            let ready = try await ServerHarness.get(client, "/readyz")
            #expect(ready.status == .ok)
            #expect(ready.headers[.contentType]?.hasPrefix("application/json") == true)
            let readyBody = try ServerHarness.object(ready)
            #expect(readyBody?["status"] as? String == "replayed")
        }
    }

    @Test func readinessWhileReplaying() async throws {
        // Readiness is 200 through the replay too; while the engine starts it may be 503.
        let traffic = SyntheticTraffic(packets: 200, clients: 10, seconds: 3, seed: 6)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir)))
        try await server.application.test(.router) { client in
            for _ in 0..<20 {
                let ready = try await ServerHarness.get(client, "/readyz")
                let body = try ServerHarness.object(ready)
                let status = body?["status"] as? String
                switch status {
                case "starting":
                    #expect(ready.status == .serviceUnavailable)
                case "replaying", "replayed":
                    #expect(ready.status == .ok)
                default:
                    Issue.record("unexpected /readyz status \(status ?? "nil") (\(ready.status.code))")
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    /// A capture file cut in the middle of a record: the replay fails, readiness says so
    /// (503 with the reason), liveness and the windows read before the cut stay.
    @Test func readinessReportsAFailedCapture() async throws {
        let traffic = SyntheticTraffic(packets: 2_000, clients: 10, seconds: 12, seed: 8)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("cut.pcap")
        let image = traffic.pcap().data
        try Data(image.prefix(image.count - 7)).write(to: url)
        let windows = traffic.truth.windowStarts.count
        let frames = traffic.frames.count
        let server = try await ServerHarness.server(source: try .file(url))
        try await server.application.test(.router) { client in
            try await ServerHarness.waitUntil("the capture to fail", timeout: .seconds(20)) {
                if case .failed = server.state.engine.status { return true }
                return false
            }
            let ready = try await ServerHarness.get(client, "/readyz")
            #expect(ready.status == .serviceUnavailable)
            let body = try ServerHarness.object(ready)
            #expect(body?["status"] as? String == "failed")
            #expect((body?["error"] as? String)?.contains("cut.pcap") == true, "\(ServerHarness.text(ready))")
            #expect(try await ServerHarness.get(client, "/healthz").status == .ok)
            // Everything before the cut was counted: all windows, the last one partial.
            try await ServerHarness.waitUntil("the windows read before the cut", timeout: .seconds(10)) {
                server.state.history(limit: 10_000).count == windows
            }
            let history = try await ServerHarness.history(client)
            #expect(history.last?.partial == true)
            #expect(history.reduce(0) { $0 + $1.packets } == UInt64(frames - 1))
            let metrics = try await ServerHarness.get(client, "/metrics")
            #expect(metrics.status == .ok)
        }
    }

    @Test func livePageLinksToMetricsAndTheJSONRoutes() async throws {
        let traffic = SyntheticTraffic(packets: 100, clients: 5, seconds: 2, seed: 7)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir)))
        try await server.application.test(.router) { client in
            let page = try await ServerHarness.get(client, "/")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType]?.hasPrefix("text/html") == true)
            let html = ServerHarness.text(page)
            #expect(html.lowercased().contains("<html"))
            #expect(html.contains("href=\"/metrics\""))
            #expect(html.contains("/stats/history"))
            #expect(html.contains("/stats/current"))
            #expect(html.contains("href=\"/stats/capture\""))
            // The page's script and style, keyed by their content hash.
            let script = try #require(html.range(of: #"/assets/app\.js\?v=[0-9a-f]{16}"#, options: .regularExpression))
            let etag = try await ServerHarness.get(client, "/assets/app.js").headers[.eTag]
            #expect(etag == "\"" + html[script].suffix(16) + "\"")
            #expect(html.range(of: #"/assets/app\.css\?v=[0-9a-f]{16}"#, options: .regularExpression) != nil)
        }
    }
}
