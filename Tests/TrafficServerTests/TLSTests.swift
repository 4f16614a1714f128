import Foundation
import Hummingbird
import HummingbirdTLS
import HummingbirdTesting
import HummingbirdWSTesting
import Testing
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficTestSupport
import WSClient

/// HTTPS (`--tls-cert`/`--tls-key`) in process, with a self-signed certificate openssl makes.
@Suite struct TLSTests {
    static func tls(cert: String, key: String) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(cert)
        let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        return TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func servesHTTPSAndWSSWithTheCertificate() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-tls")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try await ServerHarness.selfSignedCertificate(in: dir)
        var options = TrafficServer.Options()
        options.tls = try Self.tls(cert: cert, key: key)
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second, options: options)
        try await server.application.test(.ahc(.https)) { client in
            let port = try #require(client.port)
            // HTTPS through the test client (no verification)...
            let health = try await client.execute(uri: "/healthz", method: .get, headers: [:], body: nil)
            #expect(health.status == .ok)
            // ...and from outside, verifying the chain against the test's own certificate.
            let verified = try await TestHTTP.get("https://localhost:\(port)/healthz", tls: .trusting(certificate: cert))
            #expect(verified.status == 200 && verified.text == #"{"status":"ok"}"#, "https with the test's certificate: \(verified)")
            let insecure = try await TestHTTP.get("https://127.0.0.1:\(port)/stats/history", tls: .insecure)
            #expect(insecure.status == 200)
            // Plain HTTP to the same port gets no HTTP answer.
            let plain = try? await TestHTTP.get("http://127.0.0.1:\(port)/healthz")
            #expect(plain?.status != 200, "plain http on the TLS port answered \(plain?.status ?? 0)")
            #expect(plain?.text.contains("\"status\"") != true)

            // wss:// with the certificate as the only trusted root: a window arrives.
            var clientTLS = TLSConfiguration.makeClientConfiguration()
            clientTLS.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(cert))
            let collector = WSCollector<WindowRecord>()
            let listener = Task {
                try await WebSocketClient.connect(
                    url: "wss://localhost:\(port)/stats/stream", tlsConfiguration: clientTLS, logger: ServerHarness.logger
                ) { inbound, outbound, _ in
                    for try await message in inbound.messages(maxSize: 1 << 24) {
                        guard case .text(let text) = message else { continue }
                        collector.append(try JSONDecoder().decode(WindowRecord.self, from: Data(text.utf8)))
                        break
                    }
                    try? await outbound.close(.normalClosure, reason: nil)
                }
            }
            defer { listener.cancel() }
            try await ServerHarness.waitUntil("the wss subscriber") { server.hub.clientCount == 1 }
            ServerHarness.inject(server, clientIndex: 3, size: 555)
            try await ServerHarness.waitUntil("a window over wss", timeout: .seconds(10)) { collector.count == 1 }
            #expect(collector.all.first?.bytes == 555)
            _ = try? await listener.value
        }
    }
}
