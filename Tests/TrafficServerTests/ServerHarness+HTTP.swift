import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TrafficCore
import TrafficTestSupport

/// Requests to a test server and their bodies read back.
///
/// ```swift
/// let history = try await ServerHarness.history(client, limit: 10)
/// ```
extension ServerHarness {
    static func get(_ client: some TestClientProtocol, _ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .get, headers: headers, body: nil)
    }

    static func text(_ response: TestResponse) -> String {
        String(decoding: response.body.readableBytesView, as: UTF8.self)
    }

    static func bytes(_ response: TestResponse) -> [UInt8] {
        Array(response.body.readableBytesView)
    }

    /// The `error` string of a `{"error":"..."}` body (nil when the body is not that).
    static func errorMessage(_ response: TestResponse) -> String? {
        let object = try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        return object?["error"] as? String
    }

    /// `/metrics` as parsed samples (Prometheus text format).
    static func metrics(_ client: some TestClientProtocol) async throws -> PromExposition {
        let response = try await get(client, "/metrics")
        #expect(response.status == .ok)
        return try PromExposition.parse(text(response))
    }

    struct History: Decodable {
        var windows: [WindowRecord]
    }

    /// A `/stats/history` body, decoded.
    static func decodeHistory(_ response: TestResponse) throws -> [WindowRecord] {
        try JSONDecoder().decode(History.self, from: Data(bytes(response))).windows
    }

    /// `/stats/history?limit=N`, decoded.
    static func history(_ client: some TestClientProtocol, limit: Int = 10_000) async throws -> [WindowRecord] {
        let response = try await get(client, "/stats/history?limit=\(limit)")
        #expect(response.status == .ok)
        return try decodeHistory(response)
    }

    /// `/stats/current`, decoded.
    static func current(_ client: some TestClientProtocol) async throws -> WindowRecord {
        let response = try await get(client, "/stats/current")
        #expect(response.status == .ok)
        return try JSONDecoder().decode(WindowRecord.self, from: Data(bytes(response)))
    }
}
