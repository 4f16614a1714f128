import Foundation
import Testing
import TrafficCore
import TrafficStore
import TrafficTestSupport

/// `WindowStore` on its own: what it writes (checked with the sqlite3 CLI, not with the
/// store), what it reads back, pruning, migrations, and the files it must refuse.
@Suite struct StoreWindowStoreTests {
    let t0: Int64 = 1_700_000_000 * ServerHarness.second

    @Test func recordsRoundTripFieldForFieldAcrossReopening() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-store")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.sqlite").path
        let records = (0..<12).map { ServerHarness.record(start: t0 + Int64($0) * ServerHarness.second, partial: $0 == 11) }
        do {
            let store = try WindowStore(path: path)
            // Two batches, out of order: the store orders by start.
            try await store.save(Array(records[6...]))
            try await store.save(Array(records[..<6]))
            #expect(try await store.count() == 12)
            #expect(try await store.recent(limit: 100) == records)
            #expect(try await store.recent(limit: 4) == Array(records.suffix(4)))
        }
        // A second store on the same file (a restart) reads the same.
        let reopened = try WindowStore(path: path)
        #expect(try await reopened.recent(limit: 100) == records)
        // sqlite3 sees one row per window, keyed by its start in nanoseconds, with the
        // record's own packet and byte totals.
        let rows = try await ServerHarness.sqlite(path, "SELECT start, \"end\", partial, packets, bytes FROM window ORDER BY start")
        let expected = records.map { "\($0.start)|\($0.end)|\($0.partial ? 1 : 0)|\($0.packets)|\($0.bytes)" }
        #expect(rows.components(separatedBy: "\n") == expected)
    }

    /// A row written before servers were listed (no `servers`, `other_servers`, `local`,
    /// `oversized`) still loads: its IP traffic is all in `other_servers`, so it is still
    /// conserved on both sides, and it is written back in today's shape.
    @Test func rowsFromBeforeServersWereListedStillLoad() async throws {
        let dir = try TestProcess.temporaryDirectory("store-old-rows")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.sqlite").path
        _ = try WindowStore(path: path)
        let old = #"{"start":"2023-11-14T22:13:20Z","end":"2023-11-14T22:13:25Z","partial":false,"packets":25,"bytes":16080,"in":{"packets":10,"bytes":900},"out":{"packets":12,"bytes":15000},"clients":[{"ip":"198.51.100.7","in":{"packets":10,"bytes":900},"out":{"packets":12,"bytes":15000},"services":[{"service":"TCP/443","direction":"in","packets":10,"bytes":900},{"service":"TCP/443","direction":"out","packets":12,"bytes":15000}]}],"other":{"packets":0,"bytes":0,"clients":0,"in":{"packets":0,"bytes":0},"out":{"packets":0,"bytes":0}},"non_ip":{"packets":3,"bytes":180},"malformed":{"packets":0,"bytes":0,"reasons":{}},"late_packets":0,"capture":{"received":25,"dropped":0,"kernel_dropped":0,"interface_dropped":0},"services":[{"service":"TCP/443","direction":"out","packets":12,"bytes":15000},{"service":"TCP/443","direction":"in","packets":10,"bytes":900}]}"#
        _ = try await ServerHarness.sqlite(path, """
            INSERT INTO window (start, "end", partial, packets, bytes, record) VALUES (\(t0), \(t0 + 5 * ServerHarness.second), 0, 25, 16080, '\(old)')
            """)
        let store = try WindowStore(path: path)
        let loaded = try await store.recent(limit: 10)
        let record = try #require(loaded.first)
        #expect(loaded.count == 1 && record.start == t0)
        #expect(record.clients.map(\.ip.description) == ["198.51.100.7"] && record.clients[0].local == false)
        #expect(record.servers.isEmpty)
        #expect(record.otherServers.in == record.in && record.otherServers.out == record.out)
        #expect(record.capture.oversized == 0)
        #expect(record.isConserved)
        try await store.save([record])
        let rewritten = try await ServerHarness.sqlite(path, "SELECT record FROM window")
        #expect(rewritten.contains(#""servers":[],"other_servers":{"packets":22,"bytes":15900,"servers":0"#))
        #expect(try await store.recent(limit: 10) == [record])
    }

    @Test func aRepeatedStartReplacesTheRow() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-store")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.sqlite").path
        let store = try WindowStore(path: path)
        let first = ServerHarness.record(start: t0, partial: true, seed: 1)
        let second = ServerHarness.record(start: t0, partial: false, seed: 2)
        try await store.save([first])
        try await store.save([second])
        #expect(try await store.recent(limit: 10) == [second])
        #expect(try await ServerHarness.sqlite(path, "SELECT COUNT(*) FROM window") == "1")
    }

    @Test func walModeAndTheMigrationTable() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-store")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.sqlite").path
        let store = try WindowStore(path: path)
        try await store.save([ServerHarness.record(start: t0)])
        #expect(try await ServerHarness.sqlite(path, "PRAGMA journal_mode") == "wal")
        #expect(try await ServerHarness.sqlite(path, "SELECT identifier FROM grdb_migrations ORDER BY identifier") == "v1")
        #expect(try await ServerHarness.sqlite(path, "PRAGMA integrity_check") == "ok")
        // Opening again does not apply the migration twice.
        _ = try WindowStore(path: path)
        #expect(try await ServerHarness.sqlite(path, "SELECT COUNT(*) FROM grdb_migrations") == "1")
    }

    @Test func rangeQueriesAreHalfOpenAndKeepTheNewest() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-store")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try WindowStore(path: dir.appendingPathComponent("w.sqlite").path)
        let records = (0..<10).map { ServerHarness.record(start: t0 + Int64($0) * ServerHarness.second) }
        try await store.save(records)
        let s = ServerHarness.second
        #expect(try await store.windows(since: t0 + 2 * s, until: t0 + 5 * s, limit: 100) == Array(records[2..<5]))
        #expect(try await store.windows(since: t0 + 2 * s + 1, until: t0 + 5 * s, limit: 100) == Array(records[3..<5]))
        #expect(try await store.windows(since: nil, until: t0 + 3 * s, limit: 100) == Array(records[0..<3]))
        #expect(try await store.windows(since: t0 + 7 * s, until: nil, limit: 100) == Array(records[7...]))
        // More match than the limit: the newest of them, oldest first.
        #expect(try await store.windows(since: t0, until: t0 + 8 * s, limit: 3) == Array(records[5..<8]))
        #expect(try await store.windows(since: t0 + 20 * s, until: nil, limit: 3).isEmpty)
    }

    @Test func pruneKeepsWindowsWithinTheRetentionOfTheNewest() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-store")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.sqlite").path
        let store = try WindowStore(path: path)
        #expect(try await store.prune(retention: 20 * ServerHarness.second) == 0)  // empty: nothing to do
        // 60 windows of 1 s; the newest starts at t0 + 59 s. Relative to it, 20 s keeps
        // the windows starting at t0 + 39 s ... t0 + 59 s (21 windows), whatever the wall clock.
        let records = (0..<60).map { ServerHarness.record(start: t0 + Int64($0) * ServerHarness.second) }
        try await store.save(records)
        let deleted = try await store.prune(retention: 20 * ServerHarness.second)
        #expect(deleted == 39)
        #expect(try await ServerHarness.sqlite(path, "SELECT COUNT(*), MIN(start), MAX(start) FROM window")
            == "21|\(t0 + 39 * ServerHarness.second)|\(t0 + 59 * ServerHarness.second)")
        #expect(try await store.recent(limit: 100) == Array(records[39...]))
        // Pruning again deletes nothing.
        #expect(try await store.prune(retention: 20 * ServerHarness.second) == 0)
    }

    @Test func aNewerSchemaIsRefusedAndTheFileLeftAlone() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-store")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.sqlite").path
        do {
            let store = try WindowStore(path: path)
            try await store.save([ServerHarness.record(start: t0)])
        }
        _ = try await ServerHarness.sqlite(path, "INSERT INTO grdb_migrations (identifier) VALUES ('v99')")
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let error = Self.openFailure(path)
        guard case .newerSchema(_, let found, _)? = error else {
            Issue.record("expected newerSchema, got \(String(describing: error))")
            return
        }
        #expect(found == "v99")
        #expect(error?.description.contains(path) == true)
        let after = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(after == before, "refusing the file changed it: \(before.count) -> \(after.count) bytes")
        #expect(try await ServerHarness.sqlite(path, "SELECT COUNT(*) FROM window") == "1")
    }

    @Test func aCorruptFileIsRefusedAndLeftAlone() throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-store")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.sqlite").path
        var rng = SplitMix64(seed: 99)
        let garbage = Data((0..<8192).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        try garbage.write(to: URL(fileURLWithPath: path))
        let error = Self.openFailure(path)
        guard case .corrupt? = error else {
            Issue.record("expected corrupt, got \(String(describing: error))")
            return
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == garbage)
    }

    @Test func aMissingDirectoryIsACannotOpen() throws {
        let path = "/nonexistent-\(UUID().uuidString)/w.sqlite"
        let error = Self.openFailure(path)
        guard case .cannotOpen? = error else {
            Issue.record("expected cannotOpen, got \(String(describing: error))")
            return
        }
    }

    /// The error opening `path` fails with; `nil` (and an issue) when it opens.
    static func openFailure(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> StoreError? {
        do {
            _ = try WindowStore(path: path)
            Issue.record("\(path) was opened", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    /// Another process holds the write lock (an open `BEGIN EXCLUSIVE` in sqlite3):
    /// opening must fail with `locked` (after the busy timeout), not succeed and then
    /// lose every write.
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aFileLockedByAnotherProcessIsRefused() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-store")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.sqlite").path
        do {
            let store = try WindowStore(path: path)
            try await store.save([ServerHarness.record(start: t0)])
        }
        let holder = try SQLiteLock(path: path)
        defer { holder.release() }
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            let store = try WindowStore(path: path)
            // If it opened, a write must not vanish silently either.
            do {
                try await store.save([ServerHarness.record(start: t0 + ServerHarness.second)])
                Issue.record("the store opened and wrote a file another process holds locked")
            } catch {
                Issue.record("WindowStore(path:) opened a locked file; the failure only came at the first write: \(error)")
            }
        } catch {
            guard case .locked = error else {
                Issue.record("expected locked, got \(error)")
                return
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }
}
