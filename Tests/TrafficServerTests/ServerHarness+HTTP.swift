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

    /// The body as a JSON object (`nil`: JSON, but not an object).
    static func object(_ response: TestResponse) throws -> [String: Any]? {
        try JSONSerialization.jsonObject(with: Data(bytes(response))) as? [String: Any]
    }

    /// Checks the status, that the body is exactly `{"error": "<sentence>"}` as JSON,
    /// and that the sentence mentions `mentions` (case-insensitive); returns the sentence.
    @discardableResult
    static func expectError(
        _ response: TestResponse, _ status: HTTPResponse.Status, mentions: String?, _ what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> String? {
        #expect(response.status == status, "\(what): status \(response.status.code), body \(ServerHarness.text(response))", sourceLocation: sourceLocation)
        #expect(response.status.code < 500, "\(what) made a 5xx", sourceLocation: sourceLocation)
        #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, "\(what): content type \(response.headers[.contentType] ?? "none")", sourceLocation: sourceLocation)
        guard let dictionary = try? object(response), dictionary.count == 1, let sentence = dictionary["error"] as? String else {
            Issue.record("\(what): body is not {\"error\": \"...\"}: \(ServerHarness.text(response))", sourceLocation: sourceLocation)
            return nil
        }
        #expect(!sentence.isEmpty, "\(what): empty error", sourceLocation: sourceLocation)
        if let mentions {
            #expect(sentence.lowercased().contains(mentions.lowercased()), "\(what): '\(sentence)' does not mention \(mentions)", sourceLocation: sourceLocation)
        }
        return sentence
    }

    /// `/metrics` as parsed samples (Prometheus text format).
    static func metrics(_ client: some TestClientProtocol) async throws -> PromExposition {
        let response = try await get(client, "/metrics")
        #expect(response.status == .ok)
        return try PromExposition.parse(text(response))
    }

    private struct History: Decodable {
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
