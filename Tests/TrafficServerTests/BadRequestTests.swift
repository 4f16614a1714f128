import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TrafficCore
import TrafficServer
import TrafficTestSupport

/// Whatever a client sends gets a 4xx with `{"error":"<sentence>"}`, never a 5xx.
@Suite struct BadRequestTests {
    /// A small replay (3 windows) behind a server with `/debug/inject` on or off.
    static func withServer<T: Sendable>(
        inject: Bool = true, windowLength: Int64 = 5_000_000_000,
        _ body: @Sendable (any TestClientProtocol, TrafficServer, SyntheticTraffic.Truth) async throws -> T
    ) async throws -> T {
        let traffic = SyntheticTraffic(packets: 600, clients: 20, seconds: 12, seed: 3, windowLength: windowLength)
        let truth = traffic.truth
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(
            source: try .file(try ServerHarness.write(traffic, in: dir)), windowLength: windowLength, enableDebugInject: inject)
        return try await server.application.test(.router) { client in
            try await ServerHarness.waitForReplay(server, windows: truth.windowStarts.count)
            return try await body(client, server, truth)
        }
    }

    @Test(arguments: ["abc", "0", "10001", "-1", "1.5", "", "1e3", "99999999999999999999", "%20"])
    func badHistoryLimit(limit: String) async throws {
        try await Self.withServer(inject: false) { client, _, _ in
            let response = try await ServerHarness.get(client, "/stats/history?limit=\(limit)")
            ServerHarness.expectError(response, .badRequest, mentions: "limit", "limit=\(limit)")
        }
    }

    @Test func goodHistoryLimits() async throws {
        try await Self.withServer(inject: false) { client, _, truth in
            let windows = truth.windowStarts.count
            #expect(windows == 3)
            for (query, expected) in [("", min(10, windows)), ("?limit=1", 1), ("?limit=2", 2), ("?limit=10000", windows)] {
                let response = try await ServerHarness.get(client, "/stats/history\(query)")
                #expect(response.status == .ok, "\(query)")
                let history = try ServerHarness.decodeHistory(response)
                #expect(history.count == expected, "\(query)")
                // Oldest first: the last N windows.
                #expect(history.map(\.start) == Array(truth.windowStarts.sorted().suffix(expected)), "\(query)")
            }
        }
    }

    static let validBody = #"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":1200}"#

    /// (body, field the message must mention, what).
    static let badBodies: [(String, String, String)] = [
        (#"{"client_ip":"10.10.10.10","direction":"in""#, "JSON", "truncated JSON"),
        ("not json at all", "JSON", "not JSON"),
        ("", "JSON", "empty body"),
        (#"[{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":1200}]"#, "object", "a JSON array"),
        ("42", "object", "a JSON number"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":"1200"}"#, "size", "size as a string"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":null}"#, "size", "size null"),
        (#"{"client_ip":168430090,"direction":"in","proto":"TCP/8000","size":1200}"#, "client_ip", "client_ip as a number"),
        (#"{"client_ip":"10.10.10.10","direction":true,"proto":"TCP/8000","size":1200}"#, "direction", "direction as a bool"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":443,"size":1200}"#, "proto", "proto as a number"),
        (#"{"direction":"in","proto":"TCP/8000","size":1200}"#, "client_ip", "client_ip missing"),
        (#"{"client_ip":"10.10.10.10","proto":"TCP/8000","size":1200}"#, "direction", "direction missing"),
        (#"{"client_ip":"10.10.10.10","direction":"in","size":1200}"#, "proto", "proto missing"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000"}"#, "size", "size missing"),
        ("{}", "", "empty object"),
        (#"{"client_ip":"10.10.10.10","direction":"sideways","proto":"TCP/8000","size":1200}"#, "direction", "unknown direction"),
        (#"{"client_ip":"10.10.10.10","direction":"IN","proto":"TCP/8000","size":1200}"#, "direction", "direction IN"),
        (#"{"client_ip":"10.10.10.300","direction":"in","proto":"TCP/8000","size":1200}"#, "client_ip", "bad IPv4"),
        (#"{"client_ip":"not-an-ip","direction":"in","proto":"TCP/8000","size":1200}"#, "client_ip", "not an IP"),
        (#"{"client_ip":"2001:db8::1::2","direction":"in","proto":"TCP/8000","size":1200}"#, "client_ip", "bad IPv6"),
        (#"{"client_ip":"","direction":"in","proto":"TCP/8000","size":1200}"#, "client_ip", "empty IP"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/0","size":1200}"#, "proto", "TCP/0"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/65536","size":1200}"#, "proto", "TCP/65536"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"FOO/1","size":1200}"#, "proto", "FOO/1"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"","size":1200}"#, "proto", "empty proto"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"other","size":1200}"#, "proto", "proto other"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":0}"#, "size", "size 0"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":-1}"#, "size", "size -1"),
        (#"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":262145}"#, "size", "size 262145"),
    ]

    @Test func badInjectBodies() async throws {
        try await Self.withServer { client, _, _ in
            for (body, field, what) in Self.badBodies {
                let response = try await client.execute(
                    uri: "/debug/inject", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
                ServerHarness.expectError(response, .badRequest, mentions: field.isEmpty ? nil : field, what)
            }
            // Nothing of the above was counted.
            let m = try await ServerHarness.metrics(client)
            #expect(m.value("trafficmon_injected_packets_total") == 0)
            let current = try await ServerHarness.current(client)
            #expect(!current.clients.contains { $0.ip.description == "10.10.10.10" })
        }
    }

    /// A size that is a JSON number but not an integer: 400, and the sentence names `size`
    /// (the body is valid JSON, so "body is not valid JSON" would mislead).
    @Test(arguments: ["1.5", "1e30", "-0.5", "1200.0001"])
    func injectSizeNotAnIntegerNamesTheField(size: String) async throws {
        try await Self.withServer { client, _, _ in
            let body = #"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":\#(size)}"#
            let response = try await client.execute(uri: "/debug/inject", method: .post, headers: [:], body: ByteBuffer(string: body))
            ServerHarness.expectError(response, .badRequest, mentions: "size", "size \(size)")
        }
    }

    /// `proto` is the MVP's `PROTO/PORT`: a TCP or UDP service without its port is refused
    /// like `TCP/0` (the route's own message asks for ports 1-65535).
    @Test(arguments: ["TCP", "UDP", "SCTP", "tcp"])
    func injectProtoWithoutAPortIsRejected(proto: String) async throws {
        try await Self.withServer { client, _, _ in
            let body = #"{"client_ip":"10.10.10.10","direction":"in","proto":"\#(proto)","size":1200}"#
            let response = try await client.execute(uri: "/debug/inject", method: .post, headers: [:], body: ByteBuffer(string: body))
            ServerHarness.expectError(response, .badRequest, mentions: "proto", "proto \(proto)")
            let m = try await ServerHarness.metrics(client)
            #expect(m.value("trafficmon_injected_packets_total") == 0)
        }
    }

    @Test func injectBodyOver64KiBIs413() async throws {
        try await Self.withServer { client, _, _ in
            // A valid object padded with whitespace past 64 KiB.
            let body = Self.validBody + String(repeating: " ", count: 64 * 1024)
            let response = try await client.execute(uri: "/debug/inject", method: .post, headers: [:], body: ByteBuffer(string: body))
            ServerHarness.expectError(response, .contentTooLarge, mentions: "64 KiB", "a body over 64 KiB")
            // Exactly 64 KiB is still read.
            let fits = Self.validBody + String(repeating: " ", count: 64 * 1024 - Self.validBody.utf8.count)
            let ok = try await client.execute(uri: "/debug/inject", method: .post, headers: [:], body: ByteBuffer(string: fits))
            #expect(ok.status == .accepted)
        }
    }

    @Test func injectBodyOver64KiBIs413OnALiveServer() async throws {
        let traffic = SyntheticTraffic(packets: 100, clients: 5, seconds: 2, seed: 4)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir)), enableDebugInject: true)
        try await server.application.test(.live) { client in
            let body = Self.validBody + String(repeating: " ", count: 200 * 1024)
            let response = try await client.execute(uri: "/debug/inject", method: .post, headers: [:], body: ByteBuffer(string: body))
            ServerHarness.expectError(response, .contentTooLarge, mentions: nil, "a 200 KiB body over the network")
        }
    }

    /// Bytes that are not HTTP at all, or a header with a NUL in it: a 400 with a JSON
    /// error and a closed connection, not a connection left hanging.
    @Test(arguments: ["GARBAGE\r\n\r\n", "GET /metrics HTTP/1.1\r\nHost: x\r\nBad\u{0}Header: y\r\n\r\n"])
    func requestsThatAreNotHTTPGet400AndAreClosed(raw: String) async throws {
        let traffic = SyntheticTraffic(packets: 100, clients: 5, seconds: 2, seed: 5)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.write(traffic, in: dir)))
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            let socket = try RawSocket(port: port)
            socket.send(raw)
            let (bytes, eof) = try await socket.drained(quiet: 3, limit: 10)
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 400"), "answer: \(text.prefix(80))")
            let body = try #require(text.components(separatedBy: "\r\n\r\n").last)
            let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            #expect(object?["error"] is String)
            #expect(eof, "the connection stays open after a request that is not HTTP")
            // The server is still there for well-formed requests.
            let ok = try await client.execute(uri: "/healthz", method: .get, headers: [:], body: nil)
            #expect(ok.status == .ok)
        }
    }

    @Test func injectIsNotFoundWhenDisabled() async throws {
        try await Self.withServer(inject: false) { client, _, _ in
            let response = try await client.execute(uri: "/debug/inject", method: .post, headers: [:], body: ByteBuffer(string: Self.validBody))
            ServerHarness.expectError(response, .notFound, mentions: nil, "inject while disabled")
            let get = try await ServerHarness.get(client, "/debug/inject")
            ServerHarness.expectError(get, .notFound, mentions: nil, "GET inject while disabled")
            let m = try await ServerHarness.metrics(client)
            #expect(m.value("trafficmon_injected_packets_total") == 0)
        }
    }

    @Test func unknownRoutesAre404WithAJSONBody() async throws {
        try await Self.withServer { client, _, _ in
            for (method, uri) in [(HTTPRequest.Method.get, "/nope"), (.get, "/stats"), (.get, "/stats/history/extra"),
                                  (.post, "/metrics"), (.delete, "/stats/current"), (.get, "/debug/inject"),
                                  (.put, "/debug/inject"), (.get, "/metrics/../etc/passwd")] {
                let response = try await client.execute(uri: uri, method: method, headers: [:], body: nil)
                ServerHarness.expectError(response, .notFound, mentions: nil, "\(method) \(uri)")
            }
        }
    }

    @Test(arguments: [(262_144, "in", "UDP/5353"), (1, "out", "TCP/65535"), (777, "out", "ICMP"), (1500, "in", "IP/89")])
    func validInjectIsCounted(size: Int, direction: String, proto: String) async throws {
        try await Self.withServer { client, server, _ in
            let ip = "2001:db8:ffff::77"
            let body = #"{"client_ip":"\#(ip)","direction":"\#(direction)","proto":"\#(proto)","size":\#(size)}"#
            let response = try await client.execute(
                uri: "/debug/inject", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
            #expect(response.status == .accepted, "\(ServerHarness.text(response))")
            let m = try await ServerHarness.metrics(client)
            #expect(m.value("trafficmon_injected_packets_total") == 1)

            // The packet lands in the open wall-clock window: in /stats/current while it is
            // open, in the history once it closes.
            let replayed = server.state.history(limit: 10_000).count
            var found: ClientRecord?
            try await ServerHarness.waitUntil("the injected packet in /stats/current or the history", timeout: .seconds(15)) {
                let candidates = [try await ServerHarness.current(client)] + (try await ServerHarness.history(client)).dropFirst(replayed)
                found = candidates.lazy.flatMap(\.clients).first { $0.ip.description == ip }
                return found != nil
            }
            let record = try #require(found)
            let counts = Counts(packets: 1, bytes: UInt64(size))
            #expect(record.in == (direction == "in" ? counts : .zero))
            #expect(record.out == (direction == "out" ? counts : .zero))
            #expect(record.services.count == 1)
            #expect(record.services.first?.service.label == proto)
            #expect(record.services.first?.direction.label == direction)
            #expect(record.services.first?.packets == 1)
            #expect(record.services.first?.bytes == UInt64(size))
        }
    }

    @Test func injectedWindowReachesTheMetrics() async throws {
        // 1 s windows: the injected packet's wall-clock window closes about 1.4 s later.
        try await Self.withServer(windowLength: 1_000_000_000) { client, server, truth in
            let before = server.state.history(limit: 10_000).count
            #expect(before == truth.windowStarts.count)
            for (ip, size) in [("192.0.2.1", 1000), ("192.0.2.2", 2000)] {
                let body = #"{"client_ip":"\#(ip)","direction":"in","proto":"TCP/8000","size":\#(size)}"#
                let r = try await client.execute(uri: "/debug/inject", method: .post, headers: [:], body: ByteBuffer(string: body))
                #expect(r.status == .accepted)
            }
            try await ServerHarness.waitUntil("the injected windows to close", timeout: .seconds(10)) {
                let later = server.state.history(limit: 10_000).dropFirst(before)
                return later.reduce(0) { $0 + $1.in.bytes } == 3000
            }
            let history = try await ServerHarness.history(client)
            let injected = history.dropFirst(before)
            #expect(injected.allSatisfy { $0.isConserved && $0.out == .zero })
            #expect(injected.reduce(0) { $0 + $1.in.packets } == 2)
            let m = try await ServerHarness.metrics(client)
            let newest = try #require(history.last)
            #expect(m.value("trafficmon_window_bytes", ["direction": "in"])?.promExactUInt == newest.in.bytes)
            #expect(m.value("trafficmon_window_start_timestamp_seconds") == Double(newest.start) / 1e9)
            #expect(m.value("trafficmon_windows_closed_total")?.promExactUInt == UInt64(history.count))
            #expect(m.value("trafficmon_service_bytes_total", ["service": "TCP/8000", "direction": "in"])?.promExactUInt
                == truth.flows.filter { $0.key.service == "TCP/8000" && $0.key.direction == "in" }.values.reduce(0) { $0 + $1.bytes } + 3000)
            #expect(m.value("trafficmon_injected_packets_total") == 2)
        }
    }
}
