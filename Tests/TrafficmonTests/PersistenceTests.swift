import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Waiting on `trafficmon serve` (shared with SecurityTests)

extension ServerProcess {
    /// The `status` of `/readyz` (nil while the server does not answer).
    func readiness(headers: [String: String] = [:]) async -> String? {
        guard let result = try? await get("/readyz", headers: headers) else { return nil }
        let object = try? JSONSerialization.jsonObject(with: result.body) as? [String: Any]
        return object?["status"] as? String
    }

    /// Waits until the replay has ended and `/stats/history?limit=10000` gives the same
    /// answer three times in a row (300 ms apart); returns it, decoded.
    func waitForStableHistory(timeout: TimeInterval = 60, headers: [String: String] = [:]) async throws -> [WindowRecord] {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        var same = 0
        while Date() < deadline {
            if let exit { throw PTools.Failure("trafficmon ended (\(exit)): \(stderr)") }
            if await readiness(headers: headers) == "replayed", let r = try? await get("/stats/history?limit=10000", headers: headers), r.status == 200 {
                same = r.text == last ? same + 1 : 0
                last = r.text
                if same >= 2 { return try PTools.decodeHistory(last) }
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        throw PTools.Failure("the history did not settle: \(stderr)")
    }
}

/// External tools and small helpers of the TrafficmonTests suites.
enum PTools {
    static let second: Int64 = 1_000_000_000
    static let localNets = SyntheticTraffic.localNetworks.flatMap { ["--local-net", $0] }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Runs a program (found on PATH) to completion.
    static func run(_ program: String, _ arguments: [String], timeout: TimeInterval = 60) async throws -> TestProcess.Result {
        try await TestProcess.run(program: program, arguments, timeout: timeout)
    }

    /// `trafficmon ARGS` to completion.
    static func trafficmon(_ arguments: [String], timeout: TimeInterval = 30) async throws -> TestProcess.Result {
        try await TestProcess.offload { try TestProcess.run(TestProcess.trafficmon, arguments, timeout: timeout) }
    }

    static func sqlite(_ db: String, _ sql: String) async throws -> String {
        let result = try await run("sqlite3", [db, sql])
        guard result.status == 0 else { throw Failure("sqlite3 \(db) '\(sql)': \(result.stderr)") }
        return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    struct History: Decodable { var windows: [WindowRecord] }

    static func decodeHistory(_ body: String) throws -> [WindowRecord] {
        try JSONDecoder().decode(History.self, from: Data(body.utf8)).windows
    }

    /// Writes `traffic` as a pcap file.
    static func capture(_ traffic: SyntheticTraffic, in dir: URL, name: String = "capture.pcap", snapLength: Int = 262_144) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try traffic.pcap(snapLength: snapLength).write(to: url)
        return url
    }

    /// A capture file with no packets.
    static func emptyCapture(in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent("empty.pcap")
        try PcapWriter(linkType: 1).write(to: url)
        return url
    }

    static func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// Makes a database with trafficmon itself (a short replay, then SIGTERM).
    static func makeDatabase(_ db: String, in dir: URL) async throws {
        let traffic = SyntheticTraffic(packets: 300, clients: 10, seconds: 4, seed: 41, windowLength: second)
        let capture = try capture(traffic, in: dir, name: "seed-\(UUID().uuidString).pcap")
        let serve = try ServerProcess.serve(["--read", capture.path, "--db", db, "--window", "1s"] + localNets, in: dir)
        defer { serve.stop() }
        _ = try await serve.waitForStableHistory()
        serve.signal(SIGTERM)
        guard let exit = try await serve.waitForExit(), exit.status == 0, !exit.signaled else {
            throw Failure("trafficmon did not stop cleanly: \(serve.stderr)")
        }
        guard try await sqlite(db, "SELECT COUNT(*) FROM window") != "0" else { throw Failure("the new database holds no window") }
    }
}

// MARK: - Persistence

/// `serve --db`: windows survive a SIGKILL, a SIGTERM closes the open window into the
/// file, retention prunes, `--no-db` writes nothing, and bad files are refused.
@Suite struct PersistenceTests {
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aKilledServerRestartsWithTheSameHistory() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-persist")
        defer { try? FileManager.default.removeItem(at: dir) }
        let traffic = SyntheticTraffic(packets: 20_000, clients: 300, seconds: 30, seed: 31, windowLength: PTools.second)
        let truth = traffic.truth
        let capture = try PTools.capture(traffic, in: dir)
        let db = dir.appendingPathComponent("t.sqlite").path
        let port = try TestProcess.freePort()
        let arguments = ["--read", capture.path, "--db", db, "--window", "1s"] + PTools.localNets

        let first = try ServerProcess.serve(arguments, port: port, in: dir)
        defer { first.stop() }
        let before = try await first.waitForStableHistory()
        // The history is the capture's, by the oracle.
        #expect(before.map(\.start) == truth.windowStarts.sorted())
        #expect(before.map(\.packets).reduce(0, +) == truth.total.packets)
        #expect(before.map(\.bytes).reduce(0, +) == truth.total.bytes)
        #expect(before.last?.partial == true)
        #expect(before.dropLast().allSatisfy { !$0.partial })

        first.signal(SIGKILL)
        let killed = try await first.waitForExit()
        #expect(killed?.signaled == true)
        #expect(try await PTools.sqlite(db, "PRAGMA integrity_check") == "ok")
        #expect(try await PTools.sqlite(db, "PRAGMA journal_mode") == "wal")
        #expect(try await PTools.sqlite(db, "SELECT identifier FROM grdb_migrations") == "v1")
        // What the file holds, read by sqlite3: every window, every field.
        let rows = try await PTools.sqlite(db, "SELECT record FROM window ORDER BY start").split(separator: "\n")
        let stored = try rows.map { try JSONDecoder().decode(WindowRecord.self, from: Data($0.utf8)) }
        #expect(stored == before, "the file holds \(stored.count) windows, the history had \(before.count)")

        // The same command again: the same history.
        let second = try ServerProcess.serve(arguments, port: port, in: dir)
        defer { second.stop() }
        let after = try await second.waitForStableHistory()
        #expect(after == before)
        second.signal(SIGKILL)
        _ = try await second.waitForExit()
        #expect(try await PTools.sqlite(db, "PRAGMA integrity_check") == "ok")

        // A restart with nothing to replay: the history can only come from the file.
        let third = try ServerProcess.serve(
            ["--read", try PTools.emptyCapture(in: dir).path, "--db", db, "--window", "1s"] + PTools.localNets, port: port, in: dir)
        defer { third.stop() }
        let loaded = try await third.waitForStableHistory()
        #expect(loaded == before, "after a restart on an empty capture: \(loaded.count) windows of \(before.count)")
    }

    /// SIGTERM while a replay is under way: a FIFO holds the second half of the capture
    /// back, so the replay is blocked in a read (as on a stalled pipe) when the signal comes.
    /// The read is interrupted, the open window is stored marked partial, and every window
    /// before it is complete.
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func sigtermMidReplayWritesThePartialWindowLast() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-persist")
        defer { try? FileManager.default.removeItem(at: dir) }
        // 300k packets over 600 s of packet time (600 windows of 1 s), cut at 64 bytes.
        let traffic = SyntheticTraffic(packets: 300_000, clients: 2000, seconds: 600, seed: 32, windowLength: PTools.second)
        let starts = traffic.truth(snapLength: 64).windowStarts.sorted()
        let pcap = traffic.pcap(snapLength: 64)
        let feeder = try FIFOFeeder(at: dir.appendingPathComponent("capture.pcap"), bytes: pcap.data, firstPart: pcap.offset(ofPacket: 150_000))
        defer { feeder.release() }
        let db = dir.appendingPathComponent("t.sqlite").path
        let serve = try ServerProcess.serve(
            ["--read", feeder.url.path, "--db", db, "--window", "1s"] + PTools.localNets, in: dir)
        defer { serve.stop() }
        // The first half read: windows are closing and the replay waits for the rest.
        _ = try await serve.waitUntilServing()
        let deadline = Date().addingTimeInterval(30)
        var seen = 0
        while Date() < deadline {
            let history = try? PTools.decodeHistory(try await serve.get("/stats/history?limit=10000").text)
            if let count = history?.count, count > 100, count == seen { break }
            seen = history?.count ?? 0
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(seen > 100, "the first half of the capture was not replayed (\(seen) windows)")
        #expect(await serve.readiness() == "replaying")
        // The capture thread is stuck in the read: /stats/current still answers (with the
        // last closed window) instead of waiting for it.
        let asked = Date()
        let current = try await serve.get("/stats/current")
        #expect(current.status == 200 && Date().timeIntervalSince(asked) < 5, "/stats/current: \(current.status) after \(Date().timeIntervalSince(asked)) s")
        serve.signal(SIGTERM)
        let exit = try await serve.waitForExit()
        #expect(exit?.status == 0 && exit?.signaled == false, "exit \(String(describing: exit)): \(serve.stderr)")
        #expect(try await PTools.sqlite(db, "PRAGMA integrity_check") == "ok")

        let rows = try await PTools.sqlite(db, "SELECT start, partial FROM window ORDER BY start").split(separator: "\n").map {
            $0.split(separator: "|").map(String.init)
        }
        try #require(!rows.isEmpty, "no window in the file")
        let stored = rows.map { Int64($0[0]) ?? 0 }
        // Interrupted: it ends before the capture's last window...
        #expect(stored.last! < starts.last!, "the replay was read to its end before SIGTERM")
        // ...with the window that was open, marked partial, and nothing before it lost.
        #expect(rows.last?[1] == "1", "the last stored window is not partial: \(rows.suffix(2))")
        #expect(rows.dropLast().allSatisfy { $0[1] == "0" }, "a window before the last is partial")
        #expect(stored == Array(starts.prefix(stored.count)), "the stored windows are not the capture's first \(stored.count)")
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func retentionPrunesWindowsOlderThanTheNewest() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-persist")
        defer { try? FileManager.default.removeItem(at: dir) }
        // 60 s of packet time, windows of 1 s; keep 20 s before the newest.
        let traffic = SyntheticTraffic(packets: 6000, clients: 50, seconds: 60, seed: 33, windowLength: PTools.second)
        let starts = traffic.truth.windowStarts.sorted()
        let newest = starts.last!
        let kept = starts.filter { $0 >= newest - 20 * PTools.second }
        #expect(kept.count == 21)
        let capture = try PTools.capture(traffic, in: dir)
        let db = dir.appendingPathComponent("t.sqlite").path
        let serve = try ServerProcess.serve(
            ["--read", capture.path, "--db", db, "--window", "1s", "--retention", "20s"] + PTools.localNets, in: dir)
        defer { serve.stop() }
        let history = try await serve.waitForStableHistory()
        #expect(history.map(\.start) == starts, "the memory history keeps everything")
        func storedStarts() async throws -> [Int64] {
            try await PTools.sqlite(db, "SELECT start FROM window ORDER BY start").split(separator: "\n").compactMap { Int64($0) }
        }
        // While it runs (after the replay has been written).
        var running: [Int64] = []
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            running = try await storedStarts()
            if running == kept { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(running == kept, """
            while serving after the replay, the file holds \(running.count) windows from \
            \(running.first.map(Timestamp.rfc3339) ?? "-"); --retention 20s should leave the 21 from \(Timestamp.rfc3339(kept.first!))
            """)
        // And after a clean stop.
        serve.signal(SIGTERM)
        _ = try await serve.waitForExit()
        #expect(try await storedStarts() == kept)
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func noDBWritesNoFileWhileTheDefaultWritesOne() async throws {
        let capture = try PTools.capture(
            SyntheticTraffic(packets: 500, clients: 10, seconds: 5, seed: 34, windowLength: PTools.second),
            in: try TestProcess.temporaryDirectory("trafficmon-cap"))
        defer { try? FileManager.default.removeItem(at: capture.deletingLastPathComponent()) }
        for noDB in [true, false] {
            let cwd = try TestProcess.temporaryDirectory("trafficmon-nodb")
            defer { try? FileManager.default.removeItem(at: cwd) }
            let serve = try ServerProcess.serve(
                ["--read", capture.path, "--window", "1s"] + (noDB ? ["--no-db"] : []) + PTools.localNets, in: cwd)
            defer { serve.stop() }
            let history = try await serve.waitForStableHistory()
            serve.signal(SIGTERM)
            let exit = try await serve.waitForExit()
            #expect(exit?.status == 0)
            let files = try FileManager.default.contentsOfDirectory(atPath: cwd.path)
            if noDB {
                #expect(files.isEmpty, "--no-db left \(files)")
            } else {
                // The default, ./trafficmon.sqlite, holds the history.
                #expect(files.contains("trafficmon.sqlite"), "files: \(files)")
                let count = try await PTools.sqlite(cwd.appendingPathComponent("trafficmon.sqlite").path, "SELECT COUNT(*) FROM window")
                #expect(count == "\(history.count)")
            }
        }
    }

    // MARK: Bad database files

    /// Runs `serve` on `db` and checks: non-zero exit, one stderr line starting with
    /// "trafficmon: " naming the file (and `mentions`, when given), the file's bytes unchanged.
    static func expectRefused(
        db: String, in dir: URL, mentions: [String] = [], launcher: [String] = [], timeout: TimeInterval = 30,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let before = PTools.bytes(db)
        let capture = try PTools.capture(
            SyntheticTraffic(packets: 200, clients: 5, seconds: 2, seed: 35, windowLength: PTools.second), in: dir,
            name: "c-\(UUID().uuidString).pcap")
        let serve = try ServerProcess.serve(
            ["--read", capture.path, "--db", db, "--window", "1s"] + PTools.localNets, in: dir, launcher: launcher)
        defer { serve.stop() }
        let exit = try await serve.waitForExit(timeout: timeout)
        let stderr = serve.stderr
        #expect(exit != nil, "trafficmon started on the bad database and kept running: \(stderr)", sourceLocation: sourceLocation)
        #expect(exit.map { $0.status != 0 && !$0.signaled } ?? false, "exit \(String(describing: exit))", sourceLocation: sourceLocation)
        let lines = TestProcess.lines(stderr)
        #expect(lines.count == 1, "stderr: \(stderr)", sourceLocation: sourceLocation)
        #expect(lines.first?.hasPrefix("trafficmon: ") == true, "stderr: \(stderr)", sourceLocation: sourceLocation)
        #expect(lines.first?.contains(db) == true, "the line does not name the file: \(stderr)", sourceLocation: sourceLocation)
        for word in mentions {
            #expect(lines.first?.lowercased().contains(word) == true, "the line does not say '\(word)': \(stderr)", sourceLocation: sourceLocation)
        }
        #expect(PTools.bytes(db) == before, "the database file changed", sourceLocation: sourceLocation)
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aCorruptFileIsRefused() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-baddb")
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("corrupt.sqlite").path
        var rng = SplitMix64(seed: 7)
        try Data((0..<16384).map { _ in UInt8(truncatingIfNeeded: rng.next()) }).write(to: URL(fileURLWithPath: db))
        try await Self.expectRefused(db: db, in: dir, mentions: ["damaged"])
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aDamagedDatabaseIsRefused() async throws {
        // A real database whose pages were overwritten past the header.
        let dir = try TestProcess.temporaryDirectory("trafficmon-baddb")
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("damaged.sqlite").path
        try await PTools.makeDatabase(db, in: dir)
        var data = try #require(PTools.bytes(db))
        #expect(data.count >= 8192)
        var rng = SplitMix64(seed: 8)
        for i in 4096..<min(data.count, 12288) { data[i] = UInt8(truncatingIfNeeded: rng.next()) }
        try data.write(to: URL(fileURLWithPath: db))
        try await Self.expectRefused(db: db, in: dir, mentions: ["damaged"])
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aNewerSchemaIsRefused() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-baddb")
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("newer.sqlite").path
        try await PTools.makeDatabase(db, in: dir)
        _ = try await PTools.sqlite(db, "INSERT INTO grdb_migrations (identifier) VALUES ('v99')")
        try await Self.expectRefused(db: db, in: dir, mentions: ["newer", "v99"])
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aLockedFileIsRefused() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-baddb")
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("locked.sqlite").path
        try await PTools.makeDatabase(db, in: dir)
        let count = try await PTools.sqlite(db, "SELECT COUNT(*) FROM window")
        // sqlite3 holds a write transaction while trafficmon starts.
        let holder = try SQLiteLock(path: db)
        defer { holder.release() }
        try await Self.expectRefused(db: db, in: dir, mentions: ["locked"])
        holder.release()
        #expect(try await PTools.sqlite(db, "SELECT COUNT(*) FROM window") == count)
        #expect(try await PTools.sqlite(db, "PRAGMA integrity_check") == "ok")
    }

    /// Read-only for trafficmon: the file (root, 0644) in a directory (root, 0755), with
    /// trafficmon run as nobody through `setpriv` (the tests run as root, for whom no file
    /// is read-only). nobody can read both but write neither.
    @Test(.enabled(if: getuid() == 0, "needs root to run trafficmon as nobody"), .timeLimit(.minutes(TestTimeLimit.minutes)))
    func aReadOnlyFileIsRefused() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-baddb")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        let db = dir.appendingPathComponent("readonly.sqlite").path
        try await PTools.makeDatabase(db, in: dir)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: db)
        #expect(!FileManager.default.fileExists(atPath: db + "-wal"))
        try await Self.expectRefused(
            db: db, in: dir, launcher: ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        #expect(!FileManager.default.fileExists(atPath: db + "-wal"))
    }
}

// MARK: - Shutdown with clients connected

/// SIGTERM must close the open window, write it, and exit 0 whatever the HTTP clients do:
/// one that connected and sent nothing, one that stopped mid-request, a WebSocket client
/// that vanished without a close frame (FIN, or a reset), one that never answers the close.
@Suite struct PersistenceShutdownTests {
    enum Client: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case idleConnection, halfSentRequest, vanishedWebSocket, resetWebSocket, silentWebSocket
        var testDescription: String { rawValue }
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes)), arguments: Client.allCases)
    func sigtermIsNotHeldUpByAClient(_ kind: Client) async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-shutdown")
        defer { try? FileManager.default.removeItem(at: dir) }
        let traffic = SyntheticTraffic(packets: 300, clients: 10, seconds: 4, seed: 61, windowLength: PTools.second)
        let db = dir.appendingPathComponent("t.sqlite").path
        let port = try TestProcess.freePort()
        let serve = try ServerProcess.serve(
            ["--read", try PTools.capture(traffic, in: dir).path, "--db", db, "--window", "1s"] + PTools.localNets, port: port, in: dir)
        defer { serve.stop() }
        let history = try await serve.waitForStableHistory()
        let socket = try RawSocket(port: port, receiveTimeout: 5)
        defer { socket.disconnect() }
        let upgrade = "GET /stats/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        switch kind {
        case .idleConnection: break
        case .halfSentRequest: socket.send("GET /stats/history HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        case .vanishedWebSocket, .resetWebSocket, .silentWebSocket:
            socket.send(upgrade)
            let head = try await socket.head()
            #expect(head.hasPrefix("HTTP/1.1 101"), "upgrade: \(head)")
            if kind == .vanishedWebSocket { socket.disconnect() }
            if kind == .resetWebSocket { socket.reset() }
        }
        try await Task.sleep(for: .milliseconds(300))
        serve.signal(SIGTERM)
        var exit = try await serve.waitForExit(timeout: 6)
        #expect(exit != nil, "6 s after SIGTERM trafficmon still runs, held up by \(kind)")
        if exit == nil {
            socket.disconnect()
            exit = try await serve.waitForExit(timeout: 4)
            #expect(exit != nil, "trafficmon still runs 4 s after the \(kind) client went away too")
        }
        if let exit {
            #expect(exit.status == 0 && !exit.signaled, "exit status \(exit.status) after SIGTERM with \(kind): \(serve.stderr)")
            #expect(!serve.stderr.contains("ServiceGroupError"), "stderr: \(serve.stderr)")
            // The history is in the file, the partial last window included.
            #expect(try await PTools.sqlite(db, "SELECT COUNT(*) FROM window") == "\(history.count)")
        }
    }
}
