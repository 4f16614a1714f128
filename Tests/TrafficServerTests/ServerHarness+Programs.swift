import Foundation
import Testing
import TrafficTestSupport

/// The external programs the server suites read their results with (`sqlite3`, `openssl`),
/// run off the cooperative pool (a blocked pool thread would stall the in-process servers)
/// by `TestProcess.run(program:)`, as `promtool` and `gunzip` are.
///
/// ```swift
/// let count = try await ServerHarness.sqlite(db, "SELECT count(*) FROM window")
/// ```
extension ServerHarness {
    /// `sqlite3 db sql`, trimmed stdout; records an issue when sqlite3 fails.
    static func sqlite(_ db: String, _ sql: String) async throws -> String {
        let result = try await TestProcess.run(program: "sqlite3", [db, sql])
        #expect(result.status == 0, "sqlite3 \(sql) failed: \(result.stderr)")
        return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A self-signed certificate and key for localhost / 127.0.0.1, made by openssl.
    static func selfSignedCertificate(in directory: URL) async throws -> (cert: String, key: String) {
        let cert = directory.appendingPathComponent("c.pem").path
        let key = directory.appendingPathComponent("k.pem").path
        let result = try await TestProcess.run(program: "openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        guard result.status == 0 else { throw TestProcess.Failure("openssl made no certificate: \(result.stderr)") }
        return (cert, key)
    }
}
