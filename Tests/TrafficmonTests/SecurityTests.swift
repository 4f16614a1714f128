import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `serve`'s security options end to end: bearer tokens, HTTPS, the warning for an open
/// listener without authentication, and dropping root with `--user`.
@Suite struct SecurityTests {
    static func smallCapture(in dir: URL) throws -> URL {
        try PTools.capture(SyntheticTraffic(packets: 300, clients: 10, seconds: 3, seed: 51, windowLength: PTools.second), in: dir)
    }

    /// A self-signed certificate and key for localhost / 127.0.0.1, made by openssl.
    static func certificate(in dir: URL) async throws -> (cert: String, key: String) {
        let cert = dir.appendingPathComponent("c.pem").path
        let key = dir.appendingPathComponent("k.pem").path
        let result = try await PTools.run("openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        guard result.status == 0 else { throw PTools.Failure("openssl: \(result.stderr)") }
        return (cert, key)
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func tokensGuardEveryDataRoute() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-sec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokens = dir.appendingPathComponent("tokens").path
        try "# ops\nfirst-token-111\nsecond-token-222\n".write(toFile: tokens, atomically: true, encoding: .utf8)
        let serve = try ServerProcess.serve(
            ["--read", try Self.smallCapture(in: dir).path, "--no-db", "--auth-token-file", tokens, "--enable-debug-inject"] + PTools.localNets,
            in: dir)
        defer { serve.stop() }
        _ = try await serve.waitUntilServing()
        let inject = #"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":1200}"#
        for (path, body) in [("/metrics", ""), ("/stats/current", ""), ("/stats/history?limit=3", ""),
                             ("/stats/capture", ""), ("/readyz", ""), ("/debug/inject", inject)] {
            // A GET, or a POST of the JSON body.
            func send(_ headers: [String: String] = [:]) async throws -> TestHTTP.Response {
                if body.isEmpty { return try await serve.get(path, headers: headers) }
                return try await serve.request(
                    "POST", path, headers: headers.merging(["Content-Type": "application/json"]) { $1 }, body: Data(body.utf8))
            }
            let none = try await send()
            #expect(none.status == 401, "\(path) without a token: \(none.status)")
            #expect(none.head.lowercased().contains("www-authenticate: bearer"), "\(path): \(none.head)")
            let wrong = try await send(["Authorization": "Bearer first-token-11"])
            #expect(wrong.status == 401, "\(path) with a wrong token: \(wrong.status)")
            for token in ["first-token-111", "second-token-222"] {
                let right = try await send(["Authorization": "Bearer \(token)"])
                #expect((200..<300).contains(right.status), "\(path) with \(token): \(right.status) \(right.text.prefix(100))")
            }
        }
        #expect(try await serve.get("/healthz").status == 200)
        // The live page's files hold no data: they load without a token (the page asks for one).
        for path in ["/", "/assets/app.js", "/assets/app.css"] {
            #expect(try await serve.get(path).status == 200, "\(path) without a token")
        }
        // The WebSocket upgrade: refused with 401 without a token.
        let upgrade = ["Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                       "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="]
        let ws = try await serve.get("/stats/stream", headers: upgrade)
        #expect(ws.status == 401, "WebSocket upgrade without a token: \(ws.status)")
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func badTokenFilesAreOneClearLine() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-sec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = try Self.smallCapture(in: dir)
        let empty = dir.appendingPathComponent("empty-tokens").path
        try "# no tokens yet\n\n".write(toFile: empty, atomically: true, encoding: .utf8)
        for file in [dir.appendingPathComponent("missing").path, empty] {
            let result = try await PTools.trafficmon([
                "serve", "--read", capture.path, "--no-db", "--listen", "127.0.0.1:\(try TestProcess.freePort())", "--auth-token-file", file,
            ])
            #expect(result.status != 0)
            let lines = TestProcess.lines(result.stderr)
            #expect(lines.count == 1 && lines[0].hasPrefix("trafficmon: ") && lines[0].contains(file), "stderr: \(result.stderr)")
        }
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func servesHTTPSWithASelfSignedCertificate() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-sec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try await Self.certificate(in: dir)
        let port = try TestProcess.freePort()
        let serve = try ServerProcess.serve(
            ["--read", try Self.smallCapture(in: dir).path, "--no-db", "--tls-cert", cert, "--tls-key", key] + PTools.localNets,
            port: port, in: dir, tls: .insecure)
        defer { serve.stop() }
        _ = try await serve.waitUntilServing()
        let insecure = try await TestHTTP.get("https://127.0.0.1:\(port)/healthz", tls: .insecure)
        #expect(insecure.status == 200 && insecure.text == #"{"status":"ok"}"#)
        // Verified against the test's own certificate.
        let verified = try await TestHTTP.get("https://localhost:\(port)/stats/history?limit=1", tls: .trusting(certificate: cert))
        #expect(verified.status == 200, "https with the test's certificate: \(verified)")
        // Plain HTTP on the same port gets no HTTP answer.
        let plain = try? await TestHTTP.get("http://127.0.0.1:\(port)/healthz")
        #expect(plain?.status != 200, "plain http answered \(plain?.status ?? 0)")
        #expect(plain?.text.contains("\"status\"") != true)
        #expect(serve.stderr.contains("https://"), "the start line should say https: \(serve.stderr)")
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func badCertificateOrKeyIsOneClearLine() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-sec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try await Self.certificate(in: dir)
        let capture = try Self.smallCapture(in: dir)
        let notPEM = dir.appendingPathComponent("key.txt").path
        try "this is not a PEM private key\n".write(toFile: notPEM, atomically: true, encoding: .utf8)
        let cases: [(String, String, String)] = [
            (dir.appendingPathComponent("missing.pem").path, key, "--tls-cert"),
            (cert, notPEM, "--tls-key"),
            (cert, dir.appendingPathComponent("missing-key.pem").path, "--tls-key"),
            (key, key, "--tls-cert"),  // a key where the certificate should be
        ]
        for (c, k, flag) in cases {
            let result = try await PTools.trafficmon([
                "serve", "--read", capture.path, "--no-db", "--listen", "127.0.0.1:\(try TestProcess.freePort())", "--tls-cert", c, "--tls-key", k,
            ])
            #expect(result.status != 0, "--tls-cert \(c) --tls-key \(k) exited 0")
            let lines = TestProcess.lines(result.stderr)
            #expect(lines.count == 1, "--tls-cert \(c) --tls-key \(k): stderr \(result.stderr)")
            #expect(lines.first?.hasPrefix("trafficmon: ") == true && lines.first?.contains(flag) == true, "stderr: \(result.stderr)")
        }
        // One without the other.
        let half = try await PTools.trafficmon(["serve", "--read", capture.path, "--no-db", "--tls-cert", cert])
        #expect(half.status != 0)
        #expect(TestProcess.lines(half.stderr).count == 1, "stderr: \(half.stderr)")
    }

    /// `--listen 0.0.0.0:P` without a token file warns about authentication; with one,
    /// or on loopback, it does not.
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func anOpenListenerWithoutAuthenticationWarns() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-sec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = try Self.smallCapture(in: dir)
        let tokens = dir.appendingPathComponent("tokens").path
        try "only-token\n".write(toFile: tokens, atomically: true, encoding: .utf8)
        let cases: [(listen: String, auth: Bool, warns: Bool)] = [
            ("0.0.0.0", false, true), ("0.0.0.0", true, false), ("127.0.0.1", false, false),
        ]
        for c in cases {
            let port = try TestProcess.freePort()
            let serve = try ServerProcess.serve(
                ["--read", capture.path, "--no-db", "--listen", "\(c.listen):\(port)"] + (c.auth ? ["--auth-token-file", tokens] : [])
                    + PTools.localNets,
                port: port, in: dir)
            defer { serve.stop() }
            _ = try await serve.waitUntilServing()
            let warning = TestProcess.lines(serve.stderr).filter { $0.lowercased().contains("authentication") }
            if c.warns {
                #expect(warning.count == 1, "--listen \(c.listen):\(port) without a token file: \(serve.stderr)")
                #expect(warning.first?.lowercased().contains("warning") == true, "not a warning: \(warning)")
            } else {
                #expect(warning.isEmpty, "--listen \(c.listen) auth \(c.auth): \(serve.stderr)")
            }
        }
    }

    /// Started as root with `--user nobody`: it keeps serving, as uid/gid 65534, and the
    /// database it opens after the switch belongs to nobody.
    @Test(.enabled(if: getuid() == 0, "needs root"), .timeLimit(.minutes(TestTimeLimit.minutes))) func dropsRootToUserNobody() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-sec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let dbDir = dir.appendingPathComponent("db")
        try FileManager.default.createDirectory(at: dbDir, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.ownerAccountID: 65534, .groupOwnerAccountID: 65534], ofItemAtPath: dbDir.path)
        // The capture is root-only: only the process that opens it before the switch can read it.
        let capture = try Self.smallCapture(in: dir)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: capture.path)
        let db = dbDir.appendingPathComponent("t.sqlite").path
        let serve = try ServerProcess.serve(
            ["--read", capture.path, "--db", db, "--window", "1s", "--user", "nobody"] + PTools.localNets, in: dir)
        defer { serve.stop() }
        let history = try await serve.waitForStableHistory()
        #expect(!history.isEmpty)
        let status = try String(contentsOfFile: "/proc/\(serve.pid)/status", encoding: .utf8)
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }.map { $0.split(whereSeparator: \.isWhitespace).dropFirst().map(String.init) }
        let gid = status.split(separator: "\n").first { $0.hasPrefix("Gid:") }.map { $0.split(whereSeparator: \.isWhitespace).dropFirst().map(String.init) }
        #expect(uid == ["65534", "65534", "65534", "65534"], "Uid line: \(uid ?? [])")
        // Every thread, not only those that happened to make the switch.
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(serve.pid)/task").sorted()
        let rootThreads = tasks.filter { tid in
            let text = (try? String(contentsOfFile: "/proc/\(serve.pid)/task/\(tid)/status", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").contains { $0.hasPrefix("Uid:") && $0.split(whereSeparator: \.isWhitespace).dropFirst().contains("0") }
        }
        #expect(rootThreads.isEmpty, "threads still running as root: \(rootThreads) of \(tasks.count) (the main thread is \(serve.pid))")
        #expect(gid == ["65534", "65534", "65534", "65534"], "Gid line: \(gid ?? [])")
        let owner = try FileManager.default.attributesOfItem(atPath: db)[.ownerAccountID] as? NSNumber
        #expect(owner?.intValue == 65534, "the database belongs to uid \(owner?.intValue ?? -1)")
        #expect(try await serve.get("/metrics").status == 200)
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func anUnknownUserIsOneClearLine() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-sec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try await PTools.trafficmon([
            "serve", "--read", try Self.smallCapture(in: dir).path, "--no-db", "--listen", "127.0.0.1:\(try TestProcess.freePort())",
            "--user", "trafficmon-nosuchuser",
        ])
        #expect(result.status != 0)
        let lines = TestProcess.lines(result.stderr)
        #expect(lines.count == 1 && lines[0].hasPrefix("trafficmon: ") && lines[0].contains("trafficmon-nosuchuser"), "stderr: \(result.stderr)")
    }
}
