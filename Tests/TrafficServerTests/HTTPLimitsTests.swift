import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TrafficCore
@testable import TrafficServer
import TrafficTestSupport

/// Slow, idle and too many clients: each is closed on time or makes way, and a scrape is
/// still answered at once.
@Suite struct HTTPLimitsTests {
    /// A small replay behind a live server with `limits`. The body gets the port (the test
    /// client's own keep-alive connection is subject to the limits too, so requests go
    /// through `get`, a connection each).
    static func withLiveServer<T: Sendable>(
        limits: HTTPLimits, _ body: @Sendable (Int, TrafficServer) async throws -> T
    ) async throws -> T {
        let traffic = SyntheticTraffic(packets: 300, clients: 10, seconds: 8, seed: 21)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir))) { $0.limits = limits }
        let windows = traffic.truth.windowStarts.count
        return try await server.application.test(.live) { client in
            try await ServerHarness.waitForReplay(server, windows: windows)
            return try await body(try #require(client.port), server)
        }
    }

    /// Runs blocking socket work on a thread of its own, started at once: Dispatch's global
    /// queue runs only as many blocking jobs at a time as there are cores, and the timings
    /// here must not wait in its queue.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) -> Task<T, Never> {
        let (stream, continuation) = AsyncStream.makeStream(of: T.self, bufferingPolicy: .unbounded)
        Thread.detachNewThread {
            continuation.yield(work())
            continuation.finish()
        }
        return Task {
            for await value in stream { return value }
            preconditionFailure("the thread ended without a result")
        }
    }

    /// `GET path` on a connection of its own (`Connection: close`): status, body, milliseconds.
    static func get(port: Int, _ path: String, host: String = "localhost") async throws -> (status: Int, body: String, milliseconds: Double) {
        let socket = try RawSocket(port: port)
        let reply = await onThread { () -> (bytes: [UInt8], seconds: TimeInterval) in
            let start = Date()
            socket.send("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
            let (bytes, _) = socket.drain(quiet: 10, limit: 20)
            return (bytes, Date().timeIntervalSince(start))
        }.value
        let text = String(decoding: reply.bytes, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2)
        let status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body, reply.seconds * 1000)
    }

    /// The server's metrics, read in process.
    static func metrics(_ server: TrafficServer) throws -> PromExposition {
        try PromExposition.parse(String(decoding: server.state.metrics.exposition(format: .prometheus), as: UTF8.self))
    }

    /// Seconds from now until the server closes `socket` (nil: still open after 12 s),
    /// watched from now on.
    static func closeTimer(_ socket: RawSocket) -> Task<TimeInterval?, Never> {
        let start = Date()
        return onThread {
            let (_, eof) = socket.drain(quiet: 12, limit: 12)
            return eof ? Date().timeIntervalSince(start) : nil
        }
    }

    /// Milliseconds a `/metrics` scrape takes on a fresh connection: the best of 10, since
    /// the rest of the suite shares the two cores (a server held up by slow clients would
    /// make every one of them slow, or hang).
    static func scrapeMilliseconds(port: Int) async throws -> Double {
        var times: [Double] = []
        for _ in 0..<10 {
            let response = try await get(port: port, "/metrics")
            #expect(response.status == 200)
            #expect(response.body.contains("trafficmon_up 1"))
            times.append(response.milliseconds)
        }
        return times.min() ?? .infinity
    }

    @Test func defaultsAreTheContractsLimits() {
        let limits = HTTPLimits()
        #expect(limits.requestHeadTimeout == .seconds(10))
        #expect(limits.idleTimeout == .seconds(60))
        #expect(limits.maxConnections == 512)
        #expect(limits.maxHeadBytes == 16 * 1024)
    }

    /// A half-sent head and a head sent a byte at a time close after the request timeout
    /// (from their first byte); a silent connection and an idle keep-alive connection after
    /// the idle timeout; scrapes on other connections answer at once meanwhile.
    @Test func slowAndIdleClientsAreClosedOnTime() async throws {
        var limits = HTTPLimits()
        limits.requestHeadTimeout = .seconds(1)
        limits.idleTimeout = .seconds(6)
        try await Self.withLiveServer(limits: limits) { port, server in
            // Each timer starts as its connection starts waiting (its first byte, or its open).
            let halfSent = try RawSocket(port: port)
            halfSent.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n")
            let halfSentClosed = Self.closeTimer(halfSent)
            let silent = try RawSocket(port: port)
            let silentClosed = Self.closeTimer(silent)
            let idle = try RawSocket(port: port)
            idle.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(try await idle.head().hasPrefix("HTTP/1.1 200"))
            let idleClosed = Self.closeTimer(idle)
            // One byte every 200 ms: an inactivity timer would never fire.
            let trickle = try RawSocket(port: port)
            let trickling = Task.detached {
                for byte in "GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8 {
                    trickle.send(String(UnicodeScalar(byte)))
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            defer { trickling.cancel() }
            let trickleClosed = Self.closeTimer(trickle)

            // 100 half-sent requests hold connections while the scrapes run (once the server
            // has accepted them all: a debug build on a busy machine takes a moment).
            let crowd = try (0..<100).map { _ in try RawSocket(port: port) }
            for socket in crowd { socket.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n") }
            try await ServerHarness.waitUntil("the crowd accepted", timeout: .seconds(30)) {
                let m = try Self.metrics(server)
                let open = m.value("trafficmon_http_connections") ?? 0
                let late = m.value("trafficmon_http_connections_closed_total", ["reason": "request_timeout"]) ?? 0
                return open + late >= 100
            }
            let scrape = try await Self.scrapeMilliseconds(port: port)
            #expect(scrape < 100, "a scrape beside 100 half-sent requests took \(scrape) ms")

            // The request timeout is 1 s, the idle timeout 6 s (the bounds leave room for a
            // machine busy with the rest of the suite).
            for (what, timer) in [("half-sent head", halfSentClosed), ("trickled head", trickleClosed)] {
                let s = try #require(await timer.value, "the \(what) was still open after 12 s")
                #expect(s > 0.9 && s < 4, "the \(what) was closed after \(s) s, the request timeout is 1 s")
            }
            for (what, timer) in [("silent connection", silentClosed), ("idle keep-alive connection", idleClosed)] {
                let s = try #require(await timer.value, "the \(what) was still open after 12 s")
                #expect(s > 3 && s < 10, "the \(what) was closed after \(s) s, the idle timeout is 6 s")
            }
            for socket in crowd {
                let (_, eof) = try await socket.drained(quiet: 3, limit: 3)
                #expect(eof, "a half-sent request of the crowd is still open")
            }
            let m = try Self.metrics(server)
            let timedOut = try #require(m.value("trafficmon_http_connections_closed_total", ["reason": "request_timeout"]))
            #expect(timedOut >= 102, "\(timedOut) connections closed for a late request")
            let idled = try #require(m.value("trafficmon_http_connections_closed_total", ["reason": "idle"]))
            #expect(idled >= 2, "\(idled) connections closed for idling")
            // Every connection is gone (the scrapes' own close as they end).
            try await ServerHarness.waitUntil("no connection left open", timeout: .seconds(5)) {
                try Self.metrics(server).value("trafficmon_http_connections") == 0
            }
            #expect(try await Self.scrapeMilliseconds(port: port) < 100)
        }
    }

    /// A head over 16 KiB gets 431 and a closed connection; one under it is served.
    @Test func headOver16KiBIs431() async throws {
        try await Self.withLiveServer(limits: HTTPLimits()) { port, _ in
            let big = try RawSocket(port: port)
            big.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: \(String(repeating: "a", count: 17 * 1024))\r\n\r\n")
            let (bytes, eof) = try await big.drained(quiet: 3, limit: 10)
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 431"), "answer: \(text.prefix(80))")
            let body = try #require(text.components(separatedBy: "\r\n\r\n").last)
            let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            #expect((object?["error"] as? String)?.contains("larger") == true)
            #expect(eof)

            let fits = try RawSocket(port: port)
            fits.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: \(String(repeating: "a", count: 15 * 1024))\r\n\r\n")
            #expect(try await fits.head().hasPrefix("HTTP/1.1 200"))
            #expect(try await Self.get(port: port, "/healthz").status == 200)
        }
    }

    /// Three times the connection cap in half-sent requests: the oldest make way, the
    /// open count stays at the cap, and `/healthz` and `/metrics` answer at once.
    @Test func connectionsPastTheCapMakeWayForNewOnes() async throws {
        var limits = HTTPLimits()
        limits.maxConnections = 20
        limits.requestHeadTimeout = .seconds(60)
        // The test client's idle connection must hold its slot for the whole test.
        limits.idleTimeout = .seconds(600)
        try await Self.withLiveServer(limits: limits) { port, server in
            var flood: [RawSocket] = []
            // The test client's own connection, made as the test starts, holds a slot of
            // the cap; waiting, it stays (a flood connection still sending goes first), so
            // the flood holds the rest.
            try await ServerHarness.waitUntil("the test client's connection", timeout: .seconds(10)) {
                server.connections.admitted >= 1
            }
            let before = server.connections.count
            let admittedBefore = server.connections.admitted
            for index in 0..<60 {
                let socket = try RawSocket(port: port)
                socket.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n")
                flood.append(socket)
                // The server must have accepted the connection and read its bytes before the
                // next one comes, so each counts as sending its head (one it has not read yet
                // ranks as waiting, and a newer one still sending would go before it).
                try await ServerHarness.waitUntil("the server reading half-sent request \(index)", timeout: .seconds(10)) {
                    server.connections.admitted == admittedBefore + index + 1
                        && server.connections.count(in: .sendingRequest) >= min(index + 1, 20 - before)
                }
            }
            let health = try await Self.get(port: port, "/healthz")
            #expect(health.status == 200)
            #expect(health.milliseconds < 1000)
            #expect(try await Self.get(port: port, "/metrics").status == 200)
            let m = try Self.metrics(server)
            let open = try #require(m.value("trafficmon_http_connections"))
            #expect(open <= 20, "\(open) connections open with a cap of 20")
            let evicted = try #require(m.value("trafficmon_http_connections_closed_total", ["reason": "evicted"]))
            #expect(evicted >= 40, "only \(evicted) connections made way")
            // The oldest went first: the first 40 are closed.
            var closedEarly = 0
            for socket in flood.prefix(40) {
                let (_, eof) = try await socket.drained(quiet: 0.2, limit: 1)
                if eof { closedEarly += 1 }
            }
            #expect(closedEarly == 40)
            let newest = try #require(flood.last)
            newest.send("\r\n")
            #expect(try await newest.head().hasPrefix("HTTP/1.1 200"), "the newest half-sent request was not served once finished")
        }
    }

    /// At the cap with every connection a WebSocket (busy, never evicted), a new connection
    /// is closed at once; the server stays up and serves again once one leaves.
    @Test func newConnectionsAreRefusedWhenEveryConnectionIsBusy() async throws {
        var limits = HTTPLimits()
        limits.maxConnections = 3
        try await Self.withLiveServer(limits: limits) { port, server in
            var streams: [RawSocket] = []
            for _ in 0..<3 {
                let socket = try RawSocket(port: port)
                let (status, _) = try await socket.upgraded(path: "/stats/stream", port: port)
                #expect(status == 101)
                streams.append(socket)
            }
            let refused = try RawSocket(port: port)
            refused.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let (bytes, eof) = try await refused.drained(quiet: 3, limit: 5)
            #expect(eof && bytes.isEmpty, "a connection past the cap was answered: \(String(decoding: bytes, as: UTF8.self).prefix(60))")
            streams[0].disconnect()
            try await ServerHarness.waitUntil("a free connection slot", timeout: .seconds(10)) {
                try await Self.get(port: port, "/healthz").status == 200
            }
            let m = try Self.metrics(server)
            #expect(m.value("trafficmon_http_connections_closed_total", ["reason": "refused"]).map { $0 >= 1 } == true)
        }
    }
}

/// DNS rebinding: a server on a loopback address serves only loopback and allowed names.
@Suite struct HostCheckTests {
    static let served = [
        "localhost", "localhost:9000", "LOCALHOST.", "app.localhost:9000", "127.0.0.1", "127.0.0.1:9000", "127.1.2.3:80",
        "[::1]", "[::1]:9000", "[::ffff:127.0.0.1]:9000", "monitor.lan", "Monitor.LAN:9000", "[2001:db8::7]:9000",
    ]
    static let refused = [
        "evil.example.com", "evil.example.com:9000", "127.0.0.1.evil.example.com", "localhost.evil.example.com",
        "10.0.0.1:9000", "[::2]:9000", "[::1", "::1", "", "localhost:abc", "user@localhost", "monitor.lan.evil.example.com",
    ]

    @Test func hostValues() {
        let check = HostCheck(listen: ListenAddress(host: "127.0.0.1", port: 9000), allowedHosts: ["monitor.lan", "[2001:db8::7]"])
        #expect(check.enforced)
        for host in Self.served { #expect(check.allows(host), "\(host) refused") }
        for host in Self.refused { #expect(!check.allows(host), "\(host) served") }
        #expect(check.allows(nil), "a request without Host (HTTP/1.0) is not a browser")
        let v6 = HostCheck(listen: ListenAddress(host: "::1", port: 9000), allowedHosts: [])
        #expect(v6.enforced && v6.allows("[::1]:9000") && !v6.allows("evil.example.com"))
        let open = HostCheck(listen: ListenAddress(host: "0.0.0.0", port: 9000), allowedHosts: [])
        #expect(!open.enforced)
        for host in Self.refused { #expect(open.allows(host)) }
    }

    /// Over the network: data routes and the stream for allowed hosts; 421 with a JSON error
    /// (and no upgrade) for another name; any name when the server listens elsewhere.
    @Test(arguments: [true, false])
    func overTheNetwork(loopback: Bool) async throws {
        let traffic = SyntheticTraffic(packets: 200, clients: 5, seconds: 3, seed: 22)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir))) { settings in
            settings.listen = ListenAddress(host: loopback ? "127.0.0.1" : "0.0.0.0", port: 9000)
            settings.allowedHosts = ["monitor.lan"]
        }
        let windows = traffic.truth.windowStarts.count
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            try await ServerHarness.waitForReplay(server, windows: windows)
            for host in ["localhost:\(port)", "127.0.0.1:\(port)", "[::1]:\(port)", "monitor.lan", "evil.example.com"] {
                let socket = try RawSocket(port: port)
                socket.send("GET /stats/current HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
                let (bytes, _) = try await socket.drained(quiet: 10, limit: 20)
                let text = String(decoding: bytes, as: UTF8.self)
                if loopback && host == "evil.example.com" {
                    #expect(text.hasPrefix("HTTP/1.1 421"), "Host \(host): \(text.prefix(60))")
                    let body = try #require(text.components(separatedBy: "\r\n\r\n").last)
                    let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
                    #expect((object?["error"] as? String)?.contains("evil.example.com") == true)
                    #expect(!text.contains("\"packets\""), "data went to a rebound name")
                } else {
                    #expect(text.hasPrefix("HTTP/1.1 200"), "Host \(host): \(text.prefix(60))")
                }
                // The WebSocket upgrade is checked the same way.
                let stream = try RawSocket(port: port)
                var request = "GET /stats/stream HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                stream.send(request)
                let head = try await stream.head()
                let expected = loopback && host == "evil.example.com" ? "HTTP/1.1 421" : "HTTP/1.1 101"
                #expect(head.hasPrefix(expected), "upgrade with Host \(host): \(head.prefix(60))")
                stream.disconnect()
            }
            _ = client
        }
    }
}
