import Foundation
import Testing
import TrafficTestSupport

/// The external programs the server suites check against (`promtool`, `gunzip`, `sqlite3`,
/// `openssl`).
///
/// ```swift
/// let count = try await ServerHarness.sqlite(db, "SELECT count(*) FROM window")
/// ```
extension ServerHarness {
    /// Runs `program` (a path, or a name searched on PATH) to completion, off the cooperative
    /// pool (a blocked pool thread would stall the in-process servers); `input`, when given,
    /// goes to its stdin.
    static func run(
        _ program: String, _ arguments: [String], input: Data? = nil, timeout: TimeInterval = 60
    ) async throws -> TestProcess.Result {
        try await TestProcess.run(program: program, arguments, input: input, timeout: timeout)
    }

    /// The first existing path of `name` on PATH (or the usual system directories).
    static func which(_ name: String) -> String? { TestProcess.which(name) }

    /// `sqlite3 db sql`, trimmed stdout; records an issue when sqlite3 fails.
    static func sqlite(_ db: String, _ sql: String) async throws -> String {
        let result = try await run("sqlite3", [db, sql])
        #expect(result.status == 0, "sqlite3 \(sql) failed: \(result.stderr)")
        return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A self-signed certificate and key for localhost / 127.0.0.1, made by openssl.
    static func selfSignedCertificate(in directory: URL) async throws -> (cert: String, key: String) {
        let cert = directory.appendingPathComponent("c.pem").path
        let key = directory.appendingPathComponent("k.pem").path
        let result = try await run("openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        guard result.status == 0 else { throw TestProcess.Failure("openssl made no certificate: \(result.stderr)") }
        return (cert, key)
    }
}
