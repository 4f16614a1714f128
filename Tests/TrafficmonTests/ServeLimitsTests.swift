import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

/// `trafficmon serve`'s HTTP limits and Host check as shipped: the defaults, the flags and
/// their environment variables.
@Suite struct ServeLimitsTests {
    /// One request on its own connection with `Host: host`; the status (0: no answer).
    static func status(port: Int, _ path: String, host: String) async throws -> Int {
        let socket = try RawSocket(port: port)
        socket.send("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
        let head = try await socket.head()
        let parts = head.split(separator: " ", maxSplits: 2)
        return parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
    }

    /// Listening on loopback with `TRAFFICMON_ALLOWED_HOST`: loopback names and the allowed
    /// ones are served, another name gets 421; a half-sent request is closed after the
    /// default 10 s.
    @Test func allowedHostsFromTheEnvironmentAndTheDefaultRequestTimeout() async throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("c.pcap")
        try SyntheticTraffic(packets: 200, clients: 5, seconds: 2, seed: 2).pcap().write(to: capture)
        let port = try TestProcess.freePort()
        let server = try ServerProcess.trafficmon(
            ["serve", "--read", capture.path, "--listen", "127.0.0.1:\(port)", "--no-db"], port: port, in: dir,
            environment: ["TRAFFICMON_ALLOWED_HOST": "monitor.lan,other.lan"])
        defer { server.stop() }
        _ = try await server.waitUntilServing("/readyz")

        let halfSent = try RawSocket(port: port, receiveTimeout: 20)
        halfSent.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n")
        let start = Date()
        // Watched from now on, while the other requests go.
        let closed = Task { () -> (eof: Bool, seconds: TimeInterval) in
            let eof = (try? await halfSent.drained(quiet: 15, limit: 15))?.eof ?? false
            return (eof, Date().timeIntervalSince(start))
        }
        for host in ["localhost:\(port)", "127.0.0.1", "[::1]:\(port)", "monitor.lan", "other.lan:\(port)"] {
            #expect(try await Self.status(port: port, "/stats/current", host: host) == 200, "Host \(host)")
        }
        #expect(try await Self.status(port: port, "/stats/current", host: "evil.example.com") == 421)
        #expect(try await Self.status(port: port, "/metrics", host: "evil.example.com:\(port)") == 421)

        let (eof, seconds) = await closed.value
        #expect(eof, "a half-sent request was still open after 15 s")
        #expect(seconds > 9.5 && seconds < 13, "a half-sent request was closed after \(seconds) s, the default is 10 s")
        #expect(server.isRunning)
    }
}
