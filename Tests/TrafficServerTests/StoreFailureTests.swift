import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficStore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A database that fails (a full filesystem, a file removed under it) stops neither the
/// capture nor the server; the windows wait in memory and are written once it works again.
@Suite(.serialized) struct StoreFailureTests {
    /// Log lines a server writes, kept for the test to read.
    final class LogLines: @unchecked Sendable {
        private let lines = LockedValue<[String]>([])
        var all: [String] { lines.withLock { $0 } }
        func append(_ line: String) { lines.withLock { $0.append(line) } }

        var logger: Logger {
            Logger(label: "trafficmon-store-test") { _ in Handler(lines: self) }
        }

        struct Handler: LogHandler {
            let lines: LogLines
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .info
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) {
                lines.append("\(event.level) \(event.message)")
            }
        }
    }

    /// Mounts a `megabytes` tmpfs at `directory`. The tests need it (CI runs as root): when
    /// it cannot be mounted they fail, saying why, rather than pass without testing.
    static func mountTmpfs(at directory: URL, megabytes: Int) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        guard getuid() == 0 else {
            throw TestProcess.Failure("this test mounts a small tmpfs to fill it and needs root (CI runs as root); run it as root")
        }
        let result = try TestProcess.run(
            URL(fileURLWithPath: TestProcess.which("mount") ?? "/bin/mount"),
            ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", directory.path])
        guard result.status == 0 else {
            throw TestProcess.Failure("cannot mount a tmpfs at \(directory.path) (status \(result.status)): \(result.stderr)")
        }
    }

    static func unmount(_ directory: URL) {
        _ = try? TestProcess.run(URL(fileURLWithPath: TestProcess.which("umount") ?? "/bin/umount"), ["-l", directory.path])
    }

    /// Writes zeros to `url` until the filesystem is full.
    static func fill(_ url: URL) -> Int {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var total = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            total += n
        }
        // The last partial page too.
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, 512) }) > 0 { total += 512 }
        return total
    }

    /// A server over an empty replay (windows then come from injects, 1 s each, on the wall
    /// clock) that stores in `database`, logging into `lines`.
    static func server(database: String, lines: LogLines) async throws -> (TrafficServer, WindowStore) {
        let dir = try TestProcess.temporaryDirectory()
        let store = try WindowStore(path: database)
        var options = TrafficServer.Options()
        options.store = store
        let server = try await ServerHarness.server(
            source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second, top: 1000,
            options: options, logger: lines.logger)
        return (server, store)
    }

    /// 30 packets from distinct clients every 100 ms (records of some 300 clients a window).
    static func injector(_ server: TrafficServer) -> Task<Void, Never> {
        Task {
            var i = 0
            while !Task.isCancelled {
                for _ in 0..<30 {
                    ServerHarness.inject(server, clientIndex: i % 5000, size: 900)
                    i += 1
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Whether every window of the memory history is in the database.
    static func everyWindowStored(_ server: TrafficServer, _ store: WindowStore) async throws -> Bool {
        let memory = Set(server.state.history(limit: 10_000).map(\.start))
        let stored = Set(try await store.windows(since: nil, until: nil, limit: 100_000).map(\.start))
        return !memory.isEmpty && memory.isSubset(of: stored)
    }

    static func metric(_ server: TrafficServer, _ name: String) throws -> Double {
        let m = try PromExposition.parse(String(decoding: server.state.metrics.exposition(format: .prometheus), as: UTF8.self))
        return m.value(name) ?? -1
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aFullFilesystemKeepsServingAndWritesResumeWhenSpaceIsFreed() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-full")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fs = dir.appendingPathComponent("fs")
        try Self.mountTmpfs(at: fs, megabytes: 8)
        defer { Self.unmount(fs) }
        let lines = LogLines()
        let (server, store) = try await Self.server(database: fs.appendingPathComponent("t.sqlite").path, lines: lines)
        try await server.application.test(.router) { client in
            try await ServerHarness.waitUntil("the empty replay to end") { server.state.engine.status == .replayed }
            let injector = Self.injector(server)
            defer { injector.cancel() }
            try await ServerHarness.waitUntil("two windows stored") { try await store.count() >= 2 }

            // The disk fills up.
            let filler = fs.appendingPathComponent("filler")
            #expect(Self.fill(filler) > 0)
            try await ServerHarness.waitUntil("failed writes counted", timeout: .seconds(30)) {
                try Self.metric(server, "trafficmon_store_errors_total") >= 3
            }
            // Capture and serving go on, and the windows stay in memory.
            let closedWhileFull = try Self.metric(server, "trafficmon_windows_closed_total")
            try await ServerHarness.waitUntil("two more windows while the disk is full", timeout: .seconds(10)) {
                try Self.metric(server, "trafficmon_windows_closed_total") >= closedWhileFull + 2
            }
            #expect(try await ServerHarness.get(client, "/healthz").status == .ok)
            #expect(try await ServerHarness.get(client, "/stats/current").status == .ok)
            let metrics = try await ServerHarness.get(client, "/metrics")
            #expect(metrics.status == .ok)
            #expect(ServerHarness.text(metrics).contains("trafficmon_store_errors_total"))
            let history = try await ServerHarness.history(client)
            #expect(history.count >= 4)
            #expect(!(try await Self.everyWindowStored(server, store)), "windows were stored while the disk was full")
            // One error line however many failures (at most one a minute).
            let errorLines = lines.all.filter { $0.hasPrefix("error") && $0.contains("cannot write to the database") }
            #expect(errorLines.count == 1, "\(errorLines)")
            #expect(errorLines.first?.contains("kept in memory") == true)

            // Space comes back: every window waiting is written.
            try FileManager.default.removeItem(at: filler)
            try await ServerHarness.waitUntil("every window of the history in the database", timeout: .seconds(40)) {
                try await Self.everyWindowStored(server, store)
            }
            #expect(lines.all.contains { $0.contains("database writes resumed") }, "\(lines.all.suffix(5))")
            let errorsAfter = try Self.metric(server, "trafficmon_store_errors_total")
            try await Task.sleep(for: .seconds(2))
            #expect(try Self.metric(server, "trafficmon_store_errors_total") == errorsAfter, "writes still fail after space was freed")
            #expect(try Self.metric(server, "trafficmon_store_dropped_windows_total") == 0)
        }
    }

    /// The database file removed while open (SQLite alone would go on writing to the
    /// unlinked file): it is created anew with every window kept in memory.
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aRemovedDatabaseFileIsCreatedAnew() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-removed")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.sqlite").path
        let lines = LogLines()
        let (server, store) = try await Self.server(database: path, lines: lines)
        try await server.application.test(.router) { _ in
            try await ServerHarness.waitUntil("the empty replay to end") { server.state.engine.status == .replayed }
            let injector = Self.injector(server)
            defer { injector.cancel() }
            try await ServerHarness.waitUntil("two windows stored") { try await store.count() >= 2 }
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            try await ServerHarness.waitUntil("every window of the history in a new file", timeout: .seconds(15)) {
                guard FileManager.default.fileExists(atPath: path) else { return false }
                return try await Self.everyWindowStored(server, store)
            }
            // Read by another process, from the file on disk.
            let onDisk = Int(try await ServerHarness.sqlite(path, "SELECT COUNT(*) FROM window")) ?? 0
            #expect(onDisk >= server.state.history(limit: 10_000).count - 1)
            #expect(lines.all.contains { $0.contains("removed or replaced while open") })
            #expect(try Self.metric(server, "trafficmon_store_errors_total") >= 1)
        }
    }
}
