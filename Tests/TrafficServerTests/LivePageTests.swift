import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficTestSupport

/// The live page's routes (`/`, `/assets/app.js`, `/assets/app.css`) and the JSON it reads
/// besides the history (`/stats/capture`). The page itself, in a browser, is tested by
/// `LivePageBrowserTests` (TrafficmonTests).
@Suite struct LivePageTests {
    struct Summary: Decodable {
        struct Source: Decodable { var kind: String; var name: String }
        struct Dropped: Decodable { var kernel: UInt64; var interface: UInt64 }
        var version: String
        var status: String
        var source: Source
        var started: String
        var uptime_seconds: Double
        var window_seconds: Double
        var windows_closed: UInt64
        var received: UInt64
        var dropped: Dropped
        var malformed: UInt64
        var non_ip: UInt64
        var late_packets: UInt64
        var top: Int
        var history_size: Int
        var local_networks: [String]
        var service_ports: [String]
    }

    @Test func pageAndAssetsAreServedWithValidatorsAndAPolicy() async throws {
        let dir = try TestProcess.temporaryDirectory("live-page")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second)
        try await server.application.test(.router) { client in
            let page = try await ServerHarness.get(client, "/")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            let policy = try #require(page.headers[.contentSecurityPolicy])
            #expect(policy.contains("script-src 'self'") && policy.contains("default-src 'none'"), "\(policy)")
            let html = ServerHarness.text(page)
            #expect(html.contains(#"data-auth="none""#))
            #expect(html.contains("/assets/app.js?v=") && html.contains("/assets/app.css?v="))
            #expect(!html.contains("9.9.9-test"), "the open page reveals the version")
            #expect(!html.contains("{{"), "an unfilled placeholder is left in the page")

            for (path, type, marker) in [
                ("/assets/app.js", "text/javascript; charset=utf-8", "/stats/stream"),
                ("/assets/app.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"),
                ("/", "text/html; charset=utf-8", "<main"),
            ] {
                let response = try await ServerHarness.get(client, path)
                #expect(response.status == .ok, "\(path)")
                #expect(response.headers[.contentType] == type, "\(path)")
                #expect(ServerHarness.text(response).contains(marker), "\(path) lacks \(marker)")
                let etag = try #require(response.headers[.eTag], "\(path) has no ETag")
                #expect(response.headers[.cacheControl] == "no-cache")
                // Revalidation: the same ETag gets 304 and no body; another gets the file.
                let same = try await ServerHarness.get(client, path, headers: [.ifNoneMatch: etag])
                #expect(same.status == .notModified, "\(path) with its own ETag: \(same.status.code)")
                #expect(same.body.readableBytes == 0)
                let other = try await ServerHarness.get(client, path, headers: [.ifNoneMatch: "\"0000000000000000\""])
                #expect(other.status == .ok)
                // HEAD: the same headers, no body.
                let head = try await client.execute(uri: path, method: .head, headers: [:], body: nil)
                #expect(head.status == .ok, "HEAD \(path)")
                #expect(head.headers[.contentLength] == String(response.body.readableBytes), "HEAD \(path)")
                #expect(head.body.readableBytes == 0)
            }
            // The ETags differ between files.
            let tags = try await ["/", "/assets/app.js", "/assets/app.css"].asyncMap { try await ServerHarness.get(client, $0).headers[.eTag] }
            #expect(Set(tags).count == 3)
        }
    }

    /// The page has a table per kind of party: top clients and top servers, and local
    /// machines (hidden until `/stats/capture` names local networks); its script reads
    /// the local networks, the servers and the parties' `local` mark.
    @Test func pageHasPanelsForClientsServersAndLocalMachines() async throws {
        let dir = try TestProcess.temporaryDirectory("live-page")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second)
        try await server.application.test(.router) { client in
            let html = ServerHarness.text(try await ServerHarness.get(client, "/"))
            for (panel, table, heading) in [
                ("panel-local", "local-table", "Local machines"), ("panel-clients", "clients-table", "Top clients"),
                ("panel-servers", "servers-table", "Top servers"), ("panel-services", "services-table", "Top services"),
            ] {
                #expect(html.contains(#"id="\#(panel)""#) && html.contains(#"<table id="\#(table)">"#), "no \(table) in \(panel)")
                #expect(html.contains(">\(heading)</h2>"), "no heading \(heading)")
            }
            #expect(html.contains(#"<section class="panel" id="panel-local" aria-labelledby="h-local" hidden>"#))
            let script = ServerHarness.text(try await ServerHarness.get(client, "/assets/app.js"))
            for marker in ["local_networks", "r.servers", "other_servers", "p.local", "'Remote servers'", "'Remote clients'"] {
                #expect(script.contains(marker), "app.js does not read \(marker)")
            }
        }
    }

    /// `/stats/capture` names the local networks (IPv4 first, canonical text) and the
    /// service ports the server attributes with; none when none is set.
    @Test func captureSummaryNamesLocalNetworksAndServicePorts() async throws {
        let dir = try TestProcess.temporaryDirectory("live-page")
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = try ServerHarness.emptyCapture(in: dir)
        for (networks, ports) in [
            (["2001:DB8:1:0::/64", "192.168.1.7/24"], ["UDP/50000", "TCP/8443"]),
            ([], []),
        ] {
            let servicePorts = try ServicePorts(labels: ports)
            let server = try await ServerHarness.server(
                source: try .file(capture), windowLength: ServerHarness.second, localNetworks: networks,
                aggregate: { $0.servicePorts = servicePorts })
            try await server.application.test(.router) { client in
                let response = try await ServerHarness.get(client, "/stats/capture")
                #expect(response.status == .ok)
                let summary = try JSONDecoder().decode(Summary.self, from: Data(ServerHarness.bytes(response)))
                #expect(summary.local_networks == (networks.isEmpty ? [] : ["192.168.1.0/24", "2001:db8:1::/64"]))
                #expect(summary.service_ports == (ports.isEmpty ? [] : ["TCP/8443", "UDP/50000"]))
            }
        }
    }

    /// `/stats/capture` after a replay: the totals equal the generator's oracle (not
    /// trafficmon's own figures), the history's sums and the `/metrics` counters.
    @Test func captureSummaryAddsUpEveryClosedWindow() async throws {
        let dir = try TestProcess.temporaryDirectory("live-page")
        defer { try? FileManager.default.removeItem(at: dir) }
        let traffic = SyntheticTraffic(packets: 4_000, clients: 60, seconds: 8, seed: 77, windowLength: ServerHarness.second)
        let capture = try ServerHarness.write(traffic, in: dir)
        let truth = traffic.truth
        let server = try await ServerHarness.server(source: try .file(capture), windowLength: ServerHarness.second)
        try await server.application.test(.live) { client in
            try await ServerHarness.waitForReplayEnd(server)
            let history = try await ServerHarness.history(client)
            let response = try await ServerHarness.get(client, "/stats/capture")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            let summary = try JSONDecoder().decode(Summary.self, from: Data(ServerHarness.bytes(response)))
            #expect(summary.status == "replayed")
            #expect(summary.source.kind == "file" && summary.source.name == capture.path)
            #expect(summary.version == "9.9.9-test")
            #expect(summary.window_seconds == 1)
            #expect(summary.top == 50 && summary.history_size == 720)
            #expect(summary.local_networks == SyntheticTraffic.localNetworks)
            #expect(summary.service_ports == [])
            #expect(Timestamp.parse(summary.started) != nil, "started: \(summary.started)")
            #expect(summary.uptime_seconds >= 0 && summary.uptime_seconds < 600)

            #expect(summary.received == truth.total.packets)
            #expect(summary.malformed == truth.malformed.packets)
            #expect(summary.non_ip == truth.nonIP.packets)
            #expect(summary.late_packets == truth.latePackets)
            #expect(summary.windows_closed == UInt64(history.count))
            #expect(summary.received == history.reduce(0) { $0 + $1.capture.received })
            #expect(summary.dropped.kernel == 0 && summary.dropped.interface == 0)

            let metrics = try await ServerHarness.metrics(client)
            #expect(metrics.sum("trafficmon_capture_received_packets_total") == Double(summary.received))
            #expect(metrics.sum("trafficmon_windows_closed_total") == Double(summary.windows_closed))
        }
    }
}

extension LivePageTests {
    /// `/stats/history?top=K` (what the page's charts load): the same windows with at most K
    /// clients and services each, the rest in `other`; totals and conservation unchanged.
    @Test(arguments: [0, 1, 7])
    func historyFoldsToFewerClientsOnRequest(top: Int) async throws {
        let dir = try TestProcess.temporaryDirectory("live-page")
        defer { try? FileManager.default.removeItem(at: dir) }
        let traffic = SyntheticTraffic(packets: 6_000, clients: 300, seconds: 6, seed: 5, windowLength: ServerHarness.second)
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir)), windowLength: ServerHarness.second)
        try await server.application.test(.live) { client in
            try await ServerHarness.waitForReplayEnd(server)
            let full = try await ServerHarness.history(client)
            let response = try await ServerHarness.get(client, "/stats/history?limit=10000&top=\(top)")
            #expect(response.status == .ok)
            let folded = try ServerHarness.decodeHistory(response)
            #expect(folded.count == full.count && full.count >= 5)
            #expect(full.contains { $0.clients.count > top }, "nothing to fold")
            for (f, w) in zip(folded, full) {
                #expect(f.start == w.start && f.end == w.end && f.partial == w.partial)
                #expect(f.packets == w.packets && f.bytes == w.bytes && f.in == w.in && f.out == w.out)
                #expect(f.nonIP == w.nonIP && f.malformed == w.malformed && f.capture == w.capture && f.latePackets == w.latePackets)
                #expect(f.clients.count == min(top, w.clients.count))
                #expect(f.clients.map(\.ip) == w.clients.prefix(top).map(\.ip))
                #expect(zip(f.clients, w.clients).allSatisfy { $0.in == $1.in && $0.out == $1.out })
                let dropped = w.clients.dropFirst(top)
                #expect(f.other.clients == w.other.clients + UInt64(dropped.count))
                #expect(f.other.in == dropped.reduce(w.other.in) { $0 + $1.in })
                #expect(f.other.out == dropped.reduce(w.other.out) { $0 + $1.out })
                // Conservation, as DESIGN.md states it.
                let listed = f.clients.reduce(Counts()) { $0 + $1.total }
                #expect(f.packets == listed.packets + f.other.packets + f.nonIP.packets + f.malformed.packets)
                #expect(f.bytes == listed.bytes + f.other.bytes + f.nonIP.bytes + f.malformed.bytes)
                // Services: at most `top` named, the rest in `other`, the same bytes in all.
                #expect(f.services.filter { $0.service != .other }.count <= top)
                #expect(f.services.reduce(0) { $0 + $1.bytes } == w.services.reduce(0) { $0 + $1.bytes })
                for c in f.clients {
                    #expect(c.services.filter { $0.service != .other }.count <= top)
                    #expect(c.services.reduce(0) { $0 + $1.bytes } == c.total.bytes)
                }
            }
        }
    }

    /// A page on another site cannot read the stream through a visitor's browser: an
    /// upgrade whose Origin is not this server is refused (403); the server's own page,
    /// and clients that send no Origin (not browsers), are upgraded.
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aWebSocketFromAnotherSiteIsRefused() async throws {
        let dir = try TestProcess.temporaryDirectory("live-page")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            for origin in ["http://evil.example", "http://127.0.0.1:\(port + 1)", "http://127.0.0.1.evil.example:\(port)", "null"] {
                let socket = try RawSocket(port: port)
                let answer = try await socket.upgraded(path: "/stats/stream", port: port, headers: ["Origin: \(origin)"])
                #expect(answer.status == 403, "Origin \(origin): \(answer.head.split(separator: "\r\n").first ?? "no answer")")
                socket.disconnect()
            }
            for headers in [["Origin: http://127.0.0.1:\(port)"], ["Origin: HTTP://127.0.0.1:\(port)"], []] {
                let socket = try RawSocket(port: port)
                let answer = try await socket.upgraded(path: "/stats/stream", port: port, headers: headers)
                #expect(answer.status == 101, "\(headers): \(answer.head.split(separator: "\r\n").first ?? "no answer")")
                socket.disconnect()
                try await ServerHarness.waitUntil("the client to leave") { server.hub.clientCount == 0 }
            }
        }
    }

    @Test func historyRefusesABadTop() async throws {
        let dir = try TestProcess.temporaryDirectory("live-page")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second)
        try await server.application.test(.router) { client in
            for bad in ["-1", "x", "10001", "", "1.5"] {
                let response = try await ServerHarness.get(client, "/stats/history?top=\(bad)")
                #expect(response.status == .badRequest, "top=\(bad): \(response.status.code)")
                ServerHarness.expectError(response, .badRequest, mentions: "top", "top=\(bad)")
            }
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        out.reserveCapacity(count)
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
