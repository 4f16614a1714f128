import Foundation

/// A `sqlite3` process holding `BEGIN EXCLUSIVE` (with a pending write) on a database
/// of trafficmon's schema until released (or deinitialized).
public final class SQLiteLock {
    let process = Process()
    let input = Pipe()
    let output = Pipe()

    /// Returns once sqlite3 holds the lock.
    public init(path: String) throws {
        process.executableURL = URL(fileURLWithPath: TestProcess.which("sqlite3") ?? "/usr/bin/sqlite3")
        process.arguments = [path]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data("""
            BEGIN EXCLUSIVE;
            INSERT INTO window (start, "end", partial, packets, bytes, record) VALUES (-1, 0, 0, 0, 0, '{}');
            SELECT 'held';

            """.utf8))
        // Wait until sqlite3 says it holds the lock.
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("held") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw TestProcess.Failure("sqlite3 did not take the lock") }
            seen += chunk
        }
    }

    deinit { release() }

    /// Rolls back and ends sqlite3 (nothing when it has already ended).
    public func release() {
        guard process.isRunning else { return }
        input.fileHandleForWriting.write(Data("ROLLBACK;\n.quit\n".utf8))
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
