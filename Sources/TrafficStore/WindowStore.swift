import Foundation
import GRDB
import TrafficCore

/// Closed windows in SQLite (through GRDB): one row per window, keyed by its start,
/// holding the window record's JSON. WAL mode, so readers (a backup, `sqlite3`) never
/// block the writer; every batch commits at once, so a crash loses at most the
/// windows not yet closed.
///
/// ```swift
/// let store = try WindowStore(path: "trafficmon.sqlite")
/// try await store.save([record])
/// let recent = try store.recent(limit: 720)
/// ```
public final class WindowStore: Sendable {
    public let path: String
    /// The open database and the file it was opened on (device and inode), to notice the
    /// file being removed or replaced while open (SQLite would go on writing to the
    /// unlinked file without an error).
    private let current: LockedValue<(pool: DatabasePool, file: FileIdentity?)>
    var pool: DatabasePool { current.withLock { $0.pool } }

    struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64

        init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
        }
    }

    /// The schema versions this build knows, oldest first.
    static let schemaVersions = ["v1"]

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String) throws(StoreError) {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) || !isDirectory.boolValue {
                throw .cannotOpen(path: path, reason: "the directory \(directory) does not exist")
            }
        }
        // An existing file is checked through a read-only connection first, so a file that
        // is damaged, locked or from a newer trafficmon is refused without a single write.
        if FileManager.default.fileExists(atPath: path) {
            try Self.check(path: path)
        }
        current = LockedValue(try Self.open(path: path))
    }

    static func open(path: String) throws(StoreError) -> (pool: DatabasePool, file: FileIdentity?) {
        var configuration = Configuration()
        configuration.busyMode = .timeout(2)
        configuration.label = "trafficmon"
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator().migrate(pool)
            return (pool, FileIdentity(path: path))
        } catch {
            throw StoreError.describe(error, path: path)
        }
    }

    /// Throws `.moved` when the file at `path` is no longer the one open (removed or
    /// replaced); `reopen()` then starts a new one there.
    public func checkFile() throws(StoreError) {
        let opened = current.withLock { $0.file }
        guard let opened, FileIdentity(path: path) == opened else { throw .moved(path: path) }
    }

    /// Opens the database at `path` again, creating it if it is gone (after `.moved`).
    public func reopen() throws(StoreError) {
        let fresh = try Self.open(path: path)
        current.withLock { $0 = fresh }
    }

    /// Integrity (quick check) and schema version of an existing file, read-only.
    static func check(path: String) throws(StoreError) {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(2)
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.read { db in
                let check = try String.fetchAll(db, sql: "PRAGMA quick_check")
                if check != ["ok"] {
                    let first = check.first?.split(whereSeparator: \.isNewline).first.map(String.init) ?? "quick_check failed"
                    throw StoreError.corrupt(path: path, reason: first)
                }
                let applied = try migrator().appliedIdentifiers(db)
                let unknown = applied.subtracting(schemaVersions)
                if !unknown.isEmpty {
                    throw StoreError.newerSchema(
                        path: path, found: unknown.sorted().joined(separator: ", "), known: schemaVersions.last ?? "")
                }
            }
            try queue.close()
        } catch {
            throw StoreError.describe(error, path: path)
        }
    }

    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "window") { t in
                t.primaryKey("start", .integer)  // nanoseconds since the Unix epoch
                t.column("end", .integer).notNull()
                t.column("partial", .boolean).notNull()
                t.column("packets", .integer).notNull()
                t.column("bytes", .integer).notNull()
                t.column("record", .text).notNull()  // the window record, as JSON
            }
        }
        return migrator
    }

    /// Writes records in one transaction (a repeated start replaces the older row). Throws
    /// `.moved` without writing when the file was removed or replaced while open.
    public func save(_ records: [WindowRecord]) async throws(StoreError) {
        try await save(records.map(RenderedRecord.init))
    }

    /// Writes records with the JSON they were rendered to once (the `record` column holds
    /// those bytes as they are).
    public func save(_ records: [RenderedRecord]) async throws(StoreError) {
        guard !records.isEmpty else { return }
        try checkFile()
        let rows = records.map { rendered in
            let r = rendered.record
            return (r.start, r.end, r.partial, Int64(clamping: r.packets), Int64(clamping: r.bytes), String(decoding: rendered.json, as: UTF8.self))
        }
        do {
            try await pool.write { db in
                let statement = try db.cachedStatement(sql: """
                    INSERT OR REPLACE INTO window (start, "end", partial, packets, bytes, record) VALUES (?, ?, ?, ?, ?, ?)
                    """)
                for row in rows {
                    try statement.execute(arguments: [row.0, row.1, row.2, row.3, row.4, row.5])
                }
            }
        } catch {
            throw StoreError.describe(error, path: path)
        }
    }

    /// Deletes windows that start more than `retention` nanoseconds before the newest one.
    /// Returns how many were deleted.
    @discardableResult
    public func prune(retention: Int64) async throws(StoreError) -> Int {
        do {
            return try await pool.write { db in
                guard let newest = try Int64.fetchOne(db, sql: "SELECT MAX(start) FROM window") else { return 0 }
                try db.execute(sql: "DELETE FROM window WHERE start < ?", arguments: [newest - retention])
                return db.changesCount
            }
        } catch {
            throw StoreError.describe(error, path: path)
        }
    }

    /// The newest `limit` windows, oldest first.
    public func recent(limit: Int) async throws(StoreError) -> [WindowRecord] {
        try await fetch(sql: "SELECT record FROM (SELECT start, record FROM window ORDER BY start DESC LIMIT ?) ORDER BY start", arguments: [limit])
    }

    /// Windows starting in `since..<until`, oldest first, at most `limit` (the newest of them).
    public func windows(since: Int64?, until: Int64?, limit: Int) async throws(StoreError) -> [WindowRecord] {
        try await fetch(
            sql: """
                SELECT record FROM (SELECT start, record FROM window WHERE start >= ? AND start < ? ORDER BY start DESC LIMIT ?)
                ORDER BY start
                """,
            arguments: [since ?? Int64.min, until ?? Int64.max, limit])
    }

    /// How many windows the file holds.
    public func count() async throws(StoreError) -> Int {
        do {
            return try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM window") ?? 0 }
        } catch {
            throw StoreError.describe(error, path: path)
        }
    }

    private func fetch(sql: String, arguments: StatementArguments) async throws(StoreError) -> [WindowRecord] {
        let texts: [String]
        do {
            texts = try await pool.read { db in try String.fetchAll(db, sql: sql, arguments: arguments) }
        } catch {
            throw StoreError.describe(error, path: path)
        }
        let decoder = JSONDecoder()
        var records: [WindowRecord] = []
        records.reserveCapacity(texts.count)
        for text in texts {
            do {
                records.append(try decoder.decode(WindowRecord.self, from: Data(text.utf8)))
            } catch {
                throw .corrupt(path: path, reason: "a stored window record does not decode: \(error)")
            }
        }
        return records
    }
}

/// A database problem, in one sentence.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    case cannotOpen(path: String, reason: String)
    case locked(path: String)
    case readOnly(path: String)
    case corrupt(path: String, reason: String)
    case newerSchema(path: String, found: String, known: String)
    case failed(path: String, reason: String)
    /// The file was removed or replaced while open.
    case moved(path: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            "cannot open database \(path): \(reason)"
        case .locked(let path):
            "database \(path) is locked by another process (another trafficmon, or an open sqlite3 transaction); stop it or choose another --db"
        case .readOnly(let path):
            "database \(path) is read-only: trafficmon needs to write it (fix its permissions, choose another --db, or run with --no-db)"
        case .corrupt(let path, let reason):
            "database \(path) is damaged (\(reason)); move it aside (it may be recoverable with sqlite3 .recover) and start again"
        case .newerSchema(let path, let found, let known):
            "database \(path) was written by a newer trafficmon (schema \(found); this version knows up to \(known)); upgrade trafficmon or choose another --db"
        case .failed(let path, let reason):
            "database \(path): \(reason)"
        case .moved(let path):
            "database \(path) was removed or replaced while trafficmon had it open"
        }
    }

    static func describe(_ error: any Error, path: String) -> StoreError {
        if let error = error as? StoreError { return error }
        guard let error = error as? DatabaseError else { return .failed(path: path, reason: "\(error)") }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: return .locked(path: path)
        case .SQLITE_READONLY: return .readOnly(path: path)
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            let first = (error.message ?? "not a database").split(whereSeparator: \.isNewline).first.map(String.init)
            return .corrupt(path: path, reason: first ?? "not a database")
        case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
            return .cannotOpen(path: path, reason: error.message ?? "permission denied")
        default: return .failed(path: path, reason: error.message ?? "\(error)")
        }
    }
}
