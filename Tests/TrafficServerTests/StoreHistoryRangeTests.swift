import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficStore
import TrafficTestSupport

/// `GET /stats/history?since=&until=`: RFC 3339 or Unix seconds, read from SQLite when the
/// range reaches back before the memory ring (here only 3 windows long).
@Suite struct StoreHistoryRangeTests {
    /// 2020-09-13T12:26:40Z: ten stored windows of 1 s from here, long before the capture.
    static let old: Int64 = 1_600_000_000 * ServerHarness.second

    struct Setup {
        var server: TrafficServer
        var store: WindowStore
        var stored: [WindowRecord]
        var replayStarts: [Int64]
    }

    static func setup(in dir: URL) async throws -> Setup {
        let store = try WindowStore(path: dir.appendingPathComponent("h.sqlite").path)
        let stored = (0..<10).map { ServerHarness.record(start: old + Int64($0) * ServerHarness.second) }
        try await store.save(stored)
        // A replay of 6 s of packets (windows of 1 s) after them.
        let traffic = SyntheticTraffic(packets: 600, clients: 20, seconds: 6, seed: 11, windowLength: ServerHarness.second)
        let capture = try ServerHarness.write(traffic, in: dir)
        var options = TrafficServer.Options()
        options.store = store
        let server = try await ServerHarness.server(source: try .file(capture), windowLength: ServerHarness.second, historySize: 3, options: options)
        return Setup(server: server, store: store, stored: stored, replayStarts: traffic.truth.windowStarts.sorted())
    }

    @Test func rangesOlderThanTheRingComeFromSQLite() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-range")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try await Self.setup(in: dir)
        let stored = s.stored
        let total = stored.count + s.replayStarts.count
        try await s.server.application.test(.router) { client in
            try await ServerHarness.waitUntil("the replay and its windows in SQLite") {
                let count = try await s.store.count()
                return s.server.state.engine.status == .replayed && count == total
            }
            // The ring holds the 3 newest windows only.
            let ring = try ServerHarness.decodeHistory(try await ServerHarness.get(client, "/stats/history?limit=10000"))
            #expect(ring.map(\.start) == Array(s.replayStarts.suffix(3)))

            // RFC 3339, Z and offset forms (the "+" percent-encoded, as a URL needs).
            let cases: [(String, [WindowRecord])] = [
                ("since=2020-09-13T12:26:42Z&until=2020-09-13T12:26:45Z", Array(stored[2..<5])),
                ("since=2020-09-13T13:26:42%2B01:00&until=2020-09-13T13:26:45%2B01:00", Array(stored[2..<5])),
                ("since=2020-09-13T12:26:41.5Z&until=2020-09-13T12:26:45Z", Array(stored[2..<5])),
                // Unix seconds, whole and fractional.
                ("since=1600000002&until=1600000005", Array(stored[2..<5])),
                ("since=1600000001.5&until=1600000005", Array(stored[2..<5])),
                // until alone: everything before it (default limit 10).
                ("until=1600000003", Array(stored[0..<3])),
                // More match than the limit: the newest of them.
                ("since=1600000000&until=1600000010&limit=4", Array(stored[6..<10])),
                // Before anything stored.
                ("since=1500000000&until=1500000010", []),
            ]
            for (query, expected) in cases {
                let response = try await ServerHarness.get(client, "/stats/history?\(query)")
                #expect(response.status == .ok, "\(query): \(ServerHarness.text(response))")
                let windows = try ServerHarness.decodeHistory(response)
                #expect(windows == expected, "\(query): got starts \(windows.map(\.start)), expected \(expected.map(\.start))")
            }

            // since alone, older than the ring: the old windows and every replayed one,
            // including those the ring has dropped.
            let all = try ServerHarness.decodeHistory(try await ServerHarness.get(client, "/stats/history?since=1600000008&limit=10000"))
            #expect(all.map(\.start) == stored[8...].map(\.start) + s.replayStarts)
            #expect(Array(all.prefix(2)) == Array(stored[8...]))
            #expect(Array(all.suffix(3)) == ring)

            // since inside the ring: the ring's windows.
            let recent = s.replayStarts.suffix(2).first!
            let inRing = try ServerHarness.decodeHistory(
                try await ServerHarness.get(client, "/stats/history?since=\(Timestamp.rfc3339(recent))&limit=10000"))
            #expect(inRing == Array(ring.suffix(2)))
        }
    }

    @Test func badTimesAre400WithAJSONError() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-range")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try await Self.setup(in: dir)
        try await s.server.application.test(.router) { client in
            let bad = [
                "since=yesterday", "until=yesterday", "since=", "since=-5", "since=1e9", "since=NaN",
                "since=2026-13-01T00:00:00Z", "since=2026-11-25T10:00:00", "since=2026-11-25T25:00:00Z",
                "since=99999999999", "since=1600000005&until=1600000002", "since=1600000005&until=1600000005",
                "since=1600000001&until=1600000005&limit=0",
            ]
            for query in bad {
                let response = try await ServerHarness.get(client, "/stats/history?\(query)")
                #expect(response.status == .badRequest, "\(query) gave \(response.status.code)")
                ServerHarness.expectError(response, .badRequest, mentions: nil, query)
            }
        }
    }

    /// A window's JSON is rendered once when it closes: `/stats/history` (from memory), a
    /// range read back from SQLite, and the `record` column of its row hold the same bytes.
    @Test func historyAndStoreServeTheBytesRenderedOnce() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-range")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try await Self.setup(in: dir)
        let total = s.stored.count + s.replayStarts.count
        try await s.server.application.test(.router) { client in
            try await ServerHarness.waitUntil("the replay and its windows in SQLite") {
                let count = try await s.store.count()
                return s.server.state.engine.status == .replayed && count == total
            }
            let first = try #require(s.replayStarts.suffix(3).first)
            let rows = try await ServerHarness.sqlite(s.store.path, "SELECT record FROM window WHERE start >= \(first) ORDER BY start")
            let expected = "{\"windows\":[" + rows.split(separator: "\n").joined(separator: ",") + "]}"
            #expect(ServerHarness.text(try await ServerHarness.get(client, "/stats/history?limit=3")) == expected)
            let since = Double(first) / 1e9
            #expect(ServerHarness.text(try await ServerHarness.get(client, "/stats/history?since=\(since)&limit=3")) == expected)
            // Older windows come from SQLite, rendered anew from their rows: the same bytes
            // for rows this version wrote.
            let old = try await ServerHarness.sqlite(s.store.path, "SELECT record FROM window WHERE start < \(Self.old + 2 * ServerHarness.second) ORDER BY start")
            #expect(ServerHarness.text(try await ServerHarness.get(client, "/stats/history?until=\(Self.old / ServerHarness.second + 2)"))
                == "{\"windows\":[" + old.split(separator: "\n").joined(separator: ",") + "]}")
        }
    }
}
