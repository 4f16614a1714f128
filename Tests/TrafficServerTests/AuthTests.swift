import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import Testing
import TrafficCapture
import TrafficCore
@testable import TrafficServer
import TrafficTestSupport
import WSClient

/// Bearer authentication (`--auth-token-file`): every route but `/healthz` needs one of
/// the file's tokens; the WebSocket upgrade too.
@Suite struct AuthTests {
    static let alpha = "alpha-token-0123456789"
    static let beta = "beta-token-ABCDEF"

    /// A token file with two tokens, a comment, a blank line and padding.
    static func tokenFile(in dir: URL) throws -> String {
        let path = dir.appendingPathComponent("tokens").path
        try "# trafficmon tokens\n\(alpha)\n\n   \(beta)  \n# old-token-retired\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func server(in dir: URL) async throws -> TrafficServer {
        var options = TrafficServer.Options()
        options.authTokens = try BearerAuthMiddleware<TrafficServer.Context>.loadTokens(try tokenFile(in: dir))
        let traffic = SyntheticTraffic(packets: 300, clients: 10, seconds: 3, seed: 21, windowLength: ServerHarness.second)
        return try await ServerHarness.server(
            source: try .file(try ServerHarness.write(traffic, in: dir)), windowLength: ServerHarness.second, enableDebugInject: true, options: options)
    }

    struct Route: CustomStringConvertible {
        var method: HTTPRequest.Method
        var path: String
        var body: String?
        var description: String { "\(method) \(path)" }
    }

    static let routes = [
        Route(method: .get, path: "/metrics"),
        Route(method: .get, path: "/stats/current"),
        Route(method: .get, path: "/stats/history"),
        Route(method: .get, path: "/stats/history?limit=5"),
        Route(method: .get, path: "/stats/history?since=1700000000"),
        Route(method: .get, path: "/stats/capture"),
        Route(method: .get, path: "/readyz"),
        Route(method: .post, path: "/debug/inject", body: #"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":1200}"#),
    ]

    @Test func tokenFileSkipsCommentsAndBlankLines() throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-auth")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try BearerAuthMiddleware<TrafficServer.Context>.loadTokens(try Self.tokenFile(in: dir)) == [Self.alpha, Self.beta])
        let empty = dir.appendingPathComponent("empty").path
        try "# nothing here\n\n".write(toFile: empty, atomically: true, encoding: .utf8)
        #expect(throws: TokenFileError.self) { _ = try BearerAuthMiddleware<TrafficServer.Context>.loadTokens(empty) }
        #expect(throws: TokenFileError.self) { _ = try BearerAuthMiddleware<TrafficServer.Context>.loadTokens(dir.appendingPathComponent("missing").path) }
    }

    @Test func everyRouteButHealthzNeedsAValidToken() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-auth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await Self.server(in: dir)
        try await server.application.test(.live) { client in
            try await ServerHarness.waitUntil("the replay") { server.state.engine.status == .replayed }
            let wrong: [String] = [
                "Bearer wrong-token", "Bearer \(Self.alpha.dropLast())", "Bearer \(Self.alpha)x", "Bearer ",
                "Bearer \(Self.alpha.uppercased())", "Basic \(Data("u:\(Self.alpha)".utf8).base64EncodedString())", Self.alpha,
                "Bearer \(Self.alpha) \(Self.beta)",
            ]
            for route in Self.routes {
                let body = route.body.map { ByteBuffer(string: $0) }
                // No token.
                let none = try await client.execute(uri: route.path, method: route.method, headers: [:], body: body)
                #expect(none.status == .unauthorized, "\(route) without a token: \(none.status.code)")
                #expect(none.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true, "\(route): WWW-Authenticate \(none.headers[.wwwAuthenticate] ?? "missing")")
                ServerHarness.expectError(none, .unauthorized, mentions: nil, "\(route) without a token")
                // Wrong ones.
                for value in wrong {
                    let response = try await client.execute(uri: route.path, method: route.method, headers: [.authorization: value], body: body)
                    #expect(response.status == .unauthorized, "\(route) with '\(value)': \(response.status.code)")
                    #expect(response.headers[.wwwAuthenticate] != nil)
                    ServerHarness.expectError(response, .unauthorized, mentions: nil, "\(route) with '\(value)'")
                }
                // Either right one.
                for token in [Self.alpha, Self.beta] {
                    let response = try await client.execute(
                        uri: route.path, method: route.method, headers: [.authorization: "Bearer \(token)"], body: body)
                    #expect((200..<300).contains(response.status.code), "\(route) with a valid token: \(response.status.code) \(ServerHarness.text(response).prefix(200))")
                }
            }
            // /healthz needs nothing (and a wrong token does not hurt it).
            let health = try await client.execute(uri: "/healthz", method: .get, headers: [:], body: nil)
            #expect(health.status == .ok)
            let healthWrong = try await client.execute(uri: "/healthz", method: .get, headers: [.authorization: "Bearer nope"], body: nil)
            #expect(healthWrong.status == .ok)
            // The live page's files hold no data: served without a token, and the page
            // knows it must ask for one.
            for path in ["/", "/assets/app.js", "/assets/app.css"] {
                let page = try await client.execute(uri: path, method: .get, headers: [:], body: nil)
                #expect(page.status == .ok, "\(path) without a token: \(page.status.code)")
            }
            let page = try await client.execute(uri: "/", method: .get, headers: [:], body: nil)
            #expect(ServerHarness.text(page).contains(#"data-auth="required""#))
            // A token in Sec-WebSocket-Protocol counts only on a WebSocket upgrade.
            let protocolOnly = try await client.execute(
                uri: "/stats/current", method: .get, headers: [.secWebSocketProtocol: Self.subprotocol(Self.alpha)], body: nil)
            #expect(protocolOnly.status == .unauthorized)
            let otherUpgrade = try await client.execute(
                uri: "/metrics", method: .get,
                headers: [.upgrade: "websocket", .secWebSocketProtocol: Self.subprotocol(Self.alpha)], body: nil)
            #expect(otherUpgrade.status == .unauthorized, "a subprotocol token counts on /stats/stream only")
            // An unknown path is not revealed without a token; with one it is a 404.
            let unknown = try await client.execute(uri: "/nope", method: .get, headers: [:], body: nil)
            #expect(unknown.status == .unauthorized)
            let unknownAuthorized = try await client.execute(uri: "/nope", method: .get, headers: [.authorization: "Bearer \(Self.alpha)"], body: nil)
            #expect(unknownAuthorized.status == .notFound)
        }
    }

    /// Without `--enable-debug-inject` the route does not exist, token or not.
    @Test func debugInjectIsAbsentWithoutTheFlag() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-auth")
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = TrafficServer.Options()
        options.authTokens = [Self.alpha]
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second, options: options)
        try await server.application.test(.router) { client in
            let body = ByteBuffer(string: #"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":1200}"#)
            let authorized = try await client.execute(
                uri: "/debug/inject", method: .post, headers: [.authorization: "Bearer \(Self.alpha)"], body: body)
            #expect(authorized.status == .notFound)
            let anonymous = try await client.execute(uri: "/debug/inject", method: .post, headers: [:], body: body)
            #expect(anonymous.status == .unauthorized)
        }
    }

    /// The upgrade to `/stats/stream`: refused with 401 without a valid token; with one it
    /// upgrades and windows arrive.
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func webSocketUpgradeNeedsAValidToken() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-auth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await Self.server(in: dir)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            try await ServerHarness.waitUntil("the replay") { server.state.engine.status == .replayed }
            for (label, headers) in [("no token", [String]()), ("a wrong token", ["Authorization: Bearer wrong"]),
                                      ("a prefix of a token", ["Authorization: Bearer \(Self.alpha.prefix(5))"])] {
                let socket = try RawSocket(port: port)
                let answer = try await socket.upgraded(path: "/stats/stream", port: port, headers: headers)
                #expect(answer.status == 401, "upgrade with \(label): \(answer.head.split(separator: "\r\n").first ?? "no answer")")
                #expect(answer.head.lowercased().contains("www-authenticate: bearer"), "upgrade with \(label): \(answer.head)")
            }
            // The browser's way (a token in the subprotocol list): a wrong one is refused...
            for offered in ["trafficmon, \(Self.subprotocol("wrong"))", Self.subprotocol(String(Self.alpha.dropLast())), "trafficmon, bearer.!!!"] {
                let socket = try RawSocket(port: port)
                let answer = try await socket.upgraded(path: "/stats/stream", port: port, headers: ["Sec-WebSocket-Protocol: \(offered)"])
                #expect(answer.status == 401, "upgrade offering '\(offered)': \(answer.head.split(separator: "\r\n").first ?? "no answer")")
            }
            // ...a right one upgrades, and the server picks "trafficmon" (a browser fails a
            // connection whose offered subprotocols the server ignores).
            let browserLike = try RawSocket(port: port)
            let chosen = try await browserLike.upgraded(
                path: "/stats/stream", port: port, headers: ["Sec-WebSocket-Protocol: trafficmon, \(Self.subprotocol(Self.beta))"])
            #expect(chosen.status == 101, "upgrade with the token as a subprotocol: \(chosen.head)")
            #expect(chosen.head.lowercased().contains("sec-websocket-protocol: trafficmon\r\n"), "\(chosen.head)")
            browserLike.disconnect()
            try await ServerHarness.waitUntil("the browser-like client to leave") { server.hub.clientCount == 0 }
            // The WebSocket client refuses too, without a token.
            await #expect(throws: WebSocketClientError.webSocketUpgradeFailed) {
                try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/stats/stream", logger: ServerHarness.logger) { _, _, _ in }
            }
            // A right token: upgraded, and a window arrives (from an inject).
            let raw = try RawSocket(port: port)
            let accepted = try await raw.upgraded(path: "/stats/stream", port: port, headers: ["Authorization: Bearer \(Self.beta)"])
            #expect(accepted.status == 101, "upgrade with a valid token: \(accepted.head)")
            // Leave at once, with nothing unread (a reset connection is not let go: see StreamWebSocketTests).
            raw.disconnect()
            try await ServerHarness.waitUntil("the raw client to leave") { server.hub.clientCount == 0 }
            let collector = WSCollector<WindowRecord>()
            let stop = StopFlag()
            let listener = Task {
                try await StreamWebSocketTests.listen(
                    port: port, into: collector, stop: stop, headers: [.authorization: "Bearer \(Self.alpha)"])
            }
            defer { stop.set(); listener.cancel() }
            try await ServerHarness.waitUntil("the subscriber") { server.hub.clientCount == 1 }
            ServerHarness.inject(server, clientIndex: 1, size: 777)
            try await ServerHarness.waitUntil("a window on the stream", timeout: .seconds(10)) { collector.count >= 1 }
            #expect(collector.all.first?.bytes == 777)
            stop.set()
            _ = try? await listener.value
        }
    }

    /// `bearer.<base64url(token)>`, as the live page offers it.
    static func subprotocol(_ token: String) -> String {
        let base64 = Data(token.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return "bearer." + base64
    }

    /// A token followed by NUL bytes is not the token.
    @Test func aTokenWithTrailingNULsIsRefusedOverHTTP() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-auth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await Self.server(in: dir)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            let socket = try RawSocket(port: port)
            let nuls = String(repeating: "\u{0}", count: 256)
            socket.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(Self.alpha)\(nuls)\r\nConnection: close\r\n\r\n")
            let answer = String(decoding: try await socket.drained(quiet: 2, limit: 10).bytes, as: UTF8.self)
            let status = answer.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
            #expect(status != 200, "a token plus 256 NUL bytes was accepted: \(answer.prefix(60))")
        }
    }
}

/// `BearerAuthMiddleware.matches`: the constant-time comparison on its own.
@Suite struct AuthConstantTimeCompareTests {
    static func matches(_ offered: String, _ tokens: [String]) -> Bool {
        BearerAuthMiddleware<BasicRequestContext>.matches(Array(offered.utf8), any: tokens.map { Array($0.utf8) })
    }

    static func matches(_ offered: [UInt8], _ tokens: [String]) -> Bool {
        BearerAuthMiddleware<BasicRequestContext>.matches(offered, any: tokens.map { Array($0.utf8) })
    }

    @Test func exactTokensMatch() {
        #expect(Self.matches("s3cret", ["s3cret"]))
        #expect(Self.matches("two", ["one", "two", "three"]))
        #expect(Self.matches("one", ["one", "two", "three"]))
    }

    @Test func everythingElseDoesNot() {
        let tokens = ["s3cret-token", "other"]
        for offered in ["", "s", "s3cret", "s3cret-toke", "s3cret-token ", "s3cret-tokenx", "s3cret-token-s3cret-token",
                        "S3CRET-TOKEN", "x3cret-token", "s3cret-tokeN", "othe", "others", "s3cret-tokenother"] {
            #expect(!Self.matches(offered, tokens), "'\(offered)' matched")
        }
        #expect(!Self.matches("anything", []))
        #expect(!Self.matches("", []))
        // A longer token does not match its prefix, nor the prefix the token.
        #expect(!Self.matches("abc", ["abcd"]))
        #expect(!Self.matches("abcd", ["abc"]))
    }

    /// The lengths are compared as well as the bytes: a token padded with NUL bytes is a
    /// different token, whatever the padding's length (256 is where an 8-bit length
    /// difference wraps to 0).
    @Test(arguments: [1, 255, 256, 512, 1024])
    func paddingWithNULsDoesNotMatch(padding: Int) {
        let token = "s3cret-token"
        let paddedOffer = Self.matches(Array(token.utf8) + [UInt8](repeating: 0, count: padding), [token])
        #expect(!paddedOffer, "'\(token)' followed by \(padding) NUL bytes matched '\(token)'")
        let paddedToken = Self.matches(Array(token.utf8), [token + String(repeating: "\u{0}", count: padding)])
        #expect(!paddedToken, "'\(token)' matched a configured token of '\(token)' plus \(padding) NUL bytes")
    }
}
